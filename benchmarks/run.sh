#!/usr/bin/env bash
# Builds the release preset and prints plume's benchmark figures: echo round
# trips/s with latency percentiles, then server RSS per idle WebSocket.
#
#   benchmarks/run.sh                      # the figures the README quotes
#   SERVER=/path/to/other_echo benchmarks/run.sh   # same programs, another server
#
# Both programs spawn the server themselves and stop it by PID when done.
set -euo pipefail
cd "$(dirname "$0")/.."

cmake --preset release >/dev/null
# Only what the figures need: a test that does not build must not block them.
cmake --build --preset release -j2 --target echo_server echo_throughput idle_connections

server="${SERVER:-build/release/examples/echo/echo_server}"
bench=build/release/benchmarks

echo
"$bench/echo_throughput" --server "$server" --connections 100 --size 64 --pipeline 1 \
    --seconds 10 --warmup 2
echo
"$bench/idle_connections" --server "$server" --connections 15000
