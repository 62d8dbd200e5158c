#pragma once

/// @file
/// `troupe::ipc::process_pool`: worker processes that run plain functions of the program (Python's
/// `Pool` and `ProcessPoolExecutor`).

#include "troupe/executor.hpp"
#include "troupe/future.hpp"
#include "troupe/ipc/error.hpp"
#include "troupe/ipc/node.hpp"
#include "troupe/worker_pool.hpp"

#include <caf/actor_system_config.hpp>
#include <caf/expected.hpp>
#include <caf/message.hpp>

#include <cstddef>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace troupe::ipc {

/// The request a process pool's workers serve: `(task_atom, name, args)`
/// runs the task registered as `name` (see `TROUPE_IPC_TASK`) with the
/// elements of the message `args`, and answers with its result.
using task_atom = caf::atom_constant<caf::atom("task")>;

namespace detail {

/// Any function, its type erased (cast back before the call).
using any_function = void (*)();
/// Calls a registered task with the elements of a message; answers its
/// result as a message, or the error.
using task_invoke_fn = caf::expected<caf::message> (*)(const caf::message&);

/// Registers a task; returns true (for the static initializer of the macro).
bool add_task(const char* name, any_function fn, task_invoke_fn invoke);

/// The invoker of the task registered as `name`, or nullptr.
task_invoke_fn task_named(const std::string& name);

/// Calls `fn` with the elements of `args` (their types checked already).
template <class R, class... Ps, size_t... Is>
R call_with(R (*fn)(Ps...), const caf::message& args, std::index_sequence<Is...>) {
  return fn(args.get_as<std::decay_t<Ps>>(Is)...);
}

/// Calls `fn` with the elements of `args`: `troupe::errc::invalid_argument` if
/// they do not match its parameters, `troupe::errc::task_failed` if it throws, else
/// its result as a message (`caf::unit` for `void`).
template <class R, class... Ps>
caf::expected<caf::message> invoke_with(R (*fn)(Ps...), const caf::message& args) {
  if (!args.match_elements<std::decay_t<Ps>...>())
    return make_error(troupe::errc::invalid_argument,
                      "the arguments do not match the task's parameters");
  try {
    if constexpr (std::is_void_v<R>) {
      call_with(fn, args, std::index_sequence_for<Ps...>{});
      return caf::make_message(caf::unit);
    } else {
      return caf::make_message(call_with(fn, args, std::index_sequence_for<Ps...>{}));
    }
  } catch (const std::exception& ex) {
    return make_error(troupe::errc::task_failed, ex.what());
  } catch (...) {
    return make_error(troupe::errc::task_failed, "non-standard exception");
  }
}

/// The `task_invoke_fn` of the function `Fn`.
template <auto Fn>
caf::expected<caf::message> invoke_task(const caf::message& args) {
  return invoke_with(Fn, args);
}

/// `invoke_with` for a function that travels as an address.
template <class R, class... Ps>
caf::expected<caf::message> invoke_erased(any_function fn, const caf::message& args) {
  return invoke_with(reinterpret_cast<R (*)(Ps...)>(fn), args);
}

/// An `invoke_erased` instance: calls an `any_function` with a message.
using erased_invoke_fn = caf::expected<caf::message> (*)(any_function, const caf::message&);

/// How another process of this program finds `fn` and its invoker: for
/// each, the module (the executable or a shared library) that holds it, the
/// module's build id and the offset in it. Empty if `fn` is not in the code
/// of a loaded module.
std::string task_reference(any_function fn, erased_invoke_fn invoke);

/// The pool's state: the supervised workers and the processes behind them
/// (defined in the ipc sources).
class process_pool_core;

/// Serves as worker `args[1]` of the pool published as `args[0]` in `group`
/// until the pool stops or the parent dies; returns the exit status.
int serve_as_pool_worker(caf::actor_system& sys, node& group, const std::vector<std::string>& args);

} // namespace detail

/// Gives the free function `fn` a name under which actors can run it on a
/// process pool's workers with a `(task_atom, name, args)` request to
/// `process_pool::workers().handle()`. `submit` and `map` do not need it. Use it at
/// namespace scope, once per function, in the program that both parent and
/// worker processes run.
#define TROUPE_IPC_TASK(fn)                                                                        \
  [[maybe_unused]] static const bool troupe_ipc_task_registered_##fn =                             \
    ::troupe::ipc::detail::add_task(#fn,                                                           \
                                    reinterpret_cast<::troupe::ipc::detail::any_function>(&fn),    \
                                    &::troupe::ipc::detail::invoke_task<&fn>)

/// Options of a process pool.
struct process_pool_options {
  /// Worker processes; 0 means the hardware's thread count (at least 1).
  std::size_t workers = 0;
  /// How often a task is run again after its worker process died.
  std::size_t retries = 0;
  /// More than `max_restarts` dead workers within `period` and the pool gives
  /// up (`troupe::errc::restart_intensity`).
  std::size_t max_restarts = 10;
  /// The window of that intensity.
  caf::timespan period = std::chrono::seconds(5);
  /// How long starting one worker process may take.
  caf::timespan start_timeout = std::chrono::seconds(10);
};

