#!/usr/bin/env bash
# The README's demo command: builds troupe (installing what is missing) and
# runs `ledger`, a multi-process bank whose worker processes are killed with
# SIGKILL while they work, ending with its exactly-once check; the exit
# status is ledger's.
#
#   tools/demo.sh           the ledger demo
#   tools/demo.sh --tour    first a tour of the other examples (each a chapter
#                           pattern rebuilt with actors), then the ledger demo
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${TROUPE_BUILD_DIR:-$root/build}
tour=0
case "${1:-}" in
  "") ;;
  --tour) tour=1 ;;
  *) echo "usage: tools/demo.sh [--tour]" >&2; exit 2 ;;
esac
"$root/tools/bootstrap.sh"

ledger() {
  printf '\n== ledger: a bank in 5 processes; workers killed with SIGKILL, transfers applied exactly once\n'
  printf '$ ledger --role bank --workers 4 --transfers 300000 --chaos-interval 500\n'
  exec "$build/bin/ledger" --role bank --workers 4 --transfers 300000 --chaos-interval 500
}
if ((!tour)); then
  ledger
fi

examples=(
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
for entry in "${examples[@]}"; do
  name=${entry%%|*}
  printf '\n== %s: %s\n' "$name" "${entry#*|}"
  "$build/bin/$name"
done
printf '\nAll %d examples ran. Source: examples/\n' "${#examples[@]}"
ledger
