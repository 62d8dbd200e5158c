#!/usr/bin/env bash
# Builds troupe's API reference: installs Doxygen (and what configuring troupe
# needs) if missing, configures build/ and builds the `docs` target, which
# fails on any Doxygen warning. Compiles nothing. The HTML lands in
# build/docs/html/index.html.
#
#   tools/docs.sh [extra cmake arguments...]
#
# TROUPE_BUILD_DIR overrides the build directory.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${TROUPE_BUILD_DIR:-$root/build}
packages=(doxygen g++ cmake ninja-build libcaf-dev libboost-dev)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  echo "troupe: installing ${missing[*]}"
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}"
fi

cmake -S "$root" -B "$build" -G Ninja -DTROUPE_BUILD_DOCS=ON "$@" >/dev/null
cmake --build "$build" --target docs
