#!/usr/bin/env bash
# Builds plume's libFuzzer targets (the `fuzz` preset: clang, ASan, UBSan) and
# runs each for a while from the seed corpus in tests/fuzz/corpus/<target>/.
#
#   scripts/fuzz.sh [seconds-per-target] [target...]     # default: 60 s, every target
#   scripts/fuzz.sh 20 ws_parser http
#
# Targets run PLUME_JOBS (default 2) at a time. Each works in a scratch copy of the seeds under build/fuzz/runs/<target>/
# (the repository's corpus is never written). Prints executions, exec/s and
# coverage per target, and FAIL with the saved input for a crash, leak, UB or
# timeout; exits non-zero if any target failed. Needs clang and libFuzzer:
# scripts/setup.sh installs them (clang, libclang-rt-14-dev).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
all=(ws_parser http v1_json v2_json v2_binary inflate tracker)
targets=("$@")
((${#targets[@]})) || targets=("${all[@]}")

# Longest input per target: enough for several frames / a request head / a
# replication message, short enough to keep each execution fast.
declare -A max_len=([ws_parser]=8192 [http]=4096 [v1_json]=4096 [v2_json]=4096
                    [v2_binary]=2048 [inflate]=8192 [tracker]=4096)
for t in "${targets[@]}"; do
    [[ -n ${max_len[$t]:-} ]] || { echo "fuzz: unknown target '$t' (have: ${all[*]})" >&2; exit 2; }
done

command -v clang++ >/dev/null || { echo "fuzz: clang++ missing; run scripts/setup.sh" >&2; exit 2; }
echo "== fuzz build"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j "${PLUME_JOBS:-2}" --target "${targets[@]/#/fuzz_}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_one() {  # target: fuzz it in build/fuzz/runs/<target>/, exit status in ./rc
    local t=$1 run=build/fuzz/runs/$1 rc=0
    build/fuzz/tests/fuzz/fuzz_"$t" "$run/corpus" -max_total_time="$seconds" \
        -max_len="${max_len[$t]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$run/" >"$run/log" 2>&1 || rc=$?
    echo "$rc" >"$run/rc"
}

# As many targets at a time as there are jobs (PLUME_JOBS, default 2).
jobs=${PLUME_JOBS:-2}
echo "== fuzz ${targets[*]}: ${seconds} s each, ${jobs} at a time"
for t in "${targets[@]}"; do
    run=build/fuzz/runs/$t
    rm -rf "$run"
    mkdir -p "$run/corpus"
    cp tests/fuzz/corpus/"$t"/* "$run/corpus/"
    while (($(jobs -rp | wc -l) >= jobs)); do wait -n || true; done
    run_one "$t" &
done
wait

failed=()
for t in "${targets[@]}"; do
    run=build/fuzz/runs/$t
    rc=$(cat "$run/rc")
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$run/log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$run/log" | tail -1)
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$run/log" | tail -1 || true)
    corp=$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' "$run/log" | tail -1 || true)
    echo "-- $t (-max_len=${max_len[$t]}): executions ${execs:-?}, exec/s ${rate:-?}," \
         "${cov:-cov: ?}, ${corp:-corp: ?}"
    slow=$(grep -o 'Slowest unit: [0-9]* s:' "$run/log" | tail -1 || true)
    [[ -z $slow ]] || echo "   slow input: $slow (see $run/log)"
    crash=$(ls "$run"/crash-* "$run"/leak-* "$run"/timeout-* "$run"/oom-* 2>/dev/null | head -1 || true)
    if ((rc != 0)) || [[ -n $crash ]]; then
        echo "   FAIL $t: exit $rc, input ${crash:-(none saved)}; log $run/log"
        grep -E 'ERROR:|property failed|runtime error' "$run/log" | head -5 | sed 's/^/   /' || true
        failed+=("$t")
    fi
done
if ((${#failed[@]})); then
    echo "== fuzz FAILED: ${failed[*]}"
    echo "   reproduce: build/fuzz/tests/fuzz/fuzz_<target> <input>"
    exit 1
fi
echo "== fuzz: ${#targets[@]} targets ran ${seconds} s each without a failure"
