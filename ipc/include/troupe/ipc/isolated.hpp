#pragma once

/// @file
/// `troupe::ipc::spawn_isolated`: an actor in a process of its own, restarted by a supervisor when
/// that process crashes, reached through one stable handle.

#include "troupe/ipc/error.hpp"
#include "troupe/ipc/node.hpp"
#include "troupe/owner_handle.hpp"
#include "troupe/supervisor.hpp"

#include <caf/actor.hpp>
#include <caf/expected.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>

#include <chrono>
#include <string>
#include <utility>

namespace troupe::ipc {

/// How `spawn_isolated` runs its actor.
struct isolation_options {
  /// The actor's name in its supervisor, and the name its process publishes
  /// it under; empty for the type's name and a number unique in this
  /// process.
  std::string name;
  /// When the host process is restarted (a crash of any kind ends it).
  restart_policy restart = restart_policy::permanent;
  /// The supervisor's restart intensity, backoff, buffering and events.
  supervisor_flags flags;
  /// How long a start waits for the new process's actor.
  caf::timespan start_timeout = std::chrono::seconds(10);
  /// How long an orderly stop waits for the actor to exit before SIGKILL.
  caf::timespan shutdown_timeout = std::chrono::seconds(5);
};

/// A child spec that runs an actor of the type registered as `type`, made
/// from `args`, in a process of its own: this program again, in a role that
/// `troupe::ipc::program` serves by itself. For a supervisor of your own;
/// `spawn_isolated` wraps it in one.
///
/// The process is forked by this process's fork server (started with the
/// first host: the program once more, named `troupe.forks`, which never
/// starts a thread), so it skips loading the program's libraries; it is
/// forked twice, and this process is a child subreaper
/// (`PR_SET_CHILD_SUBREAPER`) while it waits for the server's answer, so
/// that the host is this process's child. Code in `main` before
/// `program::run` ran once, in the server; a host has the environment,
/// working directory and standard streams the program had when the current
/// server started. Arguments of more than about 32 KiB serialized (a
/// request of 64 KiB, where they travel as hex) start the program anew
/// instead, as does a server that does not come up or answer in 10 s.
[[nodiscard]] child_spec isolated_child(node& group, std::string type, caf::message args,
                                        const isolation_options& opts = {});

/// An actor of another process under its own supervisor: `actor()` is the
/// supervisor's stable handle to it. The handle owns the supervisor:
/// `stop` ends both in order, and so does the last copy going away.
class isolated_actor : public owner_handle {
public:
  isolated_actor() = default;

  /// The stable handle: messages sent to it during a restart reach the next
  /// incarnation, a request the crashed one did not answer fails with
  /// `errc::child_down`, and a monitor of it sees it end only when the
  /// supervisor gives up (`errc::restart_intensity`) or is stopped.
  [[nodiscard]] const caf::actor& actor() const noexcept {
    return actor_;
  }

  /// Makes one (what `spawn_isolated` calls).
  [[nodiscard]] static caf::expected<isolated_actor>
  make(node& group, std::string type, caf::message args, isolation_options opts = {});

private:
  friend class host_pool;

  /// Runs `child` under a supervisor of its own with `flags`: the handle.
  static caf::expected<isolated_actor> supervise(caf::actor_system& sys, supervisor_flags flags,
                                                 child_spec child);

  isolated_actor(caf::actor supervisor, caf::actor stable)
    : owner_handle(std::move(supervisor)), actor_(std::move(stable)) {}

  caf::actor actor_;
};

/// Spawns an actor of the type registered as `type`
/// (`cfg.add_actor_type`, in `program::configure`) with `args` in a new
/// process of this program, started and restarted by a supervisor by the
/// rules of `opts`. A crash of that process, by a signal (SIGSEGV, abort,
/// SIGKILL) or by an exception that ends the actor, is survived: the
/// supervisor starts a new process within its restart intensity.
///
/// The program must run under `troupe::ipc::program`, which serves the
/// host processes. Fails with `sec::unknown_type` if this process has no
/// such type registered, and with `errc::start_failed` if the first start
/// fails (the arguments do not fit the type, or the process could not
/// start or did not answer within `opts.start_timeout`).
template <class... Ts>
[[nodiscard]] caf::expected<isolated_actor> spawn_isolated(node& group, isolation_options opts,
                                                           std::string type, Ts&&... args) {
  return isolated_actor::make(group, std::move(type), caf::make_message(std::forward<Ts>(args)...),
                              std::move(opts));
}

/// `spawn_isolated` with the default options.
template <class... Ts>
[[nodiscard]] caf::expected<isolated_actor> spawn_isolated(node& group, std::string type,
                                                           Ts&&... args) {
  return spawn_isolated(group, isolation_options{}, std::move(type), std::forward<Ts>(args)...);
}

/// Whether this process is a host that `spawn_isolated` or a `host_pool`
/// started, or their fork server. `program::run` serves such a process by
/// itself; a `main` that does not run under `program` hands it to one:
/// `if (is_isolated_host()) return program{argc, argv}.configure(types).run(nullptr);`
[[nodiscard]] bool is_isolated_host();

} // namespace troupe::ipc
