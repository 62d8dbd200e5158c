#pragma once

#include "troupe/atoms.hpp"
#include "troupe/event.hpp"
#include "troupe/ipc/error.hpp"
#include "troupe/owner_handle.hpp"
#include "troupe/timeout.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/scoped_actor.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

/// @file
/// Synchronisation primitives for a group of processes: the equivalents of
/// `multiprocessing.Manager().Lock()`, `RLock()`, `Semaphore()`,
/// `BoundedSemaphore()`, `Event()`, `Condition()` and `Barrier()`.
///
/// Each primitive is one actor hosted by the process that calls `make`.
/// Publish its `handle()` with `node::publish`; another process builds the
/// same handle type from `node::lookup`'s `caf::actor`. Every operation is a
/// message to that actor, so operations from all threads and processes are
/// ordered as they arrive, and the handles are cheap to copy and safe to use
/// from any thread.
///
/// Locks and permits are leases held by actors (for the blocking calls: the
/// caller's `caf::scoped_actor`). The primitive monitors its holders: a
/// holder that terminates, or whose process dies (even by SIGKILL; the
/// `down_msg` then carries `troupe::errc::peer_lost`), gives its lock or permits
/// back, and the next acquirer is told so (`acquired::previous_holder_died`),
/// because whatever the lock protected may be half-updated. Python's manager
/// locks stay locked forever in that case.
///
/// Errors (`caf::error`, category `troupe` unless said otherwise):
/// `troupe::errc::timeout` when a wait runs out, `troupe::errc::not_held` for releasing (or
/// waiting on a condition with) what the caller does not hold,
/// `troupe::errc::owner_down` if the primitive's actor is gone, `troupe::errc::peer_lost` if
/// the process hosting it is gone, `troupe::errc::would_deadlock` for acquiring a
/// (non-reentrant) `lock` the caller already holds.
///
/// No shared memory of their own: a primitive's state lives in its actor's
/// process, and calls from other processes travel as messages through the
/// group's segment, which the group's nodes create and remove (see `node`).
/// If the hosting process dies, calls fail with `troupe::errc::peer_lost`.
///
/// Event-based actors use the `..._then` helpers or the message protocol that
/// each type documents, with `request(handle, caf::infinite, ...)` and the
/// timeout inside the message: with a CAF request timeout the primitive does
/// not know the requester gave up and may grant it a lock it never uses.

namespace troupe::ipc {

/// Wake one or more condition waiters: `(notify_atom, size_t n)`.
using notify_atom = caf::atom_constant<caf::atom("notify")>;

/// Wake every condition waiter: `(notify_all_atom)`.
using notify_all_atom = caf::atom_constant<caf::atom("notify_all")>;

/// Reset a barrier: `(reset_atom)`.
using reset_atom = caf::atom_constant<caf::atom("reset")>;

/// Break a barrier on purpose: `(abort_atom)`.
using abort_atom = caf::atom_constant<caf::atom("abort")>;

/// What a successful acquire reports.
struct acquired {
  /// True if a holder of this lock (or of a permit, for semaphores)
  /// terminated or lost its process while holding it since the last
  /// acquire reported that, and this acquire got what it gave back: the
  /// state it protected may be inconsistent. Reported once per lost lease.
  bool previous_holder_died = false;
};

/// A lock or a counting semaphore whose permits are leases (the common part
/// of `lock`, `rlock`, `semaphore` and `bounded_semaphore`).
///
/// Message protocol of its actor: `(acquire_atom)` or
/// `(acquire_atom, caf::timespan)` is answered with
/// `(caf::ok_atom, bool previous_holder_died)` once the sender holds a
/// permit (waiters are served first come, first served); `(release_atom)`
/// with `caf::ok_atom`; `(caf::get_atom)` with the free permits as `size_t`;
/// `(caf::get_atom, wait_atom)` with the number of queued acquirers as
/// `size_t`.
///
/// The handle is cheap to copy and may be used from any thread of any
/// process of the group; the permits belong to actors, not to threads.
class permits : public owner_handle {
public:
  /// An empty handle; every call fails with `troupe::errc::invalid_argument`.
  permits() = default;

