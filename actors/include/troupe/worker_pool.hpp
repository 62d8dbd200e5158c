#pragma once

/// @file
/// `troupe::worker_pool`: supervised worker actors behind one handle, with balancing or round-robin
/// dispatch.

#include "troupe/owner_handle.hpp"
#include "troupe/timeout.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>

namespace troupe {

/// How a worker pool hands tasks to its workers.
enum class dispatch_policy {
  /// Each task goes to the next worker in turn, at once; tasks queue in the
  /// workers' mailboxes. Cheapest, but a slow task holds up those queued
  /// behind it on the same worker.
  round_robin,
  /// Tasks wait in the pool and go to a worker only when it is idle (workers
  /// pull), so one slow task never holds up the others.
  balancing,
};

/// Options of a worker pool.
struct pool_options {
  /// Number of workers; 0 means the hardware's thread count (at least 1).
  std::size_t workers = 0;
  /// How tasks go to workers.
  dispatch_policy dispatch = dispatch_policy::balancing;
  /// How often a task is dispatched again after the worker running it
  /// crashed; 0 fails it at once with `errc::worker_crashed`.
  std::size_t retries = 0;
  /// Replacement intensity: more than `max_restarts` crashed workers within
  /// `period` and the pool gives up: it fails every task it holds and exits
  /// with `errc::restart_intensity`.
  std::size_t max_restarts = 10;
  /// The window of the replacement intensity.
  caf::timespan period = std::chrono::seconds(5);
};

/// Counters of a worker pool.
struct pool_stats {
  std::size_t workers = 0; ///< workers the pool has now
  std::size_t queued = 0;  ///< tasks waiting in the pool
  std::size_t running = 0; ///< tasks handed to a worker, not answered yet
  uint64_t completed = 0;  ///< answers (values or errors) passed back
  uint64_t crashed = 0;    ///< workers that crashed and were replaced
};

/// Returns the number of workers a pool gets by default: the hardware's
/// thread count, at least 1 (the chapter's "reasonable pool size").
std::size_t default_pool_size() noexcept;

/// N supervised workers behind one actor: `multiprocessing.Pool` and the
/// chapter's worker-pool pattern, as actors. Send a task (any message) to
/// `handle()` as a request; the pool hands it to a worker and passes the
/// worker's answer (or error) back to you.
///
/// Like `caf::actor_pool`, the pool has no mailbox of its own: sending it a
/// task puts the task into a worker's mailbox (or the pool's queue) at once,
/// in the sender's thread, and a worker's answer goes on to you in the
/// worker's thread. The pool keeps each task until its answer came, which
/// is what lets it fail or retry the tasks of a crashed worker.
///
/// - A worker that crashes is replaced. The task it was running, and those
///   queued in its mailbox, fail with `errc::worker_crashed`, or are
///   dispatched again if `retries` allows: never lost silently.
/// - Tasks sent asynchronously (not as requests) are run all the same;
///   their answers are dropped.
/// - When the pool stops (`stop`, an exit message, its last handle going
///   away, or giving up), every task it holds, waiting or running, fails
///   with `errc::cancelled` (or `errc::restart_intensity`), and its workers
///   are stopped with it.
///
/// Workers come from `factory`, called by `make` and, to replace a crashed
/// worker, in the thread that reports the crash; never twice at once.
/// Workers that block (CPU-bound or sleeping tasks) should be spawned
/// `caf::detached`, so they do not hold CAF's scheduler threads.
class worker_pool : public owner_handle {
public:
  /// Spawns one worker: an actor that answers tasks (see the class comment
  /// for when and on which thread it is called).
  using factory_type = std::function<caf::actor(caf::actor_system&)>;

  /// Spawns the pool and its workers. `errc::invalid_argument` for an empty
  /// factory; `errc::start_failed` if the factory fails.
  [[nodiscard]] static caf::expected<worker_pool> make(caf::actor_system& sys, factory_type factory,
                                                       pool_options options = {});

  /// Asks the pool for its counters (blocks for the answer). They are read
  /// worker by worker while tasks keep flowing: exact once the pool is
  /// quiet, close while it is busy.
  [[nodiscard]] caf::expected<pool_stats> stats() const;

  /// Fails every task still waiting in the pool with `errc::cancelled`;
  /// tasks already running finish. The pool keeps serving new tasks.
  void cancel_queued() const;

private:
  explicit worker_pool(caf::actor impl) : owner_handle(std::move(impl)) {}
};

} // namespace troupe
