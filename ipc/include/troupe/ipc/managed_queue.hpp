#pragma once

/// @file
/// `troupe::ipc::managed_queue<T>`: a bounded queue owned by one actor, with leases and
/// `task_done`/`join`, for every process of a group (Python's `Manager().Queue()`).

#include "troupe/detail/weak_timer.hpp"
#include "troupe/ipc/detail/shared_call.hpp"
#include "troupe/ipc/error.hpp"
#include "troupe/ipc/managed_atoms.hpp"
#include "troupe/owner_handle.hpp"
#include "troupe/timeout.hpp"

#include <caf/all.hpp>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

namespace troupe::ipc {

/// An item taken from a `managed_queue` under a lease: `ack(id)` it once it
/// is processed, or it goes back to the queue when its holder dies.
template <class T>
struct leased {
  /// The lease's id, to pass to `managed_queue::ack`.
  uint64_t id = 0;
  /// The item.
  T value;
};

namespace detail {

/// The owner of a `managed_queue<T>`: the items, the callers waiting to get,
/// to put or for `join`, and the leased items with their holders.
template <class T>
class managed_queue_owner : public caf::event_based_actor {
public:
  /// An empty queue of at most `maxsize` items (0: unbounded).
  managed_queue_owner(caf::actor_config& cfg, int64_t maxsize)
    : caf::event_based_actor(cfg), maxsize_(maxsize) {}

  /// The owner's actor name.
  const char* name() const override {
    return "troupe.managed_queue";
  }

  /// The queue's protocol (see `managed_queue`).
  caf::behavior make_behavior() override {
    answer_unexpected_with_type_error(this, "managed_queue");
    set_down_handler([this](caf::down_msg& dm) { on_down(dm.source); });
    return {
      [this](caf::put_atom, T& x, caf::timespan timeout) -> caf::result<caf::ok_atom> {
        if (!full()) {
          push(std::move(x));
          dispatch();
          return caf::ok_atom::value;
        }
        if (timeout <= caf::timespan::zero())
          return make_error(troupe::errc::full, "the queue is full");
        auto rp = make_response_promise();
        auto id = next_id_++;
        auto who = sender_addr();
        ref(who);
        putters_.push_back(putter{id, rp, std::move(x), who});
        expire_after(id, timeout);
        return rp;
      },
      [this](caf::get_atom, caf::timespan timeout) -> caf::result<T> {
        if (!items_.empty()) {
          auto x = take();
          dispatch();
          return x;
        }
        if (timeout <= caf::timespan::zero())
          return make_error(errc::empty, "the queue is empty");
        auto rp = make_response_promise();
        enqueue_getter(getter{next_id_++, rp, {}, sender_addr(), false}, timeout);
        return rp;
      },
      [this](lease_atom, caf::timespan timeout) -> caf::result<uint64_t, T> {
        return lease(sender_addr(), timeout);
      },
      [this](lease_atom, caf::timespan timeout,
             const caf::actor& holder) -> caf::result<uint64_t, T> {
        return lease(caf::actor_cast<caf::actor_addr>(holder), timeout);
      },
      [this](ack_atom, uint64_t id) -> caf::result<caf::ok_atom> {
        auto i = leases_.find(id);
        if (i == leases_.end())
          return make_error(troupe::errc::not_held,
                            "no lease " + std::to_string(id)
                              + " (acked already, or returned to the queue)");
        unref(i->second.holder);
        leases_.erase(i);
        --unfinished_;
        dispatch();
        return caf::ok_atom::value;
      },
      [this](task_done_atom) -> caf::result<caf::ok_atom> {
        if (unfinished_ <= static_cast<int64_t>(leases_.size()))
          return make_error(errc::value_error, "task_done() called too many times");
        --unfinished_;
        dispatch();
        return caf::ok_atom::value;
      },
      [this](caf::join_atom, caf::timespan timeout) -> caf::result<caf::ok_atom> {
        if (unfinished_ == 0)
          return caf::ok_atom::value;
        if (timeout <= caf::timespan::zero())
          return make_error(troupe::errc::timeout, "unfinished tasks remain");
        auto rp = make_response_promise();
        auto id = next_id_++;
        auto who = sender_addr();
        ref(who);
        joiners_.push_back(joiner{id, rp, who});
        expire_after(id, timeout);
        return rp;
      },
      [this](len_atom) { return static_cast<int64_t>(items_.size()); },
      [this](full_atom) { return full(); },
      [this](len_atom, lease_atom) { return static_cast<int64_t>(leases_.size()); },
      [this](shared_expire_atom, uint64_t id) {
        // Only this owner's timer relay expires a wait.
        if (timer_.from_relay(current_sender()))
          expire(id);
      },
    };
  }

private:
  struct getter {
    uint64_t id;
    caf::response_promise rp;
    caf::actor_addr holder; // who holds the lease (leased gets)
    caf::actor_addr who;    // who asked
    bool leased;
  };

