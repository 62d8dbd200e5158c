#!/usr/bin/env bash
# Fuzzes the ipc frame decoder with libFuzzer for SECONDS (default 600):
#   bash tools/fuzz.sh [SECONDS]
# Installs clang and libFuzzer from Debian if missing, builds build-fuzz with
# clang (-fsanitize=fuzzer-no-link,address,undefined on troupe's libraries),
# writes the seed corpus with the real encoder, runs the fuzzer on it and
# prints the executions. Crash inputs land in build-fuzz/findings; each one
# found becomes a regression input in fuzz/regressions (replayed by the
# test suite).
set -euo pipefail
seconds="${1:-600}"
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build-fuzz"
jobs="${TROUPE_JOBS:-2}"

need=()
command -v clang++ >/dev/null || need+=(clang)
ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 \
  || need+=(libclang-rt-dev)
for tool in cmake ninja; do command -v "$tool" >/dev/null || need+=("${tool/ninja/ninja-build}"); done
dpkg -s libcaf-dev libboost-dev doctest-dev >/dev/null 2>&1 || need+=(libcaf-dev libboost-dev doctest-dev)
if ((${#need[@]})); then
  echo "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTROUPE_BUILD_FUZZ=ON -DTROUPE_BUILD_TESTS=OFF -DTROUPE_BUILD_EXAMPLES=OFF \
  -DTROUPE_BUILD_BENCH=OFF -DTROUPE_SANITIZERS=address,undefined >/dev/null
cmake --build "$build" -j "$jobs" --target troupe-frame-fuzzer troupe-frame-seeds

# The corpus: the committed seeds (valid frames of every kind, fuzz/corpus),
# the regression inputs, and what earlier runs in this build dir found.
corpus="$build/corpus"
findings="$build/findings"
mkdir -p "$corpus" "$findings"
"$build/bin/troupe-frame-seeds" "$corpus" >/dev/null
cp -n "$root"/fuzz/corpus/* "$root"/fuzz/regressions/* "$root"/fuzz/hangs/* "$corpus"/ 2>/dev/null || true

log="$build/fuzz.log"
echo "fuzzing for ${seconds}s (log: $log)"
set +e
ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1" \
  "$build/bin/troupe-frame-fuzzer" "$corpus" -max_total_time="$seconds" -max_len=8194 \
  -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$findings/" \
  >"$log" 2>&1
status=$?
set -e
execs="$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || true)"
tail -n 3 "$log" | grep -E '^(#|Done)' || true
echo "executions: ${execs:-unknown}"
echo "corpus: $(ls "$corpus" | wc -l) inputs"
crashes="$(ls "$findings" 2>/dev/null | wc -l)"
echo "findings: $crashes (in $findings)"
if ((status != 0)); then
  echo "the fuzzer stopped with status $status: see $log"
  exit 1
fi
