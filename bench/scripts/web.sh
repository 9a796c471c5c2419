#!/usr/bin/env bash
# WebSocket (RFC 7395) beside TCP on switchboard, in one run: memory per idle session and
# chat throughput / server CPU per message, each scenario on a freshly started server pinned
# to one core. See bench/README.md ("web transports").
#
# Tunables (environment):
#   COUNT        idle sessions per transport   (2000)
#   PAIRS        chat sender/receiver pairs    (50)
#   DURATION     seconds per chat run          (10)
#   and those of web_common.sh (CPUs, binaries, SB_TOML, RESULTS, NO_BUILD)
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
COUNT=${COUNT:-2000}
PAIRS=${PAIRS:-50}
DURATION=${DURATION:-10}
NAME=web
C2S=14322
HTTP=14380
# shellcheck source=bench/scripts/web_common.sh
. "$ROOT/bench/scripts/web_common.sh"

common() { # transport
    local users=(--host 127.0.0.1 --domain localhost --users 'bench{n}' --password "$PASSWORD")
    if [ "$1" = websocket ]; then
        echo "${users[@]}" --port "$HTTP" --websocket /xmpp-websocket
    else
        echo "${users[@]}" --port "$C2S"
    fi
}

USERS=$COUNT
[ $((PAIRS * 2)) -gt "$USERS" ] && USERS=$((PAIRS * 2))
start
log "registering $USERS accounts"
# shellcheck disable=SC2046
bench register $(common tcp) --count "$USERS" --concurrency 8 >"$TMP/register.out" 2>&1 || { log "registration failed"; cat "$TMP/register.out" >&2; exit 1; }
stop

for transport in tcp websocket; do
    log "login-idle over $transport: $COUNT sessions"
    start
    # shellcheck disable=SC2046
    bench login-idle $(common "$transport") --count "$COUNT" --concurrency 100 \
        --server-pid "$PID" --label "$transport" --out "$OUT" || log "login-idle over $transport failed"
    stop
done
for transport in tcp websocket; do
    log "chat over $transport: $PAIRS pairs, ${DURATION}s"
    start
    # shellcheck disable=SC2046
    bench chat $(common "$transport") --pairs "$PAIRS" --duration "$DURATION" \
        --server-pid "$PID" --label "$transport" --out "$OUT" || log "chat over $transport failed"
    stop
done
"$BENCH" report "$OUT" --baseline tcp
[ -n "$RESULTS" ] && cp "$OUT" "$RESULTS"
exit 0
