#!/usr/bin/env bash
# Builds and starts the main demo (for now the WebSocket echo server) on
# 127.0.0.1:9001. Extra arguments go to the server, e.g. --port 4000 --deflate.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "${PLUME_JOBS:-2}" --target echo_server
exec build/release/examples/echo/echo_server "$@"
