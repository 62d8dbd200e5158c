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
  "gather|asyncio.gather: three fetches at once, results in argument order"
  "create_task|create_task: background work awaited later"
  "producer_consumer|asyncio.Queue: a bounded queue with backpressure and close"
  "context_manager|Async context manager: release on exit, on failure, on the owner's death"
  "async_iterator|Async iterator: a producer pulled with credit"
  "rate_limit|Rate limiting: 5 in flight, 10 per 100 ms"
  "process|multiprocessing.Process: a sum computed by an actor in a child process"
  "ping_pong|Two processes: request/response round trips over shared memory"
  "pool_map|Pool.map: squares computed by worker processes"
  "process_pool|ProcessPoolExecutor: CPU-bound sums in worker processes"
  "shared_value|Value and Array: four processes add to shared memory, nothing lost"
  "manager|Manager: a shared list and dict used from a child process"
  "supervised_processes|Supervised processes: a worker killed with SIGKILL, restarted, work done"
)
for entry in "${tour[@]}"; do
  name=${entry%%|*}
  printf '\n== %s: %s\n' "$name" "${entry#*|}"
  "$build/bin/$name"
done
printf '\nAll %d examples ran. Source: examples/\n' "${#tour[@]}"
