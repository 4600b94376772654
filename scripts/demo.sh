#!/usr/bin/env bash
# Builds and starts the main demo: the chat server (examples/chat) with its
# browser page at http://127.0.0.1:4000/ (local PubSub, no outside services).
# Extra arguments go to the server, e.g. --port 4100 --require-token.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "${PLUME_JOBS:-2}" --target chat
echo "demo: open http://127.0.0.1:4000/ in two browser tabs (Ctrl-C stops the server)"
exec build/release/examples/chat/chat "$@"
