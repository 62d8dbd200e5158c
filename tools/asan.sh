#!/usr/bin/env bash
# The whole test suite (tests, examples, benchmark smoke runs, install test)
# built with AddressSanitizer + UndefinedBehaviorSanitizer, in build-asan/
# (TROUPE_ASAN_BUILD_DIR overrides it). Any finding fails the run, also one in
# a child process whose exit status no test looks at: every report is written
# to build-asan/sanitizer-logs/ and the run fails if that is not empty.
#
#   tools/asan.sh [extra cmake arguments...]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export TROUPE_BUILD_DIR=${TROUPE_ASAN_BUILD_DIR:-$root/build-asan}
logs=$TROUPE_BUILD_DIR/sanitizer-logs
rm -rf "$logs"
mkdir -p "$logs"
# Writable by the processes the suite runs as another user (ipc.other_user).
chmod 1777 "$logs"

# halt_on_error: the first finding ends the program with exit code 1 (troupe
# is also built with -fno-sanitize-recover=all). detect_leaks: LeakSanitizer
# runs at every exit of every program; CAF 0.17 frees what it allocates when
# its actor_system is destroyed, so no leak needs a suppression.
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:check_initialization_order=1:strict_init_order=1:log_path=$logs/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$logs/ubsan"

status=0
bash "$root/tools/test.sh" -DTROUPE_SANITIZERS=address,undefined "$@" || status=$?

shopt -s nullglob
reports=("$logs"/*)
if ((${#reports[@]})); then
  for r in "${reports[@]}"; do
    echo "==== $r"
    cat "$r"
  done
  echo "asan: ${#reports[@]} sanitizer report(s), see above" >&2
  status=1
fi
exit "$status"