  struct putter {
    uint64_t id;
    caf::response_promise rp;
    T value;
    caf::actor_addr who;
  };

  struct joiner {
    uint64_t id;
    caf::response_promise rp;
    caf::actor_addr who;
  };

  struct lease_entry {
    T value;
    caf::actor_addr holder;
  };

  caf::actor_addr sender_addr() {
    return caf::actor_cast<caf::actor_addr>(current_sender());
  }

  bool full() const {
    return maxsize_ > 0 && static_cast<int64_t>(items_.size()) >= maxsize_;
  }

  void push(T x) {
    items_.push_back(std::move(x));
    ++unfinished_;
  }

  T take() {
    auto x = std::move(items_.front());
    items_.pop_front();
    return x;
  }

  caf::result<uint64_t, T> lease(caf::actor_addr holder, caf::timespan timeout) {
    if (!holder)
      return make_error(troupe::errc::invalid_argument,
                        "a lease needs a holder (an anonymous request?)");
    if (!items_.empty()) {
      auto id = grant(holder, take());
      auto x = leases_.at(id).value;
      dispatch();
      return caf::result<uint64_t, T>{id, std::move(x)};
    }
    if (timeout <= caf::timespan::zero())
      return make_error(errc::empty, "the queue is empty");
    auto rp = make_response_promise();
    enqueue_getter(getter{next_id_++, rp, holder, sender_addr(), true}, timeout);
    return rp;
  }

  /// Records a lease of `x` by `holder`; returns its id.
  uint64_t grant(const caf::actor_addr& holder, T x) {
    auto id = next_id_++;
    ref(holder);
    leases_.emplace(id, lease_entry{std::move(x), holder});
    return id;
  }

  void enqueue_getter(getter g, caf::timespan timeout) {
    ref(g.who);
    if (g.leased)
      ref(g.holder);
    auto id = g.id;
    getters_.push_back(std::move(g));
    expire_after(id, timeout);
  }

  void expire_after(uint64_t id, caf::timespan timeout) {
    // Not delayed_send: it would keep this owner (and the actor system's
    // shutdown) waiting until the timer fires.
    timer_.schedule(this, timeout, id);
  }

  void on_exit() override {
    timer_.stop();
  }

  troupe::detail::weak_timer<shared_expire_atom> timer_;

  void expire(uint64_t id) {
    for (auto i = getters_.begin(); i != getters_.end(); ++i)
      if (i->id == id) {
        i->rp.deliver(make_error(errc::empty, "no item within the timeout"));
        drop_getter(i);
        return;
      }
    for (auto i = putters_.begin(); i != putters_.end(); ++i)
      if (i->id == id) {
        i->rp.deliver(make_error(troupe::errc::full, "the queue stayed full for the timeout"));
        unref(i->who);
        putters_.erase(i);
        return;
      }
    for (auto i = joiners_.begin(); i != joiners_.end(); ++i)
      if (i->id == id) {
        i->rp.deliver(make_error(troupe::errc::timeout, "unfinished tasks remain"));
        unref(i->who);
        joiners_.erase(i);
        return;
      }
  }

