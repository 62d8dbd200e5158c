#pragma once

/// @file
/// `troupe::event`: a flag that waiters block on until it is set (Python's `threading.Event`).

#include "troupe/atoms.hpp"
#include "troupe/owner_handle.hpp"
#include "troupe/timeout.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/scoped_actor.hpp>

#include <cstddef>

namespace troupe {

/// A flag that waiters block on until someone sets it: the actor version of
/// `threading.Event`. The flag is owned by one actor; every operation is a
/// message to it, so `set`, `clear` and `wait` are ordered as they arrive.
///
/// - `wait` returns at once if the flag is set, else when `set` is called.
///   With a timeout it ends with `errc::timeout` instead of hanging.
/// - `set` wakes every current waiter; later waiters return at once until
///   `clear` resets the flag.
/// - If the event's actor terminates, every waiter gets `errc::owner_down`.
///
/// The handle is cheap and copyable; the actor ends when the last copy and
/// the last waiter are gone (a waiter that terminates leaves the queue: the
/// event monitors its waiters). Event-based actors use `wait_then`, or talk
/// to `handle()` directly:
/// `(wait_atom)` or `(wait_atom, caf::timespan)` is answered with
/// `caf::ok_atom` or an error; `(set_atom)` and `(clear_atom)` are answered
/// with `caf::ok_atom` when sent as requests; `(caf::get_atom)` with the flag
/// as `bool`; `(caf::get_atom, wait_atom)` with the number of waiters.
/// Errors are answered to requests only; a failed asynchronous message is
/// reported on stderr.
class event : public owner_handle {
public:
  /// Spawns an event's actor, initially not set.
  [[nodiscard]] static event make(caf::actor_system& sys);

  /// An empty handle.
  event() = default;

  /// A handle to an existing event's actor, e.g. what `node::lookup`
  /// returned in another process.
  explicit event(caf::actor owner) noexcept : owner_handle(std::move(owner)) {}

  /// Sets the flag and wakes all waiters. When this returns, a later `wait`
  /// from any thread sees the flag set: for an event in this process the
  /// request is in its mailbox; for one in another process this waits for
  /// its answer. `errc::invalid_argument` on an empty handle;
  /// `errc::owner_down` or `errc::peer_lost` when the owner is gone.
  [[nodiscard]] caf::error set() const;

  /// Resets the flag; waiters arriving afterwards block again. Returns as
  /// `set` does.
  [[nodiscard]] caf::error clear() const;

  /// Returns whether the flag is set (blocks for the answer).
  [[nodiscard]] caf::expected<bool> is_set() const;

  /// Returns how many waiters are blocked on the event (blocks for the
  /// answer).
  [[nodiscard]] caf::expected<std::size_t> waiting() const;

  /// Blocks the calling thread until the flag is set or `timeout` passed.
  /// Returns no error on success, `errc::timeout`, or `errc::owner_down`.
  [[nodiscard]] caf::error wait(caf::timespan timeout = forever) const;

  /// As `wait(timeout)`, asking through the caller's `self`.
  [[nodiscard]] caf::error wait(caf::scoped_actor& self, caf::timespan timeout = forever) const;

  /// Non-blocking `wait` for event-based actors: calls `on_ok()` in `self`'s
  /// context once the event is set, or `on_error(caf::error)`
  /// (`errc::timeout`, `errc::owner_down`).
  template <class Self, class OnOk, class OnError>
  void wait_then(Self* self, OnOk on_ok, OnError on_error, caf::timespan timeout = forever) const {
    self->request(owner_, caf::infinite, wait_atom::value, timeout)
      .then([on_ok](caf::ok_atom) mutable { on_ok(); },
            [on_error](caf::error& err) mutable {
              on_error(detail::normalize_request_error(std::move(err)));
            });
  }
};

} // namespace troupe
