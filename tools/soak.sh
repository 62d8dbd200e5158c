#!/usr/bin/env bash
# The chaos soak (tracker issues 7 and 18): builds troupe if needed (through
# tools/bootstrap.sh, installing what is missing), then runs troupe-soak.
#
#   tools/soak.sh [ROUNDS] [troupe-soak options...]   rounds (default 100)
#   tools/soak.sh --duration S [options...]            the long run
#   tools/soak.sh --flood N [options...]               the flood
#
# Rounds: each a fresh group under chaos, 6 s each. The long run keeps one
# group for S seconds and checks that nothing grew; the flood sends N messages
# through one pair of nodes and checks the same. With `--samples FILE.csv`
# and gnuplot, FILE.svg gets the plot of memory over time. Other options
# (--nodes, --seed, --sample-every) go to troupe-soak (see `troupe-soak
# --help`). TROUPE_BUILD_DIR overrides the build directory. Exit status:
# troupe-soak's (0: everything passed).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${TROUPE_BUILD_DIR:-$root/build}
args=()
if (($#)) && [[ $1 =~ ^[0-9]+$ ]]; then
  args=(--rounds "$1" --seconds-per-round 6)
  shift
elif [[ " $* " != *" --duration "* && " $* " != *" --flood "* ]]; then
  args=(--rounds 100 --seconds-per-round 6)
fi
samples=
prev=
for a in "$@"; do
  [ "$prev" = --samples ] && samples=$a
  prev=$a
done
"$root/tools/bootstrap.sh" >/dev/null
status=0
"$build/bin/troupe-soak" "${args[@]}" "$@" || status=$?
if [ -n "$samples" ] && [ -s "$samples" ] && command -v gnuplot >/dev/null; then
  "$root/tools/plot-usage.sh" "$samples" "${samples%.csv}.svg" >/dev/null
fi
exit "$status"
