#!/usr/bin/env bash
# ThreadSanitizer run over troupe's own concurrent code: builds troupe and its
# test program with -fsanitize=thread in build-tsan/ (TROUPE_TSAN_BUILD_DIR
# overrides it; examples and benchmarks are not built), against CAF built with
# -fsanitize=thread too (tools/caf-tsan.sh builds it once per machine), and
# runs every doctest suite of tests/, i.e. the actors.* and ipc.* suites
# (thread-level races in troupe::actors and in troupe::ipc's reader, watcher
# and writer threads; the multi-process tests run their child processes under
# TSan too). Any report fails the run (tools/tsan.supp suppresses none).
#
#   tools/tsan.sh [extra ctest arguments, e.g. -R 'semaphore']
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${TROUPE_TSAN_BUILD_DIR:-$root/build-tsan}
caf=$("$root/tools/caf-tsan.sh")
TROUPE_BUILD_DIR=$build "$root/tools/bootstrap.sh" -DTROUPE_BUILD_TESTS=ON \
  -DTROUPE_BUILD_EXAMPLES=OFF -DTROUPE_BUILD_BENCH=OFF -DTROUPE_SANITIZERS=thread \
  -DCAF_INCLUDE_DIR="$caf/include" -DCAF_CORE_LIBRARY="$caf/lib/libcaf_core.so" \
  -DCAF_IO_LIBRARY="$caf/lib/libcaf_io.so"

# Every CTest test of this build but the install test is a doctest case; make
# sure those are exactly the actors.* and ipc.* suites.
suites=$("$build/bin/troupe-tests" --list-test-suites --no-version \
           | grep -E '^[a-z_]+\.[a-z_]+$' || true)
if grep -vqE '^(actors|ipc)\.' <<<"$suites"; then
  echo "tsan: unexpected test suites:" $(grep -vE '^(actors|ipc)\.' <<<"$suites") >&2
  exit 1
fi

logs=$build/sanitizer-logs
rm -rf "$logs"
mkdir -p "$logs"
# Writable by the processes the suite runs as another user (ipc.other_user).
chmod 1777 "$logs"
# history_size: longer access history, so both stacks of a race are shown.
# second_deadlock_stack: both stacks of a lock-order inversion.
export TSAN_OPTIONS="suppressions=$root/tools/tsan.supp:history_size=4:second_deadlock_stack=1:log_path=$logs/tsan"

status=0
(cd "$build" && ctest --output-on-failure -j "$(nproc)" -E '^install\.' "$@") || status=$?

shopt -s nullglob
reports=("$logs"/*)
if ((${#reports[@]})); then
  # Thousands of lines when it goes wrong: a count per kind and place here,
  # the reports themselves in the logs.
  cat "${reports[@]}" | grep -h '^SUMMARY: ThreadSanitizer' | sort | uniq -c | sort -rn | head -n 40
  echo "tsan: $(cat "${reports[@]}" | grep -c '^WARNING: ThreadSanitizer') report(s) from" \
       "${#reports[@]} process(es), in $logs" >&2
  status=1
fi
exit "$status"
