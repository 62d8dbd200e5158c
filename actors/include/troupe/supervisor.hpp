#pragma once

/// @file
/// `troupe::supervisor`: restarts the actors (or processes) it supervises, with Erlang/OTP's
/// strategies and restart intensity.

#include "troupe/owner_handle.hpp"
#include "troupe/timeout.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace troupe {

/// When a supervisor restarts a child that terminated.
enum class restart_policy {
  /// Always: after a crash and after a normal exit.
  permanent,
  /// Only after an abnormal exit (a crash); a normal exit ends the child.
  transient,
  /// Never; the child's stable handle answers `errc::child_down` from then on.
  temporary,
};

/// Which children a supervisor restarts when one of them must be restarted.
enum class restart_strategy {
  /// Only the child that terminated.
  one_for_one,
  /// All children: the others are stopped (in reverse start order), then all
  /// are started again in order.
  one_for_all,
  /// The child that terminated and every child started after it.
  rest_for_one,
};

/// What a supervisor starts and how it treats it.
struct child_spec {
  /// Unique among the supervisor's children; names the stable handle.
  std::string name;
  /// Starts one incarnation of the child. Called on the supervisor's thread
  /// at start and at every restart; must return a valid actor (an invalid
  /// one, or an exception, counts as a failed start).
  std::function<caf::actor(caf::actor_system&)> start;
  /// When the child is restarted.
  restart_policy restart = restart_policy::permanent;
  /// How long an orderly stop waits for the child to exit after
  /// `exit_reason::user_shutdown` before it kills the child.
  caf::timespan shutdown_timeout = std::chrono::seconds(5);
};

/// Exponential backoff between restarts of one child: the first restart
/// waits `min`, each consecutive one twice as long up to `max`, each delay
/// spread by up to `jitter` (0.1 = ±10%). A child that stayed up for longer
/// than the supervisor's `period` starts again from `min`.
struct restart_backoff {
  /// The delay before the first restart.
  caf::timespan min = std::chrono::milliseconds(10);
  /// The longest delay.
  caf::timespan max = std::chrono::seconds(5);
  /// How far each delay is spread, as a fraction (0 to 1).
  double jitter = 0.0;
};

/// What a supervisor did, as `supervisor_flags::on_event` hears it.
struct supervisor_event {
  /// What happened.
  enum class kind {
    /// `child` crashed (or ended, if permanent) and a new incarnation of it
    /// started; with `one_for_all` or `rest_for_one`, one event per child
    /// started again.
    restarted,
    /// The restart intensity was exceeded: the supervisor stops its children
    /// and exits with `errc::restart_intensity`. `child` is the one whose
    /// end was one too many.
    gave_up,
  };
  /// What happened.
  kind what = kind::restarted;
  /// The child's name.
  std::string child;
  /// Why the child that set this off ended.
  caf::error reason;
};

/// How a supervisor behaves as a whole.
struct supervisor_flags {
  /// Which children are restarted when one must be.
  restart_strategy strategy = restart_strategy::one_for_one;
  /// Restart intensity: more than `max_restarts` restarts within `period`
  /// and the supervisor stops all its children and exits with
  /// `errc::restart_intensity`, which its own supervisor or monitor sees.
  std::size_t max_restarts = 3;
  /// The window of the restart intensity (and how long a child must stay up
  /// for its backoff to start again from `restart_backoff::min`).
  caf::timespan period = std::chrono::seconds(5);
  /// No backoff: restart at once.
  std::optional<restart_backoff> backoff;
  /// Messages a stable handle holds for its child while the child is being
  /// restarted; past that, requests fail with `errc::child_down` and other
  /// messages are reported on stderr and dropped.
  std::size_t max_buffered = 10'000;
  /// Called on the supervisor's own thread after each restart and when it
  /// gives up: a log line, a counter, or a promise the program waits on.
  /// It must not block; an exception it throws is reported on stderr.
  std::function<void(const supervisor_event&)> on_event;
};

/// Spawns a supervisor without waiting for it: for a supervisor that is the
/// child of another (its `child_spec::start`), where blocking would hold a
/// scheduler thread. A bad spec or a failed child start makes the returned
/// actor exit with `errc::invalid_argument` or `errc::start_failed`, which
/// its parent treats as a crash. Stable handles come from the actor:
/// `(caf::get_atom, std::string name)` answers the child's handle.
caf::actor spawn_supervisor(caf::actor_system& sys, supervisor_flags flags,
                            std::vector<child_spec> children);

/// A supervisor: starts children in order, watches them, restarts them by
/// their `restart_policy` and the `restart_strategy`, and gives up (exits
/// with `errc::restart_intensity`) when they crash too often. The model is
/// Erlang/OTP's supervisor, on CAF actors.
///
/// Each child is reached through a **stable handle**, `child(name)`: an actor
/// that forwards to the current incarnation, so a handle taken once keeps
/// working across restarts.
/// - Messages sent to it while the child is being restarted wait in the
///   handle and reach the new incarnation, in order.
/// - A request the crashed incarnation had not answered, including one still
///   in its mailbox, fails with `errc::child_down`; it is never left
///   unanswered. (An asynchronous message that had reached the crashed
///   incarnation's mailbox dies with it, as with any CAF actor.)
/// - `send_exit` to the stable handle is forwarded to the incarnation (so
///   killing a child through its handle is a crash like any other).
/// - The stable handle terminates with the supervisor; monitor it to learn
///   that the child is gone for good.
///
/// A supervisor is an actor and can be the child of another supervisor
/// (`child_spec::start` returns `supervisor::make(...)->handle()`). Sending
/// it an exit message (`stop`) shuts it down in order: children are stopped
/// in reverse start order, each given its `shutdown_timeout` before it is
/// killed, then the supervisor exits with the reason it was given. A
/// supervisor that ends otherwise (killed with `exit_reason::kill`, or
/// unreachable because nobody holds its own handle any more: stable handles
/// do not count) sends its children the reason it ended with, without the
/// ordered shutdown. A child that traps exit messages must honour that
/// reason, or it outlives its supervisor.
///
/// `exit_reason::kill` cannot be intercepted by any CAF actor: sent to a
/// stable handle, it ends the handle, not the child. Crash a child through
/// its handle with any other reason.
class supervisor : public owner_handle {
public:
  /// Validates `children` (non-empty unique names, a start function each),
  /// spawns the supervisor and starts the children in order. Returns
  /// `errc::invalid_argument` for a bad spec and `errc::start_failed` if a
  /// child fails to start (the children started before it are stopped).
  [[nodiscard]] static caf::expected<supervisor>
  make(caf::actor_system& sys, supervisor_flags flags, std::vector<child_spec> children);

  /// The stable handle of the child called `name`, or `errc::invalid_argument`.
  /// The handle does not keep the supervisor alive: keep this `supervisor`
  /// (or its `handle()`) for as long as its children are used.
  [[nodiscard]] caf::expected<caf::actor> child(const std::string& name) const;

private:
  supervisor(caf::actor impl, std::vector<std::pair<std::string, caf::actor>> handles)
    : owner_handle(std::move(impl)), handles_(std::move(handles)) {}

  std::vector<std::pair<std::string, caf::actor>> handles_;
};

} // namespace troupe
