#!/usr/bin/env bash
# Starts a three-node chat cluster on this machine: Debian's redis-server on
# 127.0.0.1:${REDIS_PORT:-6379} (no persistence) and three chat nodes
# (examples/chat --redis ... --node nodeK) on ports 4000, 4001 and 4002.
# Open http://127.0.0.1:4000/ and http://127.0.0.1:4001/ in two tabs: the
# messages and the online list cross nodes. Ctrl-C stops every process it
# started, by PID. Extra arguments go to every chat node.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "${PLUME_JOBS:-2}" --target chat

redis_port=${REDIS_PORT:-6379}
pids=()
stop() {  # the nodes first (they tell each other they leave), Redis last
    trap - INT TERM EXIT
    for pid in "${pids[@]:1}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]:1}"; do wait "$pid" 2>/dev/null || true; done
    kill -TERM "${pids[0]}" 2>/dev/null || true
    wait "${pids[0]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize no --loglevel warning &
pids+=($!)
for _ in $(seq 100); do  # up to 5 s for Redis to accept connections
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.05
done
redis-cli -p "$redis_port" ping >/dev/null || { echo "cluster: redis-server did not start" >&2; exit 1; }

for k in 0 1 2; do
    build/release/examples/chat/chat --port $((4000 + k)) --node "node$((k + 1))" \
        --redis "redis://127.0.0.1:$redis_port" "$@" &
    pids+=($!)
done
echo "cluster: redis on 127.0.0.1:$redis_port; chat nodes on http://127.0.0.1:4000/, :4001/, :4002/ (Ctrl-C stops all)"
wait -n "${pids[@]}" || true
echo "cluster: a process exited; stopping the others" >&2
