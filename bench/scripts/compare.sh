#!/usr/bin/env bash
# Compare switchboard, Prosody and ejabberd with switchboard-bench in one run.
#
# Every server gets its own config and data dir under a temp dir, listens on
# 127.0.0.1 only, is pinned to CPU $SERVER_CPU while the bench runs pinned to
# CPU $BENCH_CPU. Servers are benchmarked one after another; only the server
# being measured is running, and every scenario gets a freshly started server.
# See bench/README.md.
#
# Tunables (environment):
#   SERVERS            servers to measure         (switchboard prosody ejabberd)
#   LOGIN_COUNT        login-idle sessions        (2000; 15000 needs ulimit -n > 16000)
#   LOGIN_CONCURRENCY  logins in flight           (100)
#   LOGIN_HOLD         seconds to keep sessions   (0)
#   CHAT_PAIRS         chat sender/receiver pairs (50)
#   CHAT_DURATION      seconds per chat run       (10)
#   CHAT_WINDOW        in-flight msgs per pair, throughput run (16)
#   CHAT_RATE          msgs/s per pair, latency run (20; 0 skips the run)
#   PRESENCE_USERS     presence scenario users    (500; 0 skips presence)
#   PRESENCE_CONTACTS  mutual contacts per user   (10)
#   PRESENCE_RATE      presence updates/s per user (1)
#   PRESENCE_DURATION  seconds of updates         (10)
#   SCENARIOS          which to run               (login chat presence muc)
#   MUC_ROOMS          MUC room sizes             (100 1000; empty skips muc)
#   MUC_POSTERS        occupants that post        (5)
#   MUC_START          first step, deliveries/s   (2500)
#   MUC_FACTOR         rate factor per step       (1.5)
#   MUC_MAX_STEPS      most rate steps            (18)
#   MUC_STEP           seconds per rate step      (3)
#   MECH               SCRAM-SHA-1 | PLAIN        (SCRAM-SHA-1)
#   PASSWORD           password of every account  (benchpw1)
#   SERVER_CPU / BENCH_CPU  CPUs to pin to        (0 / 1)
#   SB_BIN             switchboard binary         (target/release/switchboard)
#   switchboard_NAME   in SERVERS: another switchboard build or configuration in the same
#                      run, with its binary in SB_BIN_NAME (default SB_BIN) and TOML appended
#                      to its config from SB_TOML_NAME; e.g. SERVERS="switchboard_after
#                      switchboard_before" BASELINE=switchboard_after (before/after ratios)
#   BASELINE           the label ratios are taken against (switchboard)
#   PROSODY_PORT / EJABBERD_PORT / SB_PORT  c2s ports (15222 / 25222 / 14222)
#   BUILD_SWITCHBOARD  1: cargo build it first    (0)
#   QUIET_WAIT         seconds to wait for an idle machine before each run (30)
#   PRIO               nice value for servers and bench when root (-20)
#   RESULTS            also copy the results TSV here
#   KEEP_TMP           1: keep the temp dir (configs, logs)
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SERVERS=${SERVERS:-"switchboard prosody ejabberd"}
LOGIN_COUNT=${LOGIN_COUNT:-2000}
LOGIN_CONCURRENCY=${LOGIN_CONCURRENCY:-100}
LOGIN_HOLD=${LOGIN_HOLD:-0}
CHAT_PAIRS=${CHAT_PAIRS:-50}
CHAT_DURATION=${CHAT_DURATION:-10}
CHAT_WINDOW=${CHAT_WINDOW:-16}
CHAT_RATE=${CHAT_RATE:-20}
PRESENCE_USERS=${PRESENCE_USERS:-500}
PRESENCE_CONTACTS=${PRESENCE_CONTACTS:-10}
PRESENCE_RATE=${PRESENCE_RATE:-1}
PRESENCE_DURATION=${PRESENCE_DURATION:-10}
SCENARIOS=${SCENARIOS:-"login chat presence muc"}
MUC_ROOMS=${MUC_ROOMS-"100 1000"}
MUC_POSTERS=${MUC_POSTERS:-5}
MUC_START=${MUC_START:-2500}
MUC_FACTOR=${MUC_FACTOR:-1.5}
MUC_MAX_STEPS=${MUC_MAX_STEPS:-18}
MUC_STEP=${MUC_STEP:-3}
MUC_MAX_OCCUPANTS=2000
MECH=${MECH:-SCRAM-SHA-1}
PASSWORD=${PASSWORD:-benchpw1}
SERVER_CPU=${SERVER_CPU:-0}
BENCH_CPU=${BENCH_CPU:-1}
SB_BIN=${SB_BIN:-$ROOT/target/release/switchboard}
BUILD_SWITCHBOARD=${BUILD_SWITCHBOARD:-0}
RESULTS=${RESULTS:-}
KEEP_TMP=${KEEP_TMP:-0}
DOMAIN=localhost
BENCH=$ROOT/target/release/switchboard-bench

