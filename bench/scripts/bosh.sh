#!/usr/bin/env bash
# BOSH (XEP-0124/0206) under load: SESSIONS sessions each keeping a long-poll open while
# SENDERS TCP clients message them at RATE messages/s; the server pinned to one core.
# Prints server CPU per delivered message and memory per BOSH session.
# See bench/README.md ("web transports").
#
# Tunables (environment):
#   SESSIONS     BOSH sessions                 (2000)
#   SENDERS      TCP senders                   (10)
#   RATE         messages/s, all senders       (2000)
#   DURATION     seconds of sending            (10)
#   and those of web_common.sh (CPUs, binaries, SB_TOML, RESULTS, NO_BUILD)
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SESSIONS=${SESSIONS:-2000}
SENDERS=${SENDERS:-10}
RATE=${RATE:-2000}
DURATION=${DURATION:-10}
NAME=bosh
C2S=14422
HTTP=14480
# shellcheck source=bench/scripts/web_common.sh
. "$ROOT/bench/scripts/web_common.sh"

users=(--host 127.0.0.1 --domain localhost --users 'bench{n}' --password "$PASSWORD")

start
log "registering $((SESSIONS + SENDERS)) accounts"
bench register "${users[@]}" --port "$C2S" --count "$((SESSIONS + SENDERS))" --concurrency 8 >"$TMP/register.out" 2>&1 || { log "registration failed"; cat "$TMP/register.out" >&2; exit 1; }
log "bosh-poll: $SESSIONS sessions, $SENDERS senders, $RATE msg/s for ${DURATION}s"
bench bosh-poll "${users[@]}" --port "$HTTP" --c2s-port "$C2S" --sessions "$SESSIONS" \
    --senders "$SENDERS" --rate "$RATE" --duration "$DURATION" --concurrency 50 \
    --server-pid "$PID" --label bosh --out "$OUT" || log "bosh-poll failed"
stop
[ -n "$RESULTS" ] && cp "$OUT" "$RESULTS"
exit 0
