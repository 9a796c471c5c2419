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
#   SERVER_CPU / BENCH_CPU  CPUs to pin to     (0 / 1)
#   SB_BIN       switchboard binary            (target/release/switchboard)
#   RESULTS      also copy the results TSV here
#   NO_BUILD=1   use the binaries as they are (BENCH: the bench binary)
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SESSIONS=${SESSIONS:-2000}
SENDERS=${SENDERS:-10}
RATE=${RATE:-2000}
DURATION=${DURATION:-10}
SERVER_CPU=${SERVER_CPU:-0}
BENCH_CPU=${BENCH_CPU:-1}
SB_BIN=${SB_BIN:-$ROOT/target/release/switchboard}
BENCH=${BENCH:-$ROOT/target/release/switchboard-bench}
RESULTS=${RESULTS:-}
C2S=14422
HTTP=14480
PASSWORD=benchpw1
TMP=$(mktemp -d)
OUT=$TMP/results.tsv
PID=

log() { printf '[bosh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
port_up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
stop() {
    [ -n "$PID" ] || return 0
    kill "$PID" 2>/dev/null
    for _ in $(seq 150); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$PID" 2>/dev/null
    PID=
}
trap 'stop; rm -rf "$TMP"' EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [ "${NO_BUILD:-0}" != 1 ]; then
    (cd "$ROOT" && cargo build --release -q -p switchboard -p switchboard-bench) || { log "build failed"; exit 1; }
fi

cat >"$TMP/switchboard.toml" <<TOML
domains = ["localhost"]
[storage]
url = "sqlite://$TMP/sb.db"
[tls]
cert = "$TMP/cert.pem"
key = "$TMP/key.pem"
[[listen]]
kind = "c2s"
address = "127.0.0.1:$C2S"
require_encryption = false
[[listen]]
kind = "http"
address = "127.0.0.1:$HTTP"
[registration]
enabled = true
per_ip_per_hour = 100000000
min_password_length = 1
[limits]
connections_per_ip = 1000000
unauthenticated_per_ip = 1000000
max_connections = 1000000
[auth]
failures_per_ip_per_minute = 1000000
failures_per_account_per_minute = 1000000
[log]
level = "warn"
TOML

start() {
    taskset -c "$SERVER_CPU" "$SB_BIN" --config "$TMP/switchboard.toml" serve >>"$TMP/server.log" 2>&1 &
    PID=$!
    for _ in $(seq 300); do port_up "$HTTP" && port_up "$C2S" && return 0; sleep 0.1; done
    log "switchboard did not start"; tail -5 "$TMP/server.log" >&2; exit 1
}
bench() { taskset -c "$BENCH_CPU" "$BENCH" "$@"; }
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
