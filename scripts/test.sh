#!/usr/bin/env bash
# Runs every test: formatting, the developer build (unit, Node interop and
# conformance, CMake consumer tests), then the whole suite again under
# AddressSanitizer + UndefinedBehaviorSanitizer, and once more in a release
# build on Asio's io_uring backend. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

echo "== clang-format"
files=$(git ls-files '*.hpp' '*.cpp' 2>/dev/null || find include examples tests benchmarks -name '*.[hc]pp')
clang-format --dry-run --Werror $files

jobs=${PLUME_JOBS:-2}
for preset in dev asan uring; do
    echo "== $preset build"
    cmake --preset "$preset" >/dev/null
    cmake --build --preset "$preset" -j "$jobs"
    echo "== $preset tests"
    ctest --preset "$preset"
done
# libFuzzer targets, 20 s each (tests/fuzz/, scripts/fuzz.sh).
echo "== fuzz"
scripts/fuzz.sh 20
echo "== all tests passed"
