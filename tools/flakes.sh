#!/usr/bin/env bash
# The flake hunt (tracker issue 18): runs the whole suite RUNS times in a row
# (20 by default) with HOGS CPU hogs of stress-ng beside it (2 by default, one
# per core here), and counts the tests that failed. Installs stress-ng and
# builds troupe if needed. Each run's CTest output is kept in
# build/flakes/run-N.log.
#
#   tools/flakes.sh [RUNS] [HOGS]
#
# Exit status: 0 when no test failed in any run.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${TROUPE_BUILD_DIR:-$root/build}
runs=${1:-20}
hogs=${2:-2}
if ! command -v stress-ng >/dev/null; then
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq stress-ng >/dev/null
fi
"$root/tools/bootstrap.sh" -DTROUPE_BUILD_TESTS=ON >/dev/null
logs=$build/flakes
rm -rf "$logs"
mkdir -p "$logs"

stress-ng --cpu "$hogs" --quiet &
hog=$!
trap 'kill "$hog" 2>/dev/null; wait "$hog" 2>/dev/null || true' EXIT

echo "flakes: $runs runs of the suite beside $hogs CPU hogs (stress-ng), at $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')"
declare -A failures=()
failed_runs=0
for ((i = 1; i <= runs; ++i)); do
  SECONDS=0
  log=$logs/run-$i.log
  (cd "$build" && ctest --output-on-failure -j "$(nproc)" >"$log" 2>&1) || true
  total=$(grep -oE 'tests failed out of [0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')
  # One failed test per line: "  12 - its name, spaces and all (Failed)".
  names=$(sed -n '/The following tests FAILED:/,$p' "$log" |
    sed -nE 's/^[[:space:]]*[0-9]+ - (.*) \([^()]*\)$/\1/p')
  if [ -n "$names" ]; then
    failed_runs=$((failed_runs + 1))
    while IFS= read -r n; do failures[$n]=$((${failures[$n]:-0} + 1)); done <<<"$names"
  fi
  echo "run $i: $total tests, $(echo -n "$names" | grep -c . || true) failed${names:+: ${names//$'\n'/; }} ($SECONDS s)"
done
echo "flakes: $failed_runs of $runs runs had a failure"
for n in "${!failures[@]}"; do
  echo "  $n failed in ${failures[$n]} of $runs runs"
done
((failed_runs == 0))