/// `concurrent.futures.ProcessPoolExecutor` and `multiprocessing.Pool`: the
/// interface of `troupe::executor` (`submit`, `map`, futures for
/// `as_completed`), with each task run in one of N worker processes.
/// Switching from threads to processes is one line:
/// `auto pool = troupe::executor::make(sys);` becomes
/// `auto pool = troupe::ipc::process_pool::make(sys);` (with
/// `troupe::ipc::configure(cfg)` on the actor system's config). Tasks are
/// plain functions of the program, as Python's pools need functions they can
/// pickle; a lambda with captures stays on the thread executor.
///
/// The worker processes are this program again (`node::spawn_self`), so
/// `main` starts with the line that Python's `if __name__ == "__main__":`
/// guard stands for:
/// `if (process_pool::is_worker()) return process_pool::run_worker(argc, argv);` (or it runs
/// under `troupe::ipc::program`, which serves pool workers itself).
/// They are supervised by a `troupe::worker_pool`: a worker process that dies
/// (kill -9 included) is replaced, and the task it was running fails with
/// `troupe::errc::worker_crashed` or is retried. A task's exception comes back as
/// `troupe::errc::task_failed` with its message. Workers exit when the pool stops or
/// when the parent process dies.
///
/// The node (if one is given) and the actor system must outlive the pool;
/// its methods may be called from any thread.
class process_pool {
public:
  /// Starts the worker processes in `group`, which must outlive the pool.
  [[nodiscard]] static caf::expected<process_pool> make(caf::actor_system& sys, node& group,
                                                        process_pool_options options = {});

  /// Starts the worker processes in a group of the pool's own, created here
  /// and removed when the pool shuts down. This is the one line that moves
  /// `troupe::executor::make(sys)` from threads to processes.
  [[nodiscard]] static caf::expected<process_pool> make(caf::actor_system& sys,
                                                        process_pool_options options = {});

  /// Whether this process was started as a worker of a process pool (its
  /// `this_process_role()`). A program run by `troupe::ipc::program` needs
  /// neither this nor `run_worker`: its workers are served there.
  [[nodiscard]] static bool is_worker();

  /// Runs a worker process until its pool stops or the parent dies; returns
  /// the exit status. `prepare` may register message types on the config.
  [[nodiscard]] static int
  run_worker(int argc, char** argv,
             const std::function<void(caf::actor_system_config&)>& prepare = {});

  /// Takes over `other`'s pool; `other` is then empty.
  process_pool(process_pool&&) noexcept;
  /// Stops this pool (as the destructor does), then takes over `other`'s.
  process_pool& operator=(process_pool&&) noexcept;
  process_pool(const process_pool&) = delete;
  process_pool& operator=(const process_pool&) = delete;

  /// Stops with `shutdown_mode::wait`, as `executor`'s destructor does.
  ~process_pool();

  /// Runs `fn(args...)` in a worker process. `fn` is a plain function of
  /// this program (not a lambda with captures or a functor: like Python's
  /// pickling, only what a worker process can find by itself travels); its
  /// parameters and result must be types CAF can serialize.
  template <class R, class... Ps, class... Args>
  [[nodiscard]] future<R> submit(R (*fn)(Ps...), Args&&... args) {
    auto state = std::make_shared<troupe::detail::future_state<R>>();
    auto ref = detail::task_reference(reinterpret_cast<detail::any_function>(fn),
                                      &detail::invoke_erased<R, Ps...>);
    if (ref.empty()) {
      state->set(make_error(troupe::errc::invalid_argument,
                            "the task is not a function in this program's code"));
      return future<R>{std::move(state)};
    }
    post(ref, caf::make_message(std::decay_t<Ps>(std::forward<Args>(args))...),
         [state](caf::expected<caf::message> res) {
           if (!res) {
             state->set(std::move(res.error()));
           } else if constexpr (std::is_void_v<R>) {
             state->set(caf::expected<void>{});
           } else if (res->template match_elements<R>()) {
             state->set(res->template get_as<R>(0));
           } else {
             state->set(
               make_error(troupe::errc::task_failed, "the task's answer has the wrong type"));
           }
         });
    return future<R>{std::move(state)};
  }

  /// Runs `fn(x)` for every `x` in `inputs`, spread over the workers, and
  /// returns the outcomes in input order.
  template <class R, class P, class Range>
  [[nodiscard]] std::vector<caf::expected<R>> map(R (*fn)(P), const Range& inputs) {
    std::vector<future<R>> futures;
    for (const auto& x : inputs)
      futures.push_back(submit(fn, x));
    std::vector<caf::expected<R>> results;
    results.reserve(futures.size());
    for (auto& f : futures)
      results.push_back(f.get());
    return results;
  }

  /// The supervised pool of worker processes (for stats, or to send tasks
  /// as `(task_atom, name, args)` requests from actors).
  const worker_pool& workers() const;

  /// As `executor::stop`: stops taking tasks (later ones fail with
  /// `troupe::errc::cancelled`), runs the queued ones (`wait`) or fails them with
  /// `troupe::errc::cancelled` (`cancel`), waits for the running ones, then stops
  /// the worker processes, which exit and are reaped. `troupe::errc::timeout` if
  /// tasks still run after `timeout` (a later `stop` waits for the rest);
  /// stopping again is no error.
  [[nodiscard]] caf::error stop(shutdown_mode mode = shutdown_mode::wait,
                                caf::timespan timeout = forever);

private:
  explicit process_pool(std::shared_ptr<detail::process_pool_core> core);

  void post(const std::string& name, caf::message args,
            std::function<void(caf::expected<caf::message>)> done);

  std::shared_ptr<detail::process_pool_core> core_;
};

} // namespace troupe::ipc
