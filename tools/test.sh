#!/usr/bin/env bash
# The README's test command: builds troupe with its tests (installing what is
# missing) and runs the whole suite through CTest.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${TROUPE_BUILD_DIR:-$root/build}
"$root/tools/bootstrap.sh" -DTROUPE_BUILD_TESTS=ON "$@"
cd "$build"
ctest --output-on-failure -j "$(nproc)"