  /// The handle of an existing primitive's actor (from `node::lookup` in
  /// another process, or `handle()` in this one). No type check happens.
  explicit permits(caf::actor handle) noexcept : owner_handle(std::move(handle)) {}

  /// Blocks until `self` holds a permit or `timeout` passed. The permit
  /// belongs to `self` (the actor, not the thread) until `release(self)` or
  /// until `self` is destroyed: keep the `scoped_actor` alive while holding.
  [[nodiscard]] caf::expected<acquired> acquire(caf::scoped_actor& self,
                                                caf::timespan timeout = forever) const;

  /// Gives back one permit that `self` holds; waits for the answer so that
  /// errors (`troupe::errc::not_held`) come back.
  [[nodiscard]] caf::error release(caf::scoped_actor& self) const;

  /// Non-blocking acquire for event-based actors: calls
  /// `on_ok(acquired)` in `self`'s context once `self` holds a permit, or
  /// `on_error(caf::error)`. Give it back with `release(self)`; it also
  /// comes back when `self` terminates.
  template <class Self, class OnOk, class OnError>
  void acquire_then(Self* self, OnOk on_ok, OnError on_error,
                    caf::timespan timeout = forever) const {
    self->request(owner_, caf::infinite, acquire_atom::value, timeout)
      .then([on_ok](caf::ok_atom, bool died) mutable { on_ok(acquired{died}); },
            [on_error](caf::error& err) mutable {
              on_error(troupe::detail::normalize_request_error(std::move(err)));
            });
  }

  /// Gives back a permit that the event-based actor `self` holds
  /// (asynchronously; a failure is reported on the host's stderr).
  template <class Self>
  void release(Self* self) const {
    self->send(owner_, release_atom::value);
  }

  /// Returns the number of free permits (blocks for the answer).
  [[nodiscard]] caf::expected<std::size_t> available() const;

  /// Returns how many actors wait to acquire (blocks for the answer).
  [[nodiscard]] caf::expected<std::size_t> waiting() const;
};

/// Holds one permit of a `lock`, `rlock`, `semaphore`, `bounded_semaphore`
/// or `condition` for a `scoped_actor`, and gives it back when it goes out
/// of scope, on an exception too: Python's `with lock:`.
///
/// ```
/// auto held = troupe::ipc::lease::acquire(lk, self, 1s);
/// if (!held) return held.error();       // timeout, owner gone...
/// if (held->previous_holder_died()) ... // repair what the lock protects
/// ```
///
/// `release()` gives the permit back early and returns what went wrong.
/// The destructor cannot return an error: if that release fails (the
/// primitive or its process is gone, so nobody else can get the permit
/// either), it says so on stderr. The `scoped_actor` must outlive the guard.
/// A guard belongs to the thread of its `scoped_actor`; the permit belongs
/// to that actor, so it comes back too if the actor or its process dies.
class lease {
public:
  /// Blocks until `self` holds a permit of `primitive` or `timeout` passed.
  [[nodiscard]] static caf::expected<lease>
  acquire(const permits& primitive, caf::scoped_actor& self, caf::timespan timeout = forever) {
    auto res = primitive.acquire(self, timeout);
    if (!res)
      return std::move(res.error());
    return lease{primitive, self, *res};
  }

  /// Takes over `other`'s permit; `other` then holds none.
  lease(lease&& other) noexcept
    : primitive_(std::move(other.primitive_)), self_(std::exchange(other.self_, nullptr)),
      info_(other.info_) {}

  /// Gives back the permit this guard holds (a failure is reported on
  /// stderr), then takes over `other`'s.
  lease& operator=(lease&& other) noexcept {
    if (this != &other) {
      reset();
      primitive_ = std::move(other.primitive_);
      self_ = std::exchange(other.self_, nullptr);
      info_ = other.info_;
    }
    return *this;
  }

