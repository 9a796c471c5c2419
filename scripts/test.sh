#!/usr/bin/env bash
# The whole test suite: unit tests, storage tests on SQLite and on a throwaway PostgreSQL,
# and the end-to-end conformance tests against the real server binary (some of them drive
# it with slixmpp, a Python XMPP client library, installed here into a private venv).
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${CARGO_TARGET_DIR:-target}/slixmpp-venv"
# aiohttp: slixmpp's HTTP upload plugin (xep_0363) needs it.
if ! "$venv/bin/python" -c 'import slixmpp, aiohttp' >/dev/null 2>&1; then
    echo "test.sh: installing slixmpp and aiohttp into $venv" >&2
    python3 -m venv "$venv"
    # `python -m pip`, not bin/pip: a venv copied from another checkout keeps that
    # checkout's path in its scripts' shebangs.
    "$venv/bin/python" -m pip install --quiet 'slixmpp>=1.8,<2' aiohttp
fi
export SWITCHBOARD_TEST_PYTHON="$PWD/$venv/bin/python"

# slixmpp 1.8.3 exactly (Debian 12's python3-slixmpp): the login test drives its SASL quirks
# (tls-unique, then the 'y' flag), which later releases no longer have.
venv18="${CARGO_TARGET_DIR:-target}/slixmpp18-venv"
if ! "$venv18/bin/python" -c 'import slixmpp, sys; sys.exit(slixmpp.__version__ != "1.8.3")' >/dev/null 2>&1; then
    echo "test.sh: installing slixmpp 1.8.3 into $venv18" >&2
    python3 -m venv "$venv18"
    "$venv18/bin/pip" install --quiet 'slixmpp==1.8.3'
fi
export SWITCHBOARD_TEST_PYTHON_SLIXMPP18="$PWD/$venv18/bin/python"

# @xmpp/client, converse.js and puppeteer-core for the web transport tests (conformance/js,
# versions pinned by its package-lock.json), run by node >= 20.10; chromium comes from apt
# (.ci/run installs it and nodejs/npm).
js=conformance/js
if [ ! -d "$js/node_modules/converse.js" ] || [ ! -d "$js/node_modules/@xmpp/client" ] \
    || [ "$js/package-lock.json" -nt "$js/node_modules/.package-lock.json" ]; then
    echo "test.sh: installing $js packages (npm ci)" >&2
    (cd "$js" && npm ci --no-audit --no-fund --silent)
fi

cargo build --bin switchboard
exec scripts/pg-test.sh cargo test --workspace "$@"
