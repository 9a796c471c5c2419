#!/usr/bin/env bash
# Bounded fuzzing for CI: builds the AFL++ targets (installing cargo-afl if missing), runs each
# target for SECONDS (default 20), two at a time, from the committed corpus, and fails when
# one found a crash or a hang. Prints executions per target.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-20}"

if ! cargo afl --version >/dev/null 2>&1; then
    echo "fuzz/ci.sh: installing cargo-afl" >&2
    cargo install cargo-afl --locked --quiet
fi
cargo afl build --release --quiet

# FUZZ_TARGETS="a b" runs only those.
read -r -a targets <<< "${FUZZ_TARGETS:-stream_preauth stream_postauth sasl_plain sasl_scram data_form muc_owner_form privacy_items roster_set xep0227}"
out="target/fuzz-out"
rm -rf "$out"
mkdir -p "$out"
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1
export AFL_SKIP_CRASHES=1 AFL_IGNORE_SEED_PROBLEMS=1

run() {
    local t="$1"
    cargo afl fuzz -V "$seconds" -t 2000 -i "corpus/$t" -o "$out/$t" -- target/release/fuzz-target "$t" \
        >"$out/$t.log" 2>&1 || { echo "fuzz/ci.sh: afl-fuzz failed for $t:"; tail -n 30 "$out/$t.log"; return 1; }
}

status=0
for ((i = 0; i < ${#targets[@]}; i += 2)); do
    pids=()
    for t in "${targets[@]:i:2}"; do
        run "$t" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || status=1; done
done

for t in "${targets[@]}"; do
    stats="$out/$t/default/fuzzer_stats"
    execs=$(awk -F': *' '$1 ~ /^execs_done/ {print $2}' "$stats" 2>/dev/null || echo "?")
    edges=$(awk -F': *' '$1 ~ /^edges_found/ {print $2}' "$stats" 2>/dev/null || echo "?")
    crashes=$(find "$out/$t/default/crashes" -type f -name 'id:*' 2>/dev/null | wc -l)
    hangs=$(find "$out/$t/default/hangs" -type f -name 'id:*' 2>/dev/null | wc -l)
    echo "fuzz $t: execs=$execs edges=$edges crashes=$crashes hangs=$hangs"
    if [ "$crashes" != 0 ] || [ "$hangs" != 0 ]; then
        status=1
        for f in "$out/$t/default/crashes"/id:* "$out/$t/default/hangs"/id:*; do
            [ -f "$f" ] && { echo "  $f:"; head -c 300 "$f" | od -c | head -n 8; }
        done
    fi
done
exit "$status"
