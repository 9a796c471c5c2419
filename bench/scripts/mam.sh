#!/usr/bin/env bash
# XEP-0313 archive figures in one run (bench/README.md, "mam"): seeds USERS accounts with
# PER_USER archived messages each plus ROOMS rooms with PER_ROOM messages each, through
# SQL (not over XMPP), starts a release server pinned to one core (CORE), then measures
# with switchboard-bench (pinned to BENCH_CORE): the p99 of a page of 50 (the last page of
# one's archive), of a XEP-0431 full-text query (FULLTEXT, a word in 10% of the messages),
# and the bytes on disk per archived message.
#
#   bench/scripts/mam.sh sqlite|postgres
#
# Defaults: USERS=10000 PER_USER=100 ROOMS=100 PER_ROOM=1000 (1,100,000 messages),
# CLIENTS=10 QUERIES=200, CORE=0 BENCH_CORE=1. PostgreSQL runs in a throwaway cluster
# (scripts/pg-test.sh). Results are appended to OUT (default target/mam-bench.tsv).
set -euo pipefail

BACKEND=${1:-sqlite}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if [ "$BACKEND" = postgres ] && [ -z "${SWITCHBOARD_TEST_PG_URL:-}" ]; then
    exec "$ROOT/scripts/pg-test.sh" "$0" postgres
fi
USERS=${USERS:-10000}
PER_USER=${PER_USER:-100}
ROOMS=${ROOMS:-100}
PER_ROOM=${PER_ROOM:-1000}
CLIENTS=${CLIENTS:-10}
QUERIES=${QUERIES:-200}
CORE=${CORE:-0}
BENCH_CORE=${BENCH_CORE:-1}
FULLTEXT=${FULLTEXT:-apples}
OUT=${OUT:-$ROOT/target/mam-bench.tsv}
PORT=${PORT:-15322}
# PROFILE=debug only to try the script quickly; figures come from release.
PROFILE=${PROFILE:-release}
SB=$ROOT/target/$PROFILE/switchboard
BENCH=$ROOT/target/$PROFILE/switchboard-bench

log() { echo "mam-bench: $*" >&2; }

if [ "$PROFILE" = release ]; then
    (cd "$ROOT" && cargo build --release -q -p switchboard -p switchboard-bench)
else
    (cd "$ROOT" && cargo build -q -p switchboard -p switchboard-bench)
fi
TMP=$(mktemp -d)
PID=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

case "$BACKEND" in
    sqlite) URL="sqlite://$TMP/sb.db" ;;
    postgres) URL=$SWITCHBOARD_TEST_PG_URL ;;
    *) log "backend: sqlite or postgres"; exit 2 ;;
esac
cat >"$TMP/sb.toml" <<EOF
domains = ["localhost"]
[storage]
url = "$URL"
[tls]
cert = "$TMP/cert.pem"
key = "$TMP/key.pem"
generate_self_signed = true
[[listen]]
kind = "c2s"
address = "127.0.0.1:$PORT"
require_encryption = false
[limits]
connections_per_ip = 1000000
unauthenticated_per_ip = 1000000
[auth]
failures_per_ip_per_minute = 1000000
[log]
level = "warn"
EOF

# The template account (migrations run here); every seeded account gets its credentials,
# so all log in with password benchpw.
"$SB" --config "$TMP/sb.toml" user add bench0@localhost --password benchpw >/dev/null
NOW_US=$(($(date +%s) * 1000000))
BASE=$((NOW_US - 100 * 86400 * 1000000))
BODY="'message ' || k || ' about ' || CASE (u * 7 + k) % 10 WHEN 0 THEN 'apples' WHEN 1 THEN 'the weather' \
WHEN 2 THEN 'a meeting tomorrow' WHEN 3 THEN 'lunch plans' WHEN 4 THEN 'the release' WHEN 5 THEN 'holidays' \
WHEN 6 THEN 'a bug in production' WHEN 7 THEN 'football' WHEN 8 THEN 'the new office' ELSE 'coffee' END"
STANZA="'<message xmlns=''jabber:client'' from=''bench' || ((u % $USERS) + 1) || '@localhost/phone'' to=''bench' || u || '@localhost'' type=''chat'' id=''m' || k || '''><body>' || $BODY || '</body><origin-id xmlns=''urn:xmpp:sid:0'' id=''o' || k || '''/></message>'"
RSTANZA="'<message xmlns=''jabber:client'' from=''room' || u || '@conference.localhost/nick' || (k % 50) || ''' type=''groupchat'' id=''m' || k || '''><body>' || $BODY || '</body><occupant-id xmlns=''urn:xmpp:occupant-id:0'' id=''x' || (k % 50) || '''/></message>'"
if [ "$BACKEND" = sqlite ]; then
    GEN_USERS="WITH RECURSIVE n(u) AS (SELECT 1 UNION ALL SELECT u + 1 FROM n WHERE u < $USERS)"
    GEN_MSGS="WITH RECURSIVE n(u) AS (SELECT 1 UNION ALL SELECT u + 1 FROM n WHERE u < $USERS), \
m(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM m WHERE k < $PER_USER)"
    GEN_ROOMS="WITH RECURSIVE n(u) AS (SELECT 1 UNION ALL SELECT u + 1 FROM n WHERE u < $ROOMS), \
m(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM m WHERE k < $PER_ROOM)"
    FROM_MSGS="FROM n, m"
    run_sql() { sqlite3 -cmd ".timeout 10000" "$TMP/sb.db" "$1"; }
    size() {
        run_sql "PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
        stat -c %s "$TMP/sb.db"
    }
