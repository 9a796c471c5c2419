#!/usr/bin/env bash
# Runs a command against a throwaway PostgreSQL cluster.
#
#   scripts/pg-test.sh cargo test --lib storage
#
# Starts a private cluster (own temp data dir, 127.0.0.1 on a free port, unix
# socket inside the temp dir, trust auth), exports SWITCHBOARD_TEST_PG_URL,
# runs "$@", then stops the cluster and deletes it, whatever happens.
# Uses Debian's packaged server (/usr/lib/postgresql/*/bin), installing
# the `postgresql` package if it is missing.
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi

log() { echo "pg-test: $*" >&2; }

find_bindir() {
    # Highest installed major version.
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

bindir=$(find_bindir)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    log "no PostgreSQL server found, installing the postgresql package"
    if [ "$(id -u)" -ne 0 ]; then
        log "not root: install it with 'apt-get install -y postgresql'"
        exit 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2
    bindir=$(find_bindir)
fi

# initdb refuses to run as root: run the server as an unprivileged user.
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
    pg_user=postgres
    if ! id "$pg_user" >/dev/null 2>&1; then
        pg_user=pgtest
        id "$pg_user" >/dev/null 2>&1 || useradd --system --no-create-home "$pg_user"
    fi
    as_pg=(runuser -u "$pg_user" --)
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pg-test.XXXXXX")
data="$tmp/data"
sock="$tmp/sock"
mkdir "$sock"
if [ "${#as_pg[@]}" -gt 0 ]; then
    chown -R "$pg_user" "$tmp"
fi

started=
cleanup() {
    local rc=$?
    if [ -n "$started" ]; then
        "${as_pg[@]}" "$bindir/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Locale C: predictable, and always present. The schema's COLLATE "C" keeps
# ordering bytewise on real clusters with other locales anyway.
"${as_pg[@]}" "$bindir/initdb" -D "$data" -U postgres --auth=trust \
    --encoding=UTF8 --locale=C --no-sync >"$tmp/initdb.log" 2>&1 || {
    cat "$tmp/initdb.log" >&2
    exit 1
}

# Pick a free port; if another process grabs it before the server binds,
# the start fails and we try the next candidate.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in $(seq 1 20); do
    port=$((20000 + RANDOM % 40000))
    port_in_use "$port" && continue
    # Durability off: the cluster dies with the test run. Plenty of
    # connections: every parallel test opens its own pools.
    if "${as_pg[@]}" "$bindir/pg_ctl" -D "$data" -l "$tmp/server.log" -w -t 30 start -o \
        "-c listen_addresses=127.0.0.1 -p $port -k $sock -c max_connections=500 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        >/dev/null; then
        started=1
        break
    fi
done
if [ -z "$started" ]; then
    log "could not start PostgreSQL; server log:"
    cat "$tmp/server.log" >&2 || true
    exit 1
fi

export SWITCHBOARD_TEST_PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
log "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') at $SWITCHBOARD_TEST_PG_URL"

# Not exec: the EXIT trap must still tear the cluster down.
"$@"
