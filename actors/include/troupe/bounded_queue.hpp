#pragma once

/// @file
/// `troupe::bounded_queue<T>`: a queue actor with a capacity, for backpressure between actors
/// (Python's `asyncio.Queue`).

#include "troupe/atoms.hpp"
#include "troupe/detail/blocking_call.hpp"
#include "troupe/error.hpp"
#include "troupe/full_policy.hpp"
#include "troupe/owner_handle.hpp"
#include "troupe/timeout.hpp"

#include <caf/all.hpp>

#include <cstddef>
#include <utility>

namespace troupe {

/// Counters of a bounded queue.
struct queue_stats {
  std::size_t size = 0;       ///< items in the queue
  std::size_t capacity = 0;   ///< the most items it holds at once (0: no bound)
  std::size_t high_water = 0; ///< the most items it ever held
  std::size_t putters = 0;    ///< puts waiting for room
  std::size_t getters = 0;    ///< gets waiting for an item
  bool closed = false;        ///< whether `close` was called
};

namespace detail {

/// Spawns the actor behind `bounded_queue`.
caf::actor spawn_bounded_queue(caf::actor_system& sys, std::size_t capacity, full_policy policy);

/// Asks a queue actor for its counters.
caf::expected<queue_stats> queue_stats_of(const caf::actor& queue);

} // namespace detail

/// A FIFO of at most `capacity` items owned by one actor, with backpressure:
/// `asyncio.Queue(maxsize)` and the chapter's producer/consumer pattern.
///
/// - `put` waits while the queue is full (or fails with `errc::full`, by
///   policy); a put with a timeout ends in `errc::timeout`. Waiting puts are
///   served in order. Memory stays bounded: the queue holds at most
///   `capacity` items plus one per waiting putter.
/// - `get` waits while the queue is empty; with a timeout it ends in
///   `errc::timeout`.
/// - `close` ends it cleanly: puts fail with `errc::closed` from then on
///   (waiting ones too), gets drain what is left and then fail with
///   `errc::closed`, the consumers' signal that the stream ended.
/// - A waiter that terminates leaves the queue; if the queue's actor
///   terminates, waiters get `errc::owner_down`.
///
/// `T` travels in CAF messages (a built-in type, or one with `inspect`
/// registered with CAF). The handle is cheap and copyable. Actors talk to
/// `handle()` with requests: `(put_atom, caf::timespan, caf::message item)`
/// answered with `caf::ok_atom`; `(get_atom, caf::timespan)` answered with
/// the item; `(close_atom)` answered with `caf::ok_atom`.
template <class T>
class bounded_queue : public owner_handle {
public:
  /// Spawns a queue of at most `capacity` items; 0 means no bound, as
  /// `asyncio.Queue(maxsize=0)` and `managed_queue::make(sys, 0)` do.
  [[nodiscard]] static caf::expected<bounded_queue>
  make(caf::actor_system& sys, std::size_t capacity, full_policy policy = full_policy::wait) {
    return bounded_queue{detail::spawn_bounded_queue(sys, capacity, policy)};
  }

  /// Puts `item` at the end; blocks while the queue is full (policy `wait`).
  caf::error put(T item, caf::timespan timeout = forever) const {
    return detail::call_ok(owner_, forever, caf::put_atom::value, timeout,
                           caf::make_message(std::move(item)));
  }

  /// As `put(item, timeout)`, asking through the caller's `self`.
  caf::error put(caf::scoped_actor& self, T item, caf::timespan timeout = forever) const {
    return detail::call_through(
      self, owner_, forever, [](caf::ok_atom) {}, caf::put_atom::value, timeout,
      caf::make_message(std::move(item)));
  }

  /// Takes the first item; blocks while the queue is empty.
  [[nodiscard]] caf::expected<T> get(caf::timespan timeout = forever) const {
    return detail::ask<T>(owner_, forever, caf::get_atom::value, timeout);
  }

  /// As `get(timeout)`, asking through the caller's `self`.
  [[nodiscard]] caf::expected<T> get(caf::scoped_actor& self,
                                     caf::timespan timeout = forever) const {
    return detail::ask_through<T>(self, owner_, forever, caf::get_atom::value, timeout);
  }

  /// Closes the queue (see above). Returns once the queue has it:
  /// `errc::owner_down` if the queue is gone, `errc::invalid_argument` on an
  /// empty handle.
  [[nodiscard]] caf::error close() const {
    return detail::call_ok(owner_, forever, caf::close_atom::value);
  }

  /// The queue's counters (blocks for the answer).
  [[nodiscard]] caf::expected<queue_stats> stats() const {
    return detail::queue_stats_of(owner_);
  }

private:
  explicit bounded_queue(caf::actor impl) : owner_handle(std::move(impl)) {}
};

} // namespace troupe