else
    GEN_USERS="WITH n AS (SELECT generate_series(1, $USERS) AS u)"
    GEN_MSGS="WITH n AS (SELECT generate_series(1, $USERS) AS u), m AS (SELECT generate_series(1, $PER_USER) AS k)"
    GEN_ROOMS="WITH n AS (SELECT generate_series(1, $ROOMS) AS u), m AS (SELECT generate_series(1, $PER_ROOM) AS k)"
    FROM_MSGS="FROM n, m"
    run_sql() { psql -q -v ON_ERROR_STOP=1 -At "$URL" -c "$1"; }
    size() {
        run_sql "VACUUM ANALYZE; SELECT pg_total_relation_size('archive_messages') + pg_total_relation_size('room_archive_messages');" | tail -1
    }
fi
EMPTY=$(size)
log "seeding $USERS x $PER_USER account messages and $ROOMS x $PER_ROOM room messages ($BACKEND)"
START=$(date +%s)
run_sql "$GEN_USERS INSERT INTO accounts (host, username, created_at) SELECT 'localhost', 'bench' || u, 0 FROM n;"
run_sql "$GEN_USERS INSERT INTO credentials (host, username, mechanism, salt, iterations, stored_key, server_key, updated_at) \
SELECT c.host, 'bench' || n.u, c.mechanism, c.salt, c.iterations, c.stored_key, c.server_key, c.updated_at \
FROM n, credentials c WHERE c.host = 'localhost' AND c.username = 'bench0';"
run_sql "$GEN_MSGS INSERT INTO archive_messages (host, username, id, peer, peer_resource, outgoing, origin_id, stanza, body) \
SELECT 'localhost', 'bench' || u, $BASE + (u * $PER_USER + k) * 1000, 'bench' || ((u % $USERS) + 1) || '@localhost', 'phone', \
(k % 2 = 0), 'o' || k, $STANZA, $BODY $FROM_MSGS;"
run_sql "$GEN_ROOMS INSERT INTO room_archive_messages (host, room, id, nick, real_jid, origin_id, body, stanza) \
SELECT 'conference.localhost', 'room' || u, $BASE + ($USERS * $PER_USER + u * $PER_ROOM + k) * 1000 + 1, 'nick' || (k % 50), \
'bench' || ((k % $USERS) + 1) || '@localhost', 'o' || k, $BODY, $RSTANZA $FROM_MSGS;"
TOTAL=$((USERS * PER_USER + ROOMS * PER_ROOM))
SEEDED=$(size)
log "seeded $TOTAL messages in $(($(date +%s) - START)) s"
BYTES=$(((SEEDED - EMPTY) / TOTAL))

taskset -c "$CORE" "$SB" --config "$TMP/sb.toml" serve >"$TMP/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.2
done
COMMON=(--port "$PORT" --users 'bench{n}' --password benchpw --server-pid "$PID" --label "switchboard-$BACKEND" --out "$OUT")
taskset -c "$BENCH_CORE" "$BENCH" --threads 1 mam "${COMMON[@]}" --clients "$CLIENTS" --queries "$QUERIES"
taskset -c "$BENCH_CORE" "$BENCH" --threads 1 mam "${COMMON[@]}" --clients "$CLIENTS" --queries "$QUERIES" --fulltext "$FULLTEXT"
printf 'switchboard-%s\tmam-storage\tbytes_per_message\t%s\tB\n' "$BACKEND" "$BYTES" >>"$OUT"
echo "== switchboard-$BACKEND / mam-storage =="
echo "  messages                     $TOTAL"
echo "  bytes_per_message            $BYTES B (tables, indexes and full-text index)"
