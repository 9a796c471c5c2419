#!/usr/bin/env bash
# The whole test suite: unit tests, storage tests on SQLite and on a throwaway PostgreSQL,
# and the end-to-end conformance tests against the real server binary.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --bin switchboard
exec scripts/pg-test.sh cargo test --workspace "$@"
