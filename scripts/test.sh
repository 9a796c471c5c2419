#!/usr/bin/env bash
# The whole test suite: unit tests, storage tests on SQLite and on a throwaway PostgreSQL,
# and the end-to-end conformance tests against the real server binary (some of them drive
# it with slixmpp, a Python XMPP client library, installed here into a private venv).
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${CARGO_TARGET_DIR:-target}/slixmpp-venv"
if ! "$venv/bin/python" -c 'import slixmpp' >/dev/null 2>&1; then
    echo "test.sh: installing slixmpp into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet 'slixmpp>=1.8,<2'
fi
export SWITCHBOARD_TEST_PYTHON="$PWD/$venv/bin/python"

cargo build --bin switchboard
exec scripts/pg-test.sh cargo test --workspace "$@"
