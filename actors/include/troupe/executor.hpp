#pragma once

/// @file
/// `troupe::executor`: runs functions on a pool of worker actors and hands back `troupe::future`s
/// (Python's `ThreadPoolExecutor`).

#include "troupe/error.hpp"
#include "troupe/future.hpp"

#include <caf/actor_system.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/expected.hpp>

#include <atomic>
#include <cstddef>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace troupe {

namespace detail {

/// Bookkeeping an executor shares with its tasks.
class executor_core;

/// One type-erased task of an executor.
class task_base {
public:
  virtual ~task_base() = default;

  /// Runs the task and records its outcome; never throws.
  virtual void run() noexcept = 0;

  /// Records `err` as the outcome of a task that will not run.
  virtual void fail(caf::error err) noexcept = 0;

  /// Claims the task for its one outcome: true for the first caller only
  /// (a task dispatched again after a crash must not finish twice).
  bool claim() noexcept {
    return !claimed_.exchange(true);
  }

private:
  std::atomic<bool> claimed_{false};
};

/// A task as it travels to a worker (a pointer: it never leaves the process).
using task_ptr = std::shared_ptr<task_base>;

/// A task that runs `fn` and stores its value, or its exception as
/// `errc::task_failed`, in a future's state.
template <class R>
class task final : public task_base {
public:
  /// A task that runs `fn` for the future of `state`.
  task(std::function<R()> fn, std::shared_ptr<future_state<R>> state)
    : fn_(std::move(fn)), state_(std::move(state)) {}

  void run() noexcept override {
    try {
      if constexpr (std::is_void_v<R>) {
        fn_();
        state_->set(caf::expected<void>{});
      } else {
        state_->set(fn_());
      }
    } catch (const std::exception& ex) {
      state_->set(make_error(errc::task_failed, ex.what()));
    } catch (...) {
      state_->set(make_error(errc::task_failed, "non-standard exception"));
    }
  }

  void fail(caf::error err) noexcept override {
    state_->set(std::move(err));
  }

private:
  std::function<R()> fn_;
  std::shared_ptr<future_state<R>> state_;
};

} // namespace detail
} // namespace troupe

// Tasks travel only within their process, as pointers, never serialized.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::detail::task_ptr)

namespace troupe {

/// How `executor::stop` and `process_pool::stop` treat tasks that have not started.
enum class shutdown_mode {
  /// Run them all, then stop.
  wait,
  /// Fail them with `errc::cancelled`; tasks already running finish.
  cancel,
};

/// Options of an executor.
struct executor_options {
  /// Worker threads; 0 means the hardware's thread count (at least 1).
  std::size_t workers = 0;
  /// How often a task is run again after its worker crashed.
  std::size_t retries = 0;
};

/// Runs functions on a supervised pool of worker actors for code outside
/// actors: `concurrent.futures.ThreadPoolExecutor`, built on
/// `troupe::worker_pool`.
///
/// - `submit(fn, args...)` returns a `future`; `map(fn, inputs)` returns the
///   results in input order; `as_completed(futures)` yields them in
///   completion order.
/// - A task's exception becomes `errc::task_failed` (with its message) in its
///   future; a task whose worker died fails with `errc::worker_crashed`. No
///   outcome is swallowed: whoever takes the result sees it.
/// - Each worker is a detached actor (a thread of its own), so blocking and
///   CPU-bound tasks do not hold CAF's scheduler threads.
/// - `stop` waits for the queued tasks (or cancels them, by option); the
///   destructor stops and waits. Tasks submitted afterwards fail
///   with `errc::cancelled`.
///
/// The actor system must outlive the executor. An executor is movable, not
/// copyable; its methods may be called from any thread.
class executor {
public:
  /// Starts the workers.
  [[nodiscard]] static caf::expected<executor> make(caf::actor_system& sys,
                                                    executor_options options = {});

  /// Moves the executor; the moved-from object is empty.
  executor(executor&&) noexcept;
  /// Stops this executor (as the destructor does), then takes over `other`'s.
  executor& operator=(executor&&) noexcept;
  executor(const executor&) = delete;
  executor& operator=(const executor&) = delete;

  /// Stops with `shutdown_mode::wait`.
  ~executor();

  /// Runs `fn(args...)` on a worker; the future holds what it returns.
  template <class F, class... Args>
  [[nodiscard]] auto submit(F&& fn, Args&&... args)
    -> future<std::decay_t<std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>>> {
    using result_type = std::decay_t<std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>>;
    auto state = std::make_shared<detail::future_state<result_type>>();
    std::function<result_type()> bound =
      [fn = std::forward<F>(fn), tup = std::make_tuple(std::forward<Args>(args)...)]() mutable {
        return std::apply(fn, tup);
      };
    post(std::make_shared<detail::task<result_type>>(std::move(bound), state));
    return future<result_type>{std::move(state)};
  }

  /// Runs `fn(x)` for every `x` in `inputs` and returns the outcomes in input
  /// order (each a value or the error of that call).
  template <class F, class Range>
  [[nodiscard]] auto map(F fn, const Range& inputs) {
    using input_type = std::decay_t<decltype(*std::begin(inputs))>;
    using result_type = std::decay_t<std::invoke_result_t<F&, const input_type&>>;
    std::vector<future<result_type>> futures;
    futures.reserve(static_cast<std::size_t>(std::distance(std::begin(inputs), std::end(inputs))));
    for (const auto& x : inputs)
      futures.push_back(submit(fn, x));
    std::vector<caf::expected<result_type>> results;
    results.reserve(futures.size());
    for (auto& f : futures)
      results.push_back(f.get());
    return results;
  }

  /// Python's `shutdown(wait=True, cancel_futures=...)`: stops accepting
  /// tasks (later ones fail with `errc::cancelled`), runs the queued ones
  /// (`wait`) or fails them with `errc::cancelled` (`cancel`), waits for the
  /// running ones, and stops the workers. `errc::timeout` if tasks still run
  /// after `timeout`: the executor then takes no tasks, and a later `stop`
  /// (or the destructor) waits for the rest. Stopping again is no error;
  /// `errc::invalid_argument` on a moved-from executor.
  [[nodiscard]] caf::error stop(shutdown_mode mode = shutdown_mode::wait,
                                caf::timespan timeout = forever);

private:
  explicit executor(std::shared_ptr<detail::executor_core> core);

  void post(detail::task_ptr t);

  std::shared_ptr<detail::executor_core> core_;
};

} // namespace troupe
