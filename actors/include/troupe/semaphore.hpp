#pragma once

/// @file
/// `troupe::semaphore`: permits as leases that come back when their holder dies, and an optional
/// rate limit (Python's `threading.Semaphore`).

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

/// A counting semaphore whose permits are leases held by actors: the actor
/// version of `threading.Semaphore`, without its failure mode. The count is
/// owned by one actor that watches every holder and waiter:
///
/// - `acquire` takes a permit or queues the caller (first come, first
///   served) until one is released; with a timeout it ends in
///   `errc::timeout`.
/// - A holder that terminates without releasing gives its permits back (the
///   semaphore monitors it), and a waiter that terminates leaves the queue.
///   A permit can never be lost by a crash.
/// - Releasing a permit one does not hold is `errc::not_held`; acquiring
///   needs a sender (anonymous requests get `errc::invalid_argument`).
/// - If the semaphore's actor terminates, waiters get `errc::owner_down`.
///
/// From threads outside actors, `acquire(self)` returns a `lease` (RAII) held
/// by the `scoped_actor`. Event-based actors use `acquire_then(self, ...)` and
/// `release(self)`, or talk to `handle()` directly: `(acquire_atom)`
/// or `(acquire_atom, caf::timespan)` is answered with `caf::ok_atom` once the
/// sender holds a permit, `(release_atom)` with `caf::ok_atom` (when sent
/// as a request),
/// `(caf::get_atom)` with the number of free permits as `size_t`,
/// `(caf::get_atom, wait_atom)` with the number of queued waiters. Put the
/// timeout in the message, `(acquire_atom, timespan)`, and request with
/// `caf::infinite`: with a CAF request timeout the semaphore does not know the
/// requester gave up, and grants it a permit it will not use until it dies.
/// Errors are answered to requests only; an asynchronous message that fails
/// is reported on stderr (CAF 0.17 would terminate a sender that gets an
/// unexpected error message).
class semaphore : public owner_handle {
public:
  /// A held permit. Releases it on destruction unless released earlier or
  /// moved from. Move-only.
  ///
  /// The permit belongs to the actor it was acquired through (the
  /// `scoped_actor` passed to `acquire`), not to this object: when that actor
  /// is destroyed, the semaphore takes the permit back even if the lease
  /// lives on. Keep the `scoped_actor` alive for as long as the lease.
  class lease {
  public:
    lease() = default;
    /// Takes over `other`'s permit; `other` then holds none.
    lease(lease&& other) noexcept;
    /// Releases the permit this lease holds, then takes over `other`'s.
    lease& operator=(lease&& other) noexcept;
    lease(const lease&) = delete;
    lease& operator=(const lease&) = delete;
    ~lease();

    /// Gives the permit back now (asynchronously, in mailbox order).
    void release();

    /// Whether this lease still holds its permit: false after `release`, in
    /// a moved-from lease, and once the holder actor is gone.
    [[nodiscard]] bool held() const noexcept {
      return holder_ && holder_.lock() != nullptr;
    }

  private:
    friend class semaphore;
    lease(caf::actor sem, caf::weak_actor_ptr holder)
      : sem_(std::move(sem)), holder_(std::move(holder)) {}
    caf::actor sem_;
    caf::weak_actor_ptr holder_;
  };

  /// Spawns a semaphore with `permits` permits; zero permits is
  /// `errc::invalid_argument` (nobody could ever acquire).
  [[nodiscard]] static caf::expected<semaphore> make(caf::actor_system& sys, std::size_t permits);

  /// Blocks until `self` holds a permit or `timeout` passed.
  [[nodiscard]] caf::expected<lease> acquire(caf::scoped_actor& self,
                                             caf::timespan timeout = forever) const;

  /// Non-blocking `acquire` for event-based actors: calls `on_ok()` in
  /// `self`'s context once `self` holds a permit, or `on_error(caf::error)`
  /// (`errc::timeout`, `errc::owner_down`). Give the permit back with
  /// `release(self)`; it also comes back if `self` terminates.
  template <class Self, class OnOk, class OnError>
  void acquire_then(Self* self, OnOk on_ok, OnError on_error,
                    caf::timespan timeout = forever) const {
    self->request(owner_, caf::infinite, acquire_atom::value, timeout)
      .then([on_ok](caf::ok_atom) mutable { on_ok(); },
            [on_error](caf::error& err) mutable {
              on_error(detail::normalize_request_error(std::move(err)));
            });
  }

  /// Gives back one permit that `self` holds (asynchronously, in mailbox
  /// order).
  template <class Self>
  void release(Self* self) const {
    self->send(owner_, release_atom::value);
  }

  /// Returns the number of free permits (blocks for the answer).
  [[nodiscard]] caf::expected<std::size_t> available() const;

  /// Spawns a rate limiter: a semaphore of `permits` (at most that many in
  /// flight) that also grants at most `count` permits within any window of
  /// `per` (e.g. 10 per second); waiters beyond the rate wait for it, in
  /// order. `errc::invalid_argument` for zero permits, a zero count or a
  /// window that is not positive.
  [[nodiscard]] static caf::expected<semaphore> make(caf::actor_system& sys, std::size_t permits,
                                                     std::size_t count, caf::timespan per);

  /// Returns how many actors are queued for a permit (blocks for the answer).
  [[nodiscard]] caf::expected<std::size_t> waiting() const;

private:
  explicit semaphore(caf::actor impl) : owner_handle(std::move(impl)) {}
};

} // namespace troupe
