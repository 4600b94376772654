#!/usr/bin/env bash
# Builds the release preset and prints plume's benchmark figures: echo round
# trips/s with latency percentiles, server RSS per idle WebSocket, then the
# chat example's memory per joined idle client and its broadcast fan-out
# (with plume's client, then with the epoll load generator).
#
#   benchmarks/run.sh                      # the figures the README quotes
#   SERVER=/path/to/other_echo benchmarks/run.sh   # echo programs, another server
#
# Every program spawns its server itself and stops it by PID when done; each
# bounds its own run (timeouts on opening, joining, fan-out and closing).
set -euo pipefail
cd "$(dirname "$0")/.."

cmake --preset release >/dev/null
# Only what the figures need: a test that does not build must not block them.
cmake --build --preset release -j2 --target echo_server echo_throughput idle_connections \
    chat channel_fanout

server="${SERVER:-build/release/examples/echo/echo_server}"
bench=build/release/benchmarks

echo
"$bench/echo_throughput" --server "$server" --connections 100 --size 64 --pipeline 1 \
    --seconds 10 --warmup 2
echo
"$bench/idle_connections" --server "$server" --connections 15000
# The fan-out with plume's own client (the default), then with the raw epoll
# load generator, which costs less CPU per delivery and shows the server's
# latency without the client's queueing.
for driver in plume epoll; do
    echo
    "$bench/channel_fanout" --server build/release/examples/chat/chat --connections 10000 \
        --messages 200 --rate 20 --driver "$driver"
done