  lease(const lease&) = delete;
  lease& operator=(const lease&) = delete;

  ~lease() {
    reset();
  }

  /// Whether the permit came back from a holder that died (see `acquired`).
  [[nodiscard]] bool previous_holder_died() const noexcept {
    return info_.previous_holder_died;
  }

  /// Whether the guard still holds its permit.
  [[nodiscard]] bool holds() const noexcept {
    return self_ != nullptr;
  }

  /// Gives the permit back now; the guard then holds nothing.
  caf::error release() {
    if (self_ == nullptr)
      return caf::none;
    auto* self = std::exchange(self_, nullptr);
    return primitive_.release(*self);
  }

private:
  lease(const permits& primitive, caf::scoped_actor& self, acquired info)
    : primitive_(primitive), self_(&self), info_(info) {}

  void reset() noexcept;

  permits primitive_;
  caf::scoped_actor* self_ = nullptr;
  acquired info_;
};

/// A mutual-exclusion lock held by one actor at a time (Python's `Lock`,
/// but owned: only the holder releases it). Acquiring it again while holding
/// it is `troupe::errc::would_deadlock`. See `permits` for the protocol and for what
/// happens when the holder or its process dies.
class lock : public permits {
public:
  using permits::permits;

  /// Spawns an unlocked lock in this process.
  [[nodiscard]] static lock make(caf::actor_system& sys);

  /// Returns whether someone holds the lock (blocks for the answer).
  [[nodiscard]] caf::expected<bool> locked() const;
};

/// A re-entrant lock (Python's `RLock`): its holder may acquire it again and
/// must release it as often; other actors wait until the count is back to
/// zero. A dying holder releases all its counts at once.
class rlock : public lock {
public:
  using lock::lock;

  /// Spawns an unlocked re-entrant lock in this process.
  [[nodiscard]] static rlock make(caf::actor_system& sys);
};

/// A counting semaphore (Python's `Semaphore`): `acquire` takes a permit, and
/// a permit held by an actor that dies comes back. `release` by an actor that
/// holds a permit gives it back; `release` by any other actor adds a permit
/// (so it also works as a signal between processes, as in Python), which may
/// take the count above its initial value.
class semaphore : public permits {
public:
  using permits::permits;

  /// Spawns a semaphore with `initial` free permits (zero is allowed: then
  /// the first `release` lets the first waiter in).
  [[nodiscard]] static semaphore make(caf::actor_system& sys, std::size_t initial);
};

/// A semaphore whose count never exceeds its initial value (Python's
/// `BoundedSemaphore`): only a holder releases, anyone else gets
/// `troupe::errc::not_held` (Python's `ValueError`).
class bounded_semaphore : public permits {
public:
  using permits::permits;

  /// Spawns a bounded semaphore with `permits` permits; zero permits is
  /// `troupe::errc::invalid_argument`.
  [[nodiscard]] static caf::expected<bounded_semaphore> make(caf::actor_system& sys,
                                                             std::size_t permits);
};

/// What a condition wait reports once it holds the lock again.
struct waited {
  /// False if the wait timed out instead of being notified (Python's
  /// `Condition.wait` returning `False`). The lock is held again either way.
  bool notified = false;
  /// As `acquired::previous_holder_died`, for re-acquiring the lock.
  bool previous_holder_died = false;
};

/// A condition variable bound to its own lock (Python's `Condition`): one
/// actor owns the lock state and the waiters, so `wait` releases the lock and
/// queues the caller in one step, and no notify is lost between them.
///
/// The condition is the lock: `acquire`/`release` as for `lock` (or `rlock`
/// when made re-entrant), then `wait`, `notify` and `notify_all` need the
/// caller to hold it (`troupe::errc::not_held` otherwise). A notified (or timed out)
/// waiter queues for the lock again and `wait` returns once it holds it,
/// with its re-entrant count restored. A waiter that dies leaves the queue;
/// a holder that dies releases the lock, and whoever gets it next is told.
///
/// Protocol, beyond `permits`': `(wait_atom)` or `(wait_atom, caf::timespan)`
/// is answered with `(caf::ok_atom, bool notified, bool previous_holder_died)`;
/// `(notify_atom, size_t n)` and `(notify_all_atom)` with `caf::ok_atom`;
/// `(caf::get_atom, notify_atom)` with the number of waiters not yet
/// notified, as `size_t`.
class condition : public lock {
public:
  using lock::lock;

