#!/usr/bin/env bash
# WebSocket (RFC 7395) beside TCP on switchboard, in one run: memory per idle session and
# chat throughput / server CPU per message, each scenario on a freshly started server pinned
# to one core. See bench/README.md ("web transports").
#
# Tunables (environment):
#   COUNT        idle sessions per transport   (2000)
#   PAIRS        chat sender/receiver pairs    (50)
#   DURATION     seconds per chat run          (10)
#   SERVER_CPU / BENCH_CPU  CPUs to pin to     (0 / 1)
#   SB_BIN       switchboard binary            (target/release/switchboard)
#   RESULTS      also copy the results TSV here
#   NO_BUILD=1   use the binaries as they are (BENCH: the bench binary)
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
COUNT=${COUNT:-2000}
PAIRS=${PAIRS:-50}
DURATION=${DURATION:-10}
SERVER_CPU=${SERVER_CPU:-0}
BENCH_CPU=${BENCH_CPU:-1}
SB_BIN=${SB_BIN:-$ROOT/target/release/switchboard}
BENCH=${BENCH:-$ROOT/target/release/switchboard-bench}
RESULTS=${RESULTS:-}
C2S=14322
HTTP=14380
PASSWORD=benchpw1
TMP=$(mktemp -d)
OUT=$TMP/results.tsv
PID=

log() { printf '[web %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
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
