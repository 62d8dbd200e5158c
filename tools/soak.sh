#!/usr/bin/env bash
# The long chaos soak (tracker issue 7): builds troupe if needed (through
# tools/bootstrap.sh, installing what is missing), then runs troupe-soak.
#
#   tools/soak.sh [ROUNDS] [troupe-soak options...]
#
# ROUNDS defaults to 100; other options (--nodes, --seconds-per-round, --seed)
# go to troupe-soak (see `build/bin/troupe-soak --help`). TROUPE_BUILD_DIR
# overrides the build directory. Exit status: troupe-soak's (0: every round
# passed).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${TROUPE_BUILD_DIR:-$root/build}
rounds=100
if (($#)) && [[ $1 =~ ^[0-9]+$ ]]; then
  rounds=$1
  shift
fi
"$root/tools/bootstrap.sh" >/dev/null
exec "$build/bin/troupe-soak" --rounds "$rounds" --seconds-per-round 6 "$@"