  void drop_getter(typename std::deque<getter>::iterator i) {
    unref(i->who);
    if (i->leased)
      unref(i->holder);
    getters_.erase(i);
  }

  /// Serves waiting getters, admits waiting putters and releases joiners
  /// as long as that makes progress.
  void dispatch() {
    for (;;) {
      bool progress = false;
      while (!items_.empty() && !getters_.empty()) {
        auto g = getters_.begin();
        if (g->leased) {
          auto id = grant(g->holder, take());
          g->rp.deliver(id, leases_.at(id).value);
        } else {
          g->rp.deliver(take());
        }
        drop_getter(g);
        progress = true;
      }
      while (!putters_.empty() && !full()) {
        auto p = putters_.begin();
        push(std::move(p->value));
        p->rp.deliver(caf::ok_atom::value);
        unref(p->who);
        putters_.erase(p);
        progress = true;
      }
      if (!progress)
        break;
    }
    if (unfinished_ == 0) {
      for (auto& j : joiners_) {
        j.rp.deliver(caf::ok_atom::value);
        unref(j.who);
      }
      joiners_.clear();
    }
  }

  /// Monitors `x` while something of it is pending here (once per actor).
  void ref(const caf::actor_addr& x) {
    if (x && x != address() && refs_[x]++ == 0)
      monitor(x);
  }

  void unref(const caf::actor_addr& x) {
    if (!x || x == address())
      return;
    auto i = refs_.find(x);
    if (i != refs_.end() && --i->second == 0) {
      demonitor(x);
      refs_.erase(i);
    }
  }

  /// `x` died (or its process did): its waits end, its leased items go back
  /// to the front of the queue, oldest lease first.
  void on_down(const caf::actor_addr& x) {
    refs_.erase(x);
    auto gone = [&](const caf::actor_addr& y) { return y == x; };
    for (auto i = getters_.begin(); i != getters_.end();)
      i = gone(i->who) || (i->leased && gone(i->holder)) ? getters_.erase(i) : std::next(i);
    for (auto i = putters_.begin(); i != putters_.end();)
      i = gone(i->who) ? putters_.erase(i) : std::next(i);
    for (auto i = joiners_.begin(); i != joiners_.end();)
      i = gone(i->who) ? joiners_.erase(i) : std::next(i);
    std::vector<T> back;
    for (auto i = leases_.begin(); i != leases_.end();) {
      if (gone(i->second.holder)) {
        back.push_back(std::move(i->second.value));
        i = leases_.erase(i);
      } else {
        ++i;
      }
    }
    items_.insert(items_.begin(), std::make_move_iterator(back.begin()),
                  std::make_move_iterator(back.end()));
    dispatch();
  }

