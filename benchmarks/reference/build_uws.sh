#!/usr/bin/env bash
# Builds benchmarks/reference/uws_phoenix.cpp (a minimal Phoenix V2 server on
# uWebSockets, the reference benchmarks/compare.sh measures the chat against)
# into build/reference/uws_phoenix. Not part of plume's CMake build or CI.
#
#   benchmarks/reference/build_uws.sh
#
# The uWebSockets sources (v20.79.0 with its uSockets submodule) come from:
#   UWS_SRC=DIR         a source tree with src/ and uSockets/src/; default
#                       third_party/uWebSockets under the repository (git-ignored):
#       git clone --recursive --branch v20.79.0 --depth 1 \
#           https://github.com/uNetworking/uWebSockets third_party/uWebSockets
#   UWS_GIT_DIR=DIR USOCKETS_GIT_DIR=DIR
#                       or bare git repositories of uWebSockets and uSockets:
#                       v20.79.0 and the uSockets commit it pins are extracted
#                       into build/reference/src (when UWS_SRC has no sources),
#                       and used from there by later runs.
#
# Flags: what uSockets' Makefile and uWebSockets' build.c use without SSL and
# zlib (-O3 -flto, C11 for uSockets), -O3 -DNDEBUG as plume's release preset,
# and no -march=native (the release preset does not use it either).
# CXX/CC pick the compilers (g++/gcc by default); EXTRA_FLAGS adds flags to both.
set -euo pipefail
cd "$(dirname "$0")/../.."

UWS_TAG=v20.79.0
out=build/reference
src="${UWS_SRC:-third_party/uWebSockets}"

have_sources() { [[ -f "$1/src/App.h" && -f "$1/uSockets/src/libusockets.h" ]]; }

extracted="$out/src/uWebSockets-$UWS_TAG"
# Extracted from bare repositories by an earlier run: used again.
if [[ -z "${UWS_SRC:-}" ]] && ! have_sources "$src" && have_sources "$extracted"; then
    src="$extracted"
fi
if ! have_sources "$src" && [[ -n "${UWS_GIT_DIR:-}" ]]; then
    src="$extracted"
    if ! have_sources "$src"; then
        : "${USOCKETS_GIT_DIR:?UWS_GIT_DIR is set: USOCKETS_GIT_DIR must name the uSockets repository}"
        pin=$(git --git-dir="$UWS_GIT_DIR" ls-tree "$UWS_TAG" uSockets | awk '{print $3}')
        [[ -n "$pin" ]] || { echo "build_uws.sh: $UWS_TAG pins no uSockets commit" >&2; exit 1; }
        echo "build_uws.sh: extracting uWebSockets $UWS_TAG and uSockets $pin into $src" >&2
        rm -rf "$src"
        mkdir -p "$src/uSockets"
        git --git-dir="$UWS_GIT_DIR" archive "$UWS_TAG" | tar -x -C "$src"
        git --git-dir="$USOCKETS_GIT_DIR" archive "$pin" | tar -x -C "$src/uSockets"
    fi
fi

if ! have_sources "$src"; then
    cat >&2 <<EOF
build_uws.sh: no uWebSockets sources in $src (want src/App.h and uSockets/src/).
Get uWebSockets $UWS_TAG with its uSockets submodule:

    git clone --recursive --branch $UWS_TAG --depth 1 \\
        https://github.com/uNetworking/uWebSockets third_party/uWebSockets

or point UWS_SRC at such a tree (or UWS_GIT_DIR and USOCKETS_GIT_DIR at bare
clones of uNetworking/uWebSockets and uNetworking/uSockets).
EOF
    exit 1
fi

CC="${CC:-gcc}"
CXX="${CXX:-g++}"
read -ra extra <<<"${EXTRA_FLAGS:-}"
flags=(-O3 -DNDEBUG -flto=auto -DLIBUS_NO_SSL "${extra[@]}")
obj="$out/obj"
rm -rf "$obj"
mkdir -p "$obj"
# uSockets in C (its Makefile: src/*.c src/eventing/*.c src/crypto/*.c; the
# crypto and other event loops compile to nothing without SSL and their macros).
for f in "$src"/uSockets/src/*.c "$src"/uSockets/src/eventing/*.c "$src"/uSockets/src/crypto/*.c; do
    "$CC" -std=c11 "${flags[@]}" -I"$src/uSockets/src" -c "$f" -o "$obj/$(basename "$f" .c).o" &
done
"$CXX" -std=c++20 "${flags[@]}" -DUWS_NO_ZLIB -Wall -Wextra -I"$src/src" -I"$src/uSockets/src" \
    -c benchmarks/reference/uws_phoenix.cpp -o "$obj/uws_phoenix.o" &
wait_all() { local rc=0; for p in $(jobs -p); do wait "$p" || rc=1; done; return $rc; }
wait_all || { echo "build_uws.sh: compilation failed" >&2; exit 1; }
"$CXX" "${flags[@]}" "$obj"/*.o -o "$out/uws_phoenix" -pthread
echo "build_uws.sh: built $out/uws_phoenix (uWebSockets $UWS_TAG from $src)" >&2
