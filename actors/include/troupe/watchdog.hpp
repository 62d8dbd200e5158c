#pragma once

/// @file
/// `troupe::watchdog`: reports actors whose message handlers block a thread too long.

#include "troupe/owner_handle.hpp"
#include "troupe/timeout.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace troupe {

/// What a watchdog reports about an actor that stopped reaching its mailbox.
struct stall_report {
  /// The actor's name (`State::name` of a stateful actor, else CAF's
  /// default) and id.
  std::string name;
  /// The actor's id.
  caf::actor_id id = 0;
  /// How long the actor had not reached its mailbox when reported.
  caf::timespan blocked_for{0};
};

/// Options of a watchdog.
struct watchdog_options {
  /// An actor that does not reach its mailbox for this long is reported.
  caf::timespan threshold = std::chrono::milliseconds(100);
  /// How often the watched actors are probed; 0 means threshold / 4.
  caf::timespan interval{0};
  /// Called (on the watchdog's thread) once per stall; the default prints a
  /// line on stderr naming the actor.
  std::function<void(const stall_report&)> on_stall;
};

/// A guard against the chapter's "time.sleep in async code": an event-based
/// actor whose handler blocks holds one of CAF's scheduler threads and
/// delays everything queued behind it. The watchdog probes each watched
/// actor with a high-priority system request (CAF answers
/// `(sys_atom, get_atom, "info")` itself, between two handlers); an actor
/// that has not answered within `threshold` is reported once, with its name.
///
/// The watchdog runs on a thread of its own (a detached actor), so it keeps
/// ticking when every scheduler thread is blocked. Watching costs one small
/// message per actor and interval. The watchdog does not keep watched
/// actors alive and forgets those that end. It ends with the last copy of
/// its handle (or earlier, by `stop`): keep the handle no longer than the
/// actor system, whose shutdown waits for the watchdog's thread.
class watchdog : public owner_handle {
public:
  /// Spawns the watchdog; a threshold that is not positive is
  /// `errc::invalid_argument`.
  [[nodiscard]] static caf::expected<watchdog> make(caf::actor_system& sys,
                                                    watchdog_options options = {});

  /// Starts watching `who`.
  void watch(const caf::actor& who) const;

private:
  explicit watchdog(caf::actor impl);

  /// Shared by the copies of this handle: the last one stops the watchdog.
  std::shared_ptr<const void> stopper_;
};

} // namespace troupe
