# Shared by web.sh and bosh.sh: tunables, a switchboard config with both listeners, and
# start/stop of a server pinned to one core. The caller sets ROOT, NAME (the log prefix), C2S
# and HTTP (ports) before sourcing this.
#   SERVER_CPU / BENCH_CPU  CPUs to pin to     (0 / 1)
#   SB_BIN       switchboard binary            (target/release/switchboard)
#   SB_TOML      sections appended to the server's config, e.g. $'[mam]\nenabled = false'
#   RESULTS      also copy the results TSV here
#   NO_BUILD=1   use the binaries as they are (BENCH: the bench binary)
# shellcheck shell=bash
SERVER_CPU=${SERVER_CPU:-0}
BENCH_CPU=${BENCH_CPU:-1}
SB_BIN=${SB_BIN:-$ROOT/target/release/switchboard}
BENCH=${BENCH:-$ROOT/target/release/switchboard-bench}
RESULTS=${RESULTS:-}
PASSWORD=benchpw1
TMP=$(mktemp -d)
OUT=$TMP/results.tsv
PID=

log() { printf '[%s %s] %s\n' "$NAME" "$(date +%H:%M:%S)" "$*" >&2; }
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
${SB_TOML:-}
TOML

start() {
    taskset -c "$SERVER_CPU" "$SB_BIN" --config "$TMP/switchboard.toml" serve >>"$TMP/server.log" 2>&1 &
    PID=$!
    for _ in $(seq 300); do port_up "$HTTP" && port_up "$C2S" && return 0; sleep 0.1; done
    log "switchboard did not start"; tail -5 "$TMP/server.log" >&2; exit 1
}
bench() { taskset -c "$BENCH_CPU" "$BENCH" "$@"; }