# Ports stay below the kernel's ephemeral range (32768-60999 here): a port in
# that range can be taken as the local port of some outgoing connection (the
# bench makes thousands), and the server's bind then fails.
PROSODY_PORT=${PROSODY_PORT:-15222}
EJABBERD_PORT=${EJABBERD_PORT:-25222}
EJABBERD_DIST_PORT=${EJABBERD_DIST_PORT:-25299}
SB_PORT=${SB_PORT:-14222}
SB_HTTP_PORT=${SB_HTTP_PORT:-14280}

log() { printf '[compare %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

has() { case " $SCENARIOS " in *" $1 "*) return 0 ;; esac; return 1; }
# Accounts needed by the scenarios that run.
USERS=2
if has login; then USERS=$LOGIN_COUNT; fi
if has chat && [ $((CHAT_PAIRS * 2)) -gt "$USERS" ]; then USERS=$((CHAT_PAIRS * 2)); fi
if has presence && [ "$PRESENCE_USERS" -gt "$USERS" ]; then USERS=$PRESENCE_USERS; fi
if has muc; then
    for m in $MUC_ROOMS; do
        [ "$m" -gt "$MUC_MAX_OCCUPANTS" ] && { echo "MUC_ROOMS: at most $MUC_MAX_OCCUPANTS occupants" >&2; exit 1; }
        [ "$m" -gt "$USERS" ] && USERS=$m
    done
fi

# --- file descriptors -------------------------------------------------------
NEED_FDS=$((USERS + 1024))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$NEED_FDS" ]; then
    ulimit -Hn "$NEED_FDS" 2>/dev/null || log "warning: cannot raise hard open-file limit $hard to $NEED_FDS"
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
log "open-file limit: $(ulimit -n) (need about $NEED_FDS per process)"

# --- build ------------------------------------------------------------------
log "building switchboard-bench"
(cd "$ROOT" && cargo build --release -q -p switchboard-bench) || { log "bench build failed"; exit 1; }
if [ "$BUILD_SWITCHBOARD" = 1 ]; then
    log "building switchboard"
    (cd "$ROOT" && cargo build --release -q -p switchboard) || log "switchboard build failed"
fi

