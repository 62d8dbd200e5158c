#pragma once

/// @file
/// `troupe::ipc::program`: the entry of a program of one or more processes (in the spirit of
/// `CAF_MAIN`), which sets up each process and runs the part it plays.

#include "troupe/ipc/node.hpp"
#include "troupe/ipc/process.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>

#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace troupe::ipc {

/// Thrown by `process_context::check` and caught by `program::run`, which
/// prints it and exits with status 1. Only on the thread of an entry
/// function, never in an actor's handler.
class program_failure : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// What an entry function of a `program` gets: this process's actor system,
/// its node in the program's group, and its arguments.
class process_context {
public:
  /// A context for `role` (empty for the parent) with `args`; `program`
  /// makes one for each entry function.
  process_context(caf::actor_system& sys, node& group, std::string role,
                  std::vector<std::string> args)
    : sys_(sys), group_(group), role_(std::move(role)), args_(std::move(args)) {}

  /// This process's actor system (configured for troupe and by
  /// `program::configure`).
  [[nodiscard]] caf::actor_system& system() const noexcept {
    return sys_;
  }

  /// This process's node: the group the parent created, which every child
  /// joined.
  [[nodiscard]] node& group() const noexcept {
    return group_;
  }

  /// The role this process plays; "" in the parent.
  [[nodiscard]] const std::string& role() const noexcept {
    return role_;
  }

  /// The arguments: the command line's (without the program) in the parent,
  /// those given to `spawn` in a child.
  [[nodiscard]] const std::vector<std::string>& args() const noexcept {
    return args_;
  }

  /// Starts this program again as a child in `role` with `args`; it joins
  /// this group and runs that role's entry function.
  [[nodiscard]] caf::expected<child_process>
  spawn(const std::string& role, const std::vector<std::string>& args = {}) const {
    return group_.spawn_role(role, args);
  }

  /// The value of `x`, or a `program_failure` that `program::run` reports as
  /// `<program>: <what>: <error>` with exit status 1.
  template <class T>
  T check(caf::expected<T> x, const std::string& what) const {
    if (!x)
      fail(what, x.error());
    return std::move(*x);
  }

  /// Nothing if `x` holds no error (a call that returns `caf::expected<void>`,
  /// such as `guarded<T>::update` with a `void` function); otherwise as
  /// `check` for a failed value.
  void check(const caf::expected<void>& x, const std::string& what) const {
    if (!x)
      fail(what, x.error());
  }

  /// Nothing if `err` is none; otherwise as `check` for a failed value.
  void check(const caf::error& err, const std::string& what) const {
    if (err)
      fail(what, err);
  }

  /// Throws the `program_failure` for `what` failing with `err`.
  [[noreturn]] static void fail(const std::string& what, const caf::error& err);

private:
  caf::actor_system& sys_;
  node& group_;
  std::string role_;
  std::vector<std::string> args_;
};

/// The entry of a program whose processes form one troupe group. `main`
/// names the parts; `run` plays the one this process was started for:
///
/// ```cpp
/// int main(int argc, char** argv) {
///   return troupe::ipc::program{argc, argv}
///     .role("child", [](troupe::ipc::process_context& ctx) { ...; return 0; })
///     .serve("worker", [](troupe::ipc::process_context& ctx) { return ctx.system().spawn(w); })
///     .run([](troupe::ipc::process_context& ctx) { ...; return 0; });  // the parent
/// }
/// ```
///
/// In every process `run` configures CAF for troupe (`troupe::ipc::configure`,
/// then `configure`), starts the actor system and the node: the parent
/// creates a group named after the program and its pid, a child joins its
/// parent's (and ends with it, see `group_options::exit_with_parent`). Then
/// it dispatches on `this_process_role()`: the parent's function, a
/// `role`'s, a `serve` role, a process pool's worker (served here: no
/// `process_pool::is_worker` needed), or the host process of an actor
/// that `spawn_isolated` started (served here too). Last it leaves the group, which ends
/// what the process still publishes, and returns the exit status; actors
/// the part spawned itself must have ended by then, as the actor system's
/// shutdown waits for them. A failure to set up, an exception from an entry
/// function (`check` throws one) or an unknown role is printed to stderr as
/// `<program>: <what>` and ends the process with status 1 at once, once the
/// part's locals are destroyed and the node has left (so that an actor the
/// failed part left running cannot hold the exit).
class program {
public:
  /// The program started with `argv` (`argc` entries, as `main` has them):
  /// its name names the parent's group, the rest are `args()`.
  program(int argc, char** argv);

  /// Registers what this program's messages carry (`cfg.add_message_type`),
  /// the same in every process; called before the actor system starts.
  program& configure(std::function<void(caf::actor_system_config&)> fn);

  /// The options of the group the parent creates, and of each node.
  program& options(group_options opts);

  /// A role a child plays (`process_context::spawn(name, args)`): `fn` runs
  /// in the child, and what it returns is the child's exit status.
  program& role(std::string name, std::function<int(process_context&)> fn);

  /// A role whose process serves one actor, the child side of
  /// `process_child` (`process_spec::role`): `fn` makes the actor, which is
  /// published under the name its supervisor asked for (the role's name
  /// when started otherwise), and the process lives until that actor ends
  /// (status 0 after `user_shutdown` or a normal exit, 1 otherwise) or its
  /// parent dies.
  program& serve(std::string name, std::function<caf::actor(process_context&)> fn);

  /// Runs the part this process plays, `parent` in the process started from
  /// the command line; returns the exit status for `main`.
  [[nodiscard]] int run(std::function<int(process_context&)> parent);

private:
  int play(caf::actor_system& sys, const std::string& role,
           const std::function<int(process_context&)>& parent);

  std::string name_;
  std::vector<std::string> args_;
  std::function<void(caf::actor_system_config&)> configure_;
  group_options options_;
  std::map<std::string, std::function<int(process_context&)>> roles_;
  std::map<std::string, std::function<caf::actor(process_context&)>> served_;
};

} // namespace troupe::ipc
