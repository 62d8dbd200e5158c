#!/usr/bin/env bash
# Installs what troupe needs from Debian (only what is missing, so it is quick
# when everything is there), then configures and builds troupe in build/.
# Doxygen is among them (about 20 s of apt) so that the test suite always
# runs docs.builds_without_warnings; the API reference itself is built only
# on request (tools/docs.sh).
#
#   tools/bootstrap.sh [extra cmake arguments...]
#
# TROUPE_BUILD_DIR overrides the build directory.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${TROUPE_BUILD_DIR:-$root/build}
packages=(g++ cmake ninja-build libcaf-dev libboost-dev doctest-dev doxygen
          libzmq3-dev pkg-config # the ZeroMQ anchors of troupe-bench (found with pkg-config)
          tmux) # the test of `troupe top` drives it in a tmux pane

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

cmake -S "$root" -B "$build" -G Ninja "$@" >/dev/null
cmake --build "$build" -j "$(nproc)"