# --- packages ---------------------------------------------------------------
pkgs=()
case " $SERVERS " in *" prosody "*) command -v prosody >/dev/null || pkgs+=(prosody) ;; esac
case " $SERVERS " in *" ejabberd "*) command -v ejabberdctl >/dev/null || pkgs+=(ejabberd) ;; esac
command -v ss >/dev/null || pkgs+=(iproute2)
command -v taskset >/dev/null || pkgs+=(util-linux)
if [ ${#pkgs[@]} -gt 0 ]; then
    log "installing ${pkgs[*]}"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null; }; then
        log "warning: apt-get install failed"
    fi
fi
# The Debian packages may start their stock services; they would compete for CPU.
for svc in prosody ejabberd; do
    if command -v service >/dev/null && service "$svc" status >/dev/null 2>&1; then
        log "stopping the stock $svc service"
        service "$svc" stop >/dev/null 2>&1 || true
    fi
done

TMP=$(mktemp -d /tmp/sb-compare.XXXXXX)
chmod 755 "$TMP"
RES=$TMP/results.tsv
: >"$RES"
CUR_PID=""
CUR_STOP=""
cleanup() {
    if [ -n "$CUR_STOP" ]; then $CUR_STOP; fi
    if [ "$KEEP_TMP" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_up() { ss -ltnH "sport = :$1" 2>/dev/null | grep -q .; }
pid_on_port() { ss -ltnpH "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2; }
wait_port() { # port seconds
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        port_up "$1" && return 0
        sleep 0.1
    done
    return 1
}
wait_gone() { # pid seconds
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}
stop_pid() { # pid
    [ -n "$1" ] || return 0
    kill "$1" 2>/dev/null || return 0
    wait_gone "$1" 15 || kill -9 "$1" 2>/dev/null
}

# Run servers and bench at a raised priority (root only) so that background
# work on a shared machine (niced builds) disturbs the figures less.
PRIO=${PRIO:--20}
[ "$(id -u)" = 0 ] || PRIO=0
pinned() { # cpu command...
    local cpu=$1
    shift
    nice -n "$PRIO" taskset -c "$cpu" "$@"
}
# For servers started with '&': exec, so that $! is the server's own pid.
pinned_exec() {
    local cpu=$1
    shift
    exec nice -n "$PRIO" taskset -c "$cpu" "$@"
}
bench() { pinned "$BENCH_CPU" "$BENCH" "$@"; }
COMMON=()
set_common() { # port
    COMMON=(--host 127.0.0.1 --port "$1" --domain "$DOMAIN" --users 'bench{n}' --password "$PASSWORD" --mech "$MECH")
}

# Busy percentage of the whole machine over $1 seconds (from /proc/stat).
machine_busy() {
    local a b
    read -ra a < <(head -1 /proc/stat)
    sleep "$1"
    read -ra b < <(head -1 /proc/stat)
    local i tot=0 idle
    for i in 1 2 3 4 5 6 7 8; do tot=$((tot + b[i] - a[i])); done
    idle=$((b[4] - a[4] + b[5] - a[5]))
    # Niced work (column 2) yields to servers and bench running at PRIO < 0.
    if [ "$PRIO" -lt 0 ]; then idle=$((idle + b[2] - a[2])); fi
    [ "$tot" -gt 0 ] || { echo 0; return; }
    echo $(((tot - idle) * 100 / tot))
}
# Other work on this machine (builds, tests) distorts the figures: wait up to
# QUIET_WAIT seconds for the machine to be idle (below 10% busy).
QUIET_WAIT=${QUIET_WAIT:-30}
wait_quiet() {
    local waited=0 busy
    while :; do
        busy=$(machine_busy 2)
        [ "$busy" -lt 10 ] && return 0
        if [ "$waited" -ge "$QUIET_WAIT" ]; then
            log "warning: the machine is ${busy}% busy with other work; figures may be disturbed (see *_disturbed_pct)"
            return 0
        fi
        [ "$waited" = 0 ] && log "machine is ${busy}% busy with other work; waiting up to ${QUIET_WAIT}s for it to calm down"
        waited=$((waited + 2))
    done
}

# Create the accounts on the first start of a server (data dir $1, port $2).
register_once() {
    [ -f "$1/.registered" ] && return 0
    set_common "$2"
    bench register "${COMMON[@]}" --count "$USERS" >&2 || return 1
    touch "$1/.registered"
}

# --- Prosody ----------------------------------------------------------------
start_prosody() {
    local d=$TMP/prosody
    mkdir -p "$d/data"
    cat >"$d/prosody.cfg.lua" <<EOF
-- Generated by switchboard bench/scripts/compare.sh
run_as_root = true
daemonize = false
pidfile = "$d/prosody.pid"
data_path = "$d/data"
certificates = "$d"
log = { warn = "$d/prosody.log" }
interfaces = { "127.0.0.1" }
c2s_interfaces = { "127.0.0.1" }
c2s_ports = { $PROSODY_PORT }
c2s_direct_tls_ports = { }
http_ports = { }
https_ports = { }
network_settings = { tcp_backlog = 1024 }
-- Only what the scenarios exercise; no TLS, no s2s, no offline storage, no rate limits.
modules_enabled = { "roster", "saslauth", "disco", "ping", "register" }
modules_disabled = { "s2s", "offline" }
authentication = "internal_hashed"
storage = "internal"
allow_registration = true
c2s_require_encryption = false
s2s_require_encryption = false
allow_unencrypted_plain_auth = true
VirtualHost "$DOMAIN"
-- XEP-0045 for the muc scenario (no occupant limit in Prosody 0.12).
Component "conference.$DOMAIN" "muc"
EOF
    pinned_exec "$SERVER_CPU" prosody -F --config "$d/prosody.cfg.lua" >"$d/stdout" 2>&1 &
    CUR_PID=$!
    CUR_STOP="stop_pid $CUR_PID"
    wait_port "$PROSODY_PORT" 30 || { log "prosody did not start:"; tail -5 "$d/stdout" "$d/prosody.log" >&2; return 1; }
    register_once "$d" "$PROSODY_PORT"
}

# --- ejabberd ---------------------------------------------------------------
EJ_CMD=()
start_ejabberd() {
    local d=$TMP/ejabberd
    mkdir -p "$d/db" "$d/logs"
    cat >"$d/ejabberd.yml" <<EOF
# Generated by switchboard bench/scripts/compare.sh
hosts:
  - $DOMAIN
loglevel: warning
log_rotate_count: 0
listen:
  -
    port: $EJABBERD_PORT
    ip: "127.0.0.1"
    module: ejabberd_c2s
    max_stanza_size: 262144
    backlog: 1024
    access: c2s
    starttls_required: false
auth_method: internal
auth_password_format: scram
auth_scram_hash: sha
default_db: mnesia
registration_timeout: infinity
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
  register:
    allow: all
modules:
  mod_disco: {}
  mod_ping: {}
  mod_roster: {}
  mod_register:
    ip_access: all
    access: register
    password_strength: 0
  # XEP-0045 for the muc scenario. Defaults of 23.01 otherwise, except the
  # occupant caps (200 users; presence broadcast stops above 1000 users).
  mod_muc:
    max_users: $MUC_MAX_OCCUPANTS
    max_users_presence: 100000
    default_room_options:
      max_users: $MUC_MAX_OCCUPANTS
EOF
    # ejabberdctl normally su's to the ejabberd user, whose PAM session
    # resets the open-file limit to 1024: run as the current user instead,
    # without epmd, with scheduler busy-waiting off so CPU time is honest.
    cat >"$d/ejabberdctl.cfg" <<EOF
ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0 +sbwt none +sbwtdcpu none +sbwtdio none"
ERL_MAX_PORTS=$((NEED_FDS + 1024))
EJABBERD_PID_PATH=$d/ejabberd.pid
EJABBERD_CONFIG_PATH=$d/ejabberd.yml
ERLANG_NODE=ejabberd_bench@localhost
ERL_DIST_PORT=$EJABBERD_DIST_PORT
INET_DIST_INTERFACE=127.0.0.1
EXEC_CMD=as_current_user
EOF
    EJ_CMD=(env HOME="$d" ejabberdctl -c "$d/ejabberdctl.cfg" -s "$d/db" -l "$d/logs")
    (cd "$d" && pinned "$SERVER_CPU" "${EJ_CMD[@]}" foreground >"$d/stdout" 2>&1) &
    CUR_STOP=stop_ejabberd
    wait_port "$EJABBERD_PORT" 60 || { log "ejabberd did not start:"; tail -5 "$d/stdout" >&2; return 1; }
    CUR_PID=$(pid_on_port "$EJABBERD_PORT")
    register_once "$d" "$EJABBERD_PORT"
}
stop_ejabberd() {
    local pid
    pid=$(pid_on_port "$EJABBERD_PORT")
    "${EJ_CMD[@]}" stop >/dev/null 2>&1
    [ -n "$pid" ] && { wait_gone "$pid" 20 || kill -9 "$pid" 2>/dev/null; }
}

# --- switchboard ------------------------------------------------------------
start_switchboard() { # [variant: switchboard_NAME]
    local variant=${1:-switchboard} bin=$SB_BIN extra=""
    if [ "$variant" != switchboard ]; then
        local b="SB_BIN_${variant#switchboard_}" t="SB_TOML_${variant#switchboard_}"
        bin=${!b:-$SB_BIN}
        extra=${!t:-}
    fi
    local d=$TMP/$variant
    if [ ! -x "$bin" ]; then
        log "switchboard binary $bin not found (build it, or BUILD_SWITCHBOARD=1)"
        return 1
    fi
    mkdir -p "$d"
    cat >"$d/switchboard.toml" <<EOF
# Generated by switchboard bench/scripts/compare.sh
domains = ["$DOMAIN"]
[storage]
url = "sqlite://$d/sb.db"
[tls]
cert = "$d/cert.pem"
key = "$d/key.pem"
generate_self_signed = true
[[listen]]
kind = "c2s"
address = "127.0.0.1:$SB_PORT"
require_encryption = false
[[listen]]
kind = "http"
address = "127.0.0.1:$SB_HTTP_PORT"
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
[muc]
max_occupants = $MUC_MAX_OCCUPANTS
$extra
EOF
    if ! "$bin" --config "$d/switchboard.toml" config check >"$d/check.out" 2>&1; then
        log "switchboard rejects the full bench config ($(tail -1 "$d/check.out")); using the minimal one"
        log "  (note: its default per-IP connection / registration limits may then fail the run)"
        sed -i '/^\[registration\]/,/^\[log\]/{/^\[log\]/!d}' "$d/switchboard.toml"
    fi
    pinned_exec "$SERVER_CPU" "$bin" --config "$d/switchboard.toml" serve >"$d/stdout" 2>&1 &
    CUR_PID=$!
    CUR_STOP="stop_pid $CUR_PID"
    wait_port "$SB_PORT" 30 || { log "switchboard did not start:"; tail -5 "$d/stdout" >&2; return 1; }
    [ -f "$d/.registered" ] && return 0
    set_common "$SB_PORT"
    if ! bench register "${COMMON[@]}" --count "$USERS" --concurrency 8 >"$d/register.out" 2>&1; then
        log "in-band registration failed ($(tail -1 "$d/register.out")); using 'switchboard user add'"
        local i
        for ((i = 1; i <= USERS; i++)); do
            "$bin" --config "$d/switchboard.toml" user add "bench$i@$DOMAIN" --password "$PASSWORD" \
                >>"$d/useradd.out" 2>&1 || {
                grep -qi exist "$d/useradd.out" || { log "user add failed: $(tail -1 "$d/useradd.out")"; return 1; }
            }
        done
    fi
    touch "$d/.registered"
}

port_of() {
    case $1 in
        prosody) echo "$PROSODY_PORT" ;;
        ejabberd) echo "$EJABBERD_PORT" ;;
        switchboard | switchboard_*) echo "$SB_PORT" ;;
    esac
}

# --- run --------------------------------------------------------------------
log "servers: $SERVERS; scenarios: $SCENARIOS; muc rooms: ${MUC_ROOMS:-none}; login-idle $LOGIN_COUNT sessions; chat $CHAT_PAIRS pairs x ${CHAT_DURATION}s (window $CHAT_WINDOW, rate $CHAT_RATE/s/pair); presence $PRESENCE_USERS users x $PRESENCE_CONTACTS contacts"
log "server pinned to CPU $SERVER_CPU, bench to CPU $BENCH_CPU; work dir $TMP"
# Every scenario runs against a freshly started server (same data dir), so
# that one scenario's leftovers (e.g. Prosody's heap after thousands of
# sessions came and went) cannot distort the next.
args=()
fresh() { # server port
    if [ -n "$CUR_STOP" ]; then $CUR_STOP; fi
    CUR_STOP="" CUR_PID=""
    if ! "start_${1%%_*}" "$1"; then
        if [ -n "$CUR_STOP" ]; then $CUR_STOP; fi
        CUR_STOP=""
        return 1
    fi
    set_common "$2"
    args=("${COMMON[@]}" --server-pid "$CUR_PID" --label "$1" --out "$RES")
    sleep 1
    wait_quiet
}
run_login_idle() {
    bench login-idle "${args[@]}" --count "$LOGIN_COUNT" --concurrency "$LOGIN_CONCURRENCY" --hold "$LOGIN_HOLD"
}
run_chat_window() {
    bench chat "${args[@]}" --pairs "$CHAT_PAIRS" --duration "$CHAT_DURATION" --window "$CHAT_WINDOW"
}
run_chat_rate() {
    bench chat "${args[@]}" --pairs "$CHAT_PAIRS" --duration "$CHAT_DURATION" --rate "$CHAT_RATE"
}
run_presence() { # server port
    log "$1: presence setup ($PRESENCE_USERS users x $PRESENCE_CONTACTS mutual contacts; not measured)"
    bench presence-setup "${COMMON[@]}" --user-count "$PRESENCE_USERS" --contacts "$PRESENCE_CONTACTS" >&2 || return 1
    fresh "$1" "$2" || return 1
    log "$1: presence ($PRESENCE_RATE updates/s per user, fresh server pid $CUR_PID)"
    bench presence "${args[@]}" --user-count "$PRESENCE_USERS" --contacts "$PRESENCE_CONTACTS" \
        --rate "$PRESENCE_RATE" --duration "$PRESENCE_DURATION"
}
run_muc() { # server port
    bench muc "${args[@]}" --occupants "$MUC_N" --service "conference.$DOMAIN" --posters "$MUC_POSTERS" \
        --start-rate "$MUC_START" --factor "$MUC_FACTOR" --max-steps "$MUC_MAX_STEPS" --step-secs "$MUC_STEP"
}
phase() { # server port description function
    if ! fresh "$1" "$2"; then
        log "$1: server did not restart; skipping $3"
        return 1
    fi
    log "$1: $3 (fresh server, pid $CUR_PID)"
    "$4" "$1" "$2" || log "$1: $3 failed"
    if ! kill -0 "$CUR_PID" 2>/dev/null; then log "$1: server process died during $3!"; fi
}

measured=()
for s in $SERVERS; do
    port=$(port_of "$s")
    if [ -z "$port" ]; then log "unknown server $s"; continue; fi
    if port_up "$port"; then
        log "port $port is already in use; skipping $s"
        continue
    fi
    log "=== $s: setting up (config, accounts)"
    CUR_PID="" CUR_STOP=""
    if ! fresh "$s" "$port"; then
        log "$s could not be set up; skipping it"
        continue
    fi
    log "$s: pid $CUR_PID ($(cat /proc/"$CUR_PID"/comm)), rss $(awk '/VmRSS/{print $2" "$3}' /proc/"$CUR_PID"/status)"
    if has login; then phase "$s" "$port" "login-idle" run_login_idle; fi
    if has chat; then
        phase "$s" "$port" "chat (window $CHAT_WINDOW)" run_chat_window
        if [ "$CHAT_RATE" != 0 ]; then
            phase "$s" "$port" "chat (rate $CHAT_RATE/s per pair)" run_chat_rate
        fi
    fi
    if has presence && [ "$PRESENCE_USERS" != 0 ]; then
        phase "$s" "$port" "presence" run_presence
    fi
    log "=== $s: stopping"
    if [ -n "$CUR_STOP" ]; then $CUR_STOP; fi
    CUR_STOP=""
    measured+=("$s")
done

# MUC rooms: for each size, the servers one right after the other (each on a
# fresh start), so that changing background load on a shared machine skews
# the same-run ratios less than whole-server blocks would.
if has muc; then
    for MUC_N in $MUC_ROOMS; do
        for s in "${measured[@]}"; do
            phase "$s" "$(port_of "$s")" "muc (room of $MUC_N, $MUC_POSTERS posters)" run_muc
            if [ -n "$CUR_STOP" ]; then $CUR_STOP; fi
            CUR_STOP=""
        done
    done
fi

echo
echo "# switchboard-bench comparison ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, server on CPU $SERVER_CPU, bench on CPU $BENCH_CPU)"
echo "# measured: ${measured[*]:-none}; versions: $(dpkg-query -W -f '${Package} ${Version}; ' prosody ejabberd 2>/dev/null)"
echo
if [ -s "$RES" ]; then
    "$BENCH" report "$RES" --baseline "${BASELINE:-switchboard}"
else
    echo "no results"
fi
if [ -n "$RESULTS" ]; then cp "$RES" "$RESULTS" && log "results copied to $RESULTS"; fi