  int64_t maxsize_;
  std::deque<T> items_;
  int64_t unfinished_ = 0;
  uint64_t next_id_ = 1;
  std::deque<getter> getters_;
  std::deque<putter> putters_;
  std::vector<joiner> joiners_;
  std::map<uint64_t, lease_entry> leases_;
  std::map<caf::actor_addr, size_t> refs_;
};

/// Keeps the actor that holds a blocking handle's leases alive while the
/// handle (or a copy) exists; its death returns their items.
class lease_holder {
public:
  /// Keeps `x` until destroyed, then stops it.
  explicit lease_holder(caf::actor x) : actor_(std::move(x)) {}
  lease_holder(const lease_holder&) = delete;
  lease_holder& operator=(const lease_holder&) = delete;
  ~lease_holder() {
    caf::anon_send_exit(actor_, caf::exit_reason::user_shutdown);
  }
  /// The actor that holds the leases.
  const caf::actor& actor() const noexcept {
    return actor_;
  }

private:
  caf::actor actor_;
};

/// The behaviour of a lease holder: it only has to live.
inline caf::behavior lease_holder_actor() {
  return {[](caf::ok_atom) {}};
}

} // namespace detail

/// A FIFO queue shared by the processes of a group (Python's
/// `Manager().Queue()` / `multiprocessing.JoinableQueue`), owned by one actor
/// and reached through this handle from any thread of any process.
///
/// **Atomicity and order.** Every call is one step on the owner. Items come
/// out in the order they went in; waiting getters are served first come,
/// first served, and so are waiting putters.
///
/// **As in Python**, name for name: `put(x, timeout)`, `get(timeout)`,
/// `qsize`, `empty`, `full`, `task_done`, `join`, with Python's errors
/// (`troupe::errc::full`, `errc::empty`, `errc::value_error`). The timeout is
/// Python's: how long to wait for room or for an item. The call has no
/// deadline beyond it, as a Python proxy's has none: the owner keeps the
/// deadline, so that an item is never handed to a caller that gave up; if
/// the owner's process dies, the call fails with `troupe::errc::peer_lost`.
///
/// **Bounded.** With `maxsize > 0`, `put` on a full queue waits up to its
/// timeout for room and then fails with `troupe::errc::full` (a timeout of zero
/// fails at once). `get` on an empty queue waits up to its timeout and
/// then fails with `errc::empty`. The owner keeps the deadline, so an item
/// is never handed to a caller that already gave up; a waiting caller that
/// dies (or whose process dies) is dropped from the line.
///
/// **task_done / join** as in Python: every put item is a task; `task_done`
/// finishes one (more calls than tasks give `errc::value_error`, Python's
/// `ValueError`);
/// `join` waits until all are finished.
///
/// **Leases (at-least-once).** `get_leased` takes an item under a lease held
/// by the caller: for this handle, an actor the handle keeps while it or a
/// copy of it exists; for an event-based actor using the protocol, the
/// requesting actor itself (or the holder named in the message). `ack`
/// finishes the item (it counts as `task_done`). If the holder dies before
/// acking (its actor exits, the handle is destroyed, or its process dies,
/// even by SIGKILL: the owner monitors the holder and sees `peer_lost`),
/// the item goes back to the front of the queue and is delivered again.
///
/// **Processes.** `make` spawns the owner in the calling process; publish
/// `handle()` with `node::publish`, and other processes build a
/// `managed_queue` from `node::lookup`. `T` must be a CAF message type
/// registered under the same name in every process. The owner lives until
/// `stop()` (or, if it never was published nor reached from another
/// process, until the last handle is gone). If the owner's process dies,
/// calls fail with `troupe::errc::peer_lost`.
///
/// **Protocol**, for event-based actors (send waiting calls with
/// `caf::infinite` as the request timeout: the owner answers by the
/// deadline in the message; `forever` waits without one):
/// `(put_atom, T, caf::timespan) -> ok_atom`,
/// `(get_atom, caf::timespan) -> T`,
/// `(lease_atom, caf::timespan) -> (uint64_t id, T)` (held by the sender),
/// `(lease_atom, caf::timespan, caf::actor holder) -> (uint64_t id, T)`,
/// `(ack_atom, uint64_t id) -> ok_atom` (`troupe::errc::not_held` for an unknown
/// lease), `(task_done_atom) -> ok_atom`, `(join_atom, caf::timespan) ->
/// ok_atom`, `(len_atom) -> int64_t` (items waiting), `(full_atom) -> bool`,
/// `(len_atom, lease_atom) -> int64_t` (items leased and not acked).
///
/// **Shared memory.** None of its own: the items live in the owner's
/// process, and calls from other processes travel as messages through
/// the group's segment, which the group's nodes create and remove (see
/// `node`).
///
/// The handle may be used by any number of threads at once.
template <class T>
class managed_queue : public owner_handle {
public:
  /// The item type.
  using value_type = T;

  /// Spawns the owner of an empty queue in `sys` (this process), holding at
  /// most `maxsize` items (0: unbounded).
  static managed_queue make(caf::actor_system& sys, int64_t maxsize = 0) {
    return managed_queue{
      detail::served_on_readers(caf::actor{sys.spawn<detail::managed_queue_owner<T>>(maxsize)})};
  }

  /// An empty handle: every call fails with `troupe::errc::invalid_argument`.
  managed_queue() = default;

  /// A handle to the owner `owner`, e.g. what `node::lookup` returned.
  explicit managed_queue(caf::actor owner)
    : owner_handle(std::move(owner)), holder_(std::make_shared<holder_slot>()) {}

