#!/usr/bin/env bash
# Installs what plume's build, tests and demos need on Debian 12 (as root),
# skipping what is already there. Node packages come from the committed
# tests/node/package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake git pkg-config libasio-dev nlohmann-json3-dev catch2
          libssl-dev zlib1g-dev liburing-dev clang-format nodejs chromium
          clang libclang-rt-14-dev  # clang + libFuzzer for scripts/fuzz.sh
          redis-server              # multi-node PubSub: the tests start their own
          openssl)                  # scripts/make-cert.sh: certificates for wss:// (demo, tests)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
# Debian's nodejs ships npm separately; a NodeSource nodejs includes it.
command -v npm >/dev/null 2>&1 || missing+=(npm)
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -f tests/node/node_modules/.package-lock.json ] ||
   [ tests/node/package-lock.json -nt tests/node/node_modules/.package-lock.json ]; then
    (cd tests/node && npm ci --no-audit --no-fund)
fi
