#!/usr/bin/env bash
# The README's demo command: builds troupe (installing what is missing) and
# runs a tour of the examples, each a chapter pattern rebuilt with actors.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${TROUPE_BUILD_DIR:-$root/build}
"$root/tools/bootstrap.sh"

tour=(
  "counter|Race condition: two producers, one counter actor, no lost update"
  "bank_balance|Lock: deposits and withdrawals on an account actor"
  "guarded_state|Lock and RLock: guarded<T>, nested updates, exceptions"
  "event|Event: wait, set, timeout, clear"
  "semaphore|Semaphore: three permits, ten tasks, leases"
  "daemon|Daemon threads: a background actor that does not hold the exit"
  "transfers|Deadlocks: transfers both ways, and a request that times out"
  "supervision|Supervision: a crashed worker restarted behind a stable handle"
  "thread_pool|ThreadPoolExecutor.map: results in input order"
  "as_completed|as_completed: futures in completion order"
  "future_errors|Exceptions in futures: delivered, never swallowed"
  "worker_pool|Worker pool: 100 items over 8 supervised workers"
)
for entry in "${tour[@]}"; do
  name=${entry%%|*}
  printf '\n== %s: %s\n' "$name" "${entry#*|}"
  "$build/bin/$name"
done
printf '\nAll %d examples ran. Source: examples/\n' "${#tour[@]}"
