#include "troupe/executor.hpp"

#include "troupe/detail/task_gate.hpp"
#include "troupe/worker_pool.hpp"

#include <caf/all.hpp>

#include <condition_variable>
#include <mutex>
#include <optional>

namespace troupe {

namespace detail {

using run_atom = caf::atom_constant<caf::atom("tr_run")>;
using cancel_atom = caf::atom_constant<caf::atom("tr_xcancel")>;

/// What an executor shares with its actors: the pool, the submitter, and
/// the count of tasks that have no outcome yet.
class executor_core {
public:
  std::optional<worker_pool> pool;
  caf::actor submitter;
  std::atomic<bool> cancelling{false};
  /// Held by the `stop` that stops the workers.
  std::mutex stop_mtx;

  /// The tasks without an outcome; `stop` closes it and waits.
  task_gate tasks;

  /// Gives `t` its outcome `err` unless it has one.
  void fail(const task_ptr& t, caf::error err) {
    if (t->claim()) {
      t->fail(std::move(err));
      tasks.finished();
    }
  }
};

namespace {

/// A worker: runs one task at a time on its own thread.
caf::behavior worker_impl(caf::event_based_actor*, std::shared_ptr<executor_core> core) {
  return {
    [core](run_atom, const task_ptr& t) {
      if (t->claim()) {
        if (core->cancelling)
          t->fail(make_error(errc::cancelled, "the executor was shut down before the task ran"));
        else
          t->run();
        core->tasks.finished();
      }
      return caf::ok_atom::value;
    },
  };
}

/// Hands tasks to the pool and gives a task its error if the pool fails it
/// (its worker crashed, the pool cancelled or gave up).
caf::behavior submitter_impl(caf::event_based_actor* self, std::shared_ptr<executor_core> core,
                             worker_pool pool) {
  return {
    [self, core, pool](run_atom, const task_ptr& t) {
      self->request(pool.handle(), caf::infinite, run_atom::value, t)
        .then(
          [](caf::ok_atom) {},
          [core, t](caf::error& err) { core->fail(t, normalize_request_error(std::move(err))); });
    },
    [pool](cancel_atom) {
      // Sent from here, the cancel reaches the pool after every task this
      // actor handed over before it, so none slips past it.
      pool.cancel_queued();
    },
  };
}

} // namespace
} // namespace detail

caf::expected<executor> executor::make(caf::actor_system& sys, executor_options options) {
  auto core = std::make_shared<detail::executor_core>();
  pool_options popts;
  popts.workers = options.workers;
  popts.retries = options.retries;
  popts.dispatch = dispatch_policy::balancing;
  auto pool = worker_pool::make(
    sys, [core](caf::actor_system& s) { return s.spawn<caf::detached>(detail::worker_impl, core); },
    popts);
  if (!pool)
    return pool.error();
  core->pool = std::move(*pool);
  core->submitter = sys.spawn(detail::submitter_impl, core, *core->pool);
  return executor{std::move(core)};
}

executor::executor(std::shared_ptr<detail::executor_core> core) : core_(std::move(core)) {}

executor::executor(executor&&) noexcept = default;

executor& executor::operator=(executor&& other) noexcept {
  if (this != &other) {
    (void)stop();
    core_ = std::move(other.core_);
  }
  return *this;
}

executor::~executor() {
  (void)stop();
}

void executor::post(detail::task_ptr t) {
  if (!core_ || !core_->tasks.admit()) {
    if (t->claim())
      t->fail(make_error(errc::cancelled, "the executor is shut down"));
    return;
  }
  caf::anon_send(core_->submitter, detail::run_atom::value, std::move(t));
}

caf::error executor::stop(shutdown_mode mode, caf::timespan timeout) {
  if (!core_)
    return make_error(errc::invalid_argument, "empty executor (moved from)");
  core_->tasks.close();
  if (mode == shutdown_mode::cancel) {
    std::lock_guard<std::mutex> guard{core_->stop_mtx};
    if (!core_->cancelling.exchange(true) && core_->submitter)
      caf::anon_send(core_->submitter, detail::cancel_atom::value);
  }
  if (!core_->tasks.await_idle(timeout))
    return make_error(errc::timeout, "the executor's tasks did not finish in time");
  std::lock_guard<std::mutex> guard{core_->stop_mtx};
  if (core_->submitter) {
    // Break the cycle between the core and the actors that hold it.
    caf::anon_send_exit(core_->submitter, caf::exit_reason::user_shutdown);
    core_->submitter = nullptr;
    auto err = core_->pool->stop();
    core_->pool.reset();
    return err;
  }
  return caf::none;
}

} // namespace troupe