  /// Spawns a condition with an unlocked lock; `reentrant` makes it an
  /// `rlock` (Python's default for `Condition()`).
  [[nodiscard]] static condition make(caf::actor_system& sys, bool reentrant = true);

  /// Releases the lock `self` holds, waits for a notify or `timeout`, then
  /// re-acquires the lock (for as long as that takes) before returning.
  [[nodiscard]] caf::expected<waited> wait(caf::scoped_actor& self,
                                           caf::timespan timeout = forever) const;

  /// Wakes up to `n` waiters; `self` must hold the lock.
  [[nodiscard]] caf::error notify(caf::scoped_actor& self, std::size_t n = 1) const;

  /// Wakes all waiters; `self` must hold the lock.
  [[nodiscard]] caf::error notify_all(caf::scoped_actor& self) const;

  /// Returns how many actors wait for a notify (not for the lock; blocks for
  /// the answer).
  [[nodiscard]] caf::expected<std::size_t> sleeping() const;
};

/// A flag that processes wait on until it is set (Python's `Event`): layer
/// 1's `troupe::event`, the same handle and protocol, made so that the
/// threads reading the group's rings serve it (see `node`). Its `set` and
/// `clear` on an event of another process return once the event has them.
class event : public troupe::event {
public:
  using troupe::event::event;

  /// Spawns an event in this process, initially not set.
  [[nodiscard]] static event make(caf::actor_system& sys);
};

/// A barrier for a fixed number of parties (Python's `Barrier`): `wait`
/// blocks until `parties` actors (in any processes) wait, then all return
/// together, each with its arrival index (0 for the first to arrive, up to
/// `parties - 1`); then the barrier is ready for the next round.
///
/// If a waiting party terminates or its process dies, if a wait times out,
/// or on `abort`, the barrier breaks: every waiter, and every later `wait`
/// until `reset`, fails with `errc::broken_barrier` (the party that
/// timed out gets `troupe::errc::timeout`).
///
/// Protocol: `(wait_atom)` or `(wait_atom, caf::timespan)` answered with the
/// index as `size_t`; `(reset_atom)` and `(abort_atom)` with `caf::ok_atom`;
/// `(caf::get_atom, wait_atom)` with the number of waiting parties.
class barrier : public owner_handle {
public:
  /// An empty handle; every call fails with `troupe::errc::invalid_argument`.
  barrier() = default;

  /// The handle of an existing barrier's actor (from `node::lookup`).
  explicit barrier(caf::actor handle) noexcept : owner_handle(std::move(handle)) {}

  /// Spawns a barrier for `parties` parties in this process; zero parties is
  /// `troupe::errc::invalid_argument`.
  [[nodiscard]] static caf::expected<barrier> make(caf::actor_system& sys, std::size_t parties);

  /// Blocks until all parties wait; returns this caller's arrival index.
  [[nodiscard]] caf::expected<std::size_t> wait(caf::scoped_actor& self,
                                                caf::timespan timeout = forever) const;

  /// Breaks the barrier: current and later waits fail until `reset`.
  [[nodiscard]] caf::error abort() const;

  /// Makes a broken barrier usable again; parties waiting now fail with
  /// `errc::broken_barrier`.
  [[nodiscard]] caf::error reset() const;

  /// Returns how many parties wait now (blocks for the answer).
  [[nodiscard]] caf::expected<std::size_t> waiting() const;
};

} // namespace troupe::ipc