  /// `q.put(x, timeout=...)`: appends `x`, waiting up to `timeout` for room
  /// in a bounded queue; `troupe::errc::full` if there was none.
  caf::error put(const T& x, caf::timespan timeout = forever) const {
    return troupe::detail::call_ok(owner_, forever, caf::put_atom::value, x, timeout);
  }

  /// `q.get(timeout=...)`: removes and returns the oldest item, waiting up
  /// to `timeout` for one; `errc::empty` if none came.
  [[nodiscard]] caf::expected<T> get(caf::timespan timeout = forever) const {
    return troupe::detail::ask<T>(owner_, forever, caf::get_atom::value, timeout);
  }

  /// As `get`, under a lease held by this handle and its copies: `ack` the
  /// item, or it goes back to the queue when they are all gone or their
  /// process dies.
  [[nodiscard]] caf::expected<leased<T>> get_leased(caf::timespan timeout = forever) const {
    auto holder = lease_holder();
    if (!holder)
      return make_error(troupe::errc::invalid_argument, "empty managed_queue handle");
    std::optional<leased<T>> res;
    auto err = troupe::detail::call(
      owner_, forever,
      [&](uint64_t id, T& x) {
        res = leased<T>{id, std::move(x)};
      },
      lease_atom::value, timeout, holder);
    if (err)
      return err;
    return std::move(*res);
  }

  /// Finishes the leased item `id` (it counts as `task_done`);
  /// `troupe::errc::not_held` if there is no such lease (acked already, or returned
  /// to the queue because its holder died).
  caf::error ack(uint64_t id, caf::timespan timeout = forever) const {
    return troupe::detail::call_ok(owner_, timeout, ack_atom::value, id);
  }

  /// `q.task_done()`.
  caf::error task_done(caf::timespan timeout = forever) const {
    return troupe::detail::call_ok(owner_, timeout, task_done_atom::value);
  }

  /// `q.join()`: waits up to `timeout` until every item put was finished
  /// (`task_done` or `ack`); `troupe::errc::timeout` if some remain.
  caf::error join(caf::timespan timeout = forever) const {
    return troupe::detail::call_ok(owner_, forever, caf::join_atom::value, timeout);
  }

  /// `q.qsize()`: how many items wait in the queue (leased ones not
  /// included).
  [[nodiscard]] caf::expected<int64_t> qsize(caf::timespan timeout = forever) const {
    return troupe::detail::ask<int64_t>(owner_, timeout, len_atom::value);
  }

  /// `q.empty()`: whether no item waits in the queue.
  [[nodiscard]] caf::expected<bool> empty(caf::timespan timeout = forever) const {
    auto n = qsize(timeout);
    if (!n)
      return std::move(n.error());
    return *n == 0;
  }

  /// `q.full()`: whether a bounded queue holds `maxsize` items (never for an
  /// unbounded one).
  [[nodiscard]] caf::expected<bool> full(caf::timespan timeout = forever) const {
    return troupe::detail::ask<bool>(owner_, timeout, full_atom::value);
  }

  /// How many items are leased and not yet acked.
  [[nodiscard]] caf::expected<int64_t> leased_count(caf::timespan timeout = forever) const {
    return troupe::detail::ask<int64_t>(owner_, timeout, len_atom::value, lease_atom::value);
  }

private:
  struct holder_slot {
    std::mutex mtx;
    std::unique_ptr<detail::lease_holder> holder;
  };

  /// The actor that holds this handle's leases, spawned on first use.
  caf::actor lease_holder() const {
    if (!owner_ || !holder_)
      return {};
    std::lock_guard<std::mutex> guard{holder_->mtx};
    if (!holder_->holder)
      holder_->holder = std::make_unique<detail::lease_holder>(
        caf::actor{owner_->home_system().spawn(detail::lease_holder_actor)});
    return holder_->holder->actor();
  }

  std::shared_ptr<holder_slot> holder_;
};

} // namespace troupe::ipc
