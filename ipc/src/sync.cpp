#include "troupe/ipc/sync.hpp"

#include "troupe/detail/waiter_queue.hpp"
#include "troupe/event.hpp"
#include "troupe/ipc/detail/shared_call.hpp"
#include "troupe/ipc/error.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <deque>
#include <iostream>
#include <unordered_map>

namespace troupe::ipc {

namespace {

using troupe::detail::ack;
using troupe::detail::expire_atom;
using troupe::detail::fail;

/// A request accepted but not answered yet.
struct waiter {
  uint64_t id = 0;
  caf::response_promise promise;
  caf::actor_addr who;
  /// Re-entrant count to restore when a condition waiter gets the lock back.
  std::size_t count = 1;
  /// A condition waiter (answered with `(ok, notified, died)`).
  bool cond = false;
  bool notified = false;
};

/// Fails `w` with `err` unless it came as an asynchronous message.
void fail_waiter(waiter& w, const caf::error& err) {
  if (!w.promise.async())
    w.promise.deliver(err);
}

/// What every primitive's state has: monitors and timers.
struct base_state {
  /// The clients, watched from their first request until they end (a
  /// monitor of a proxy of another process's actor fires with
  /// `troupe::errc::peer_lost` when that process dies).
  troupe::detail::watch_list clients;
  troupe::detail::weak_timer<expire_atom> timer;
  uint64_t next_id = 1;

  /// Monitors `who` if it is not watched yet.
  template <class Self>
  void watch(Self* self, const caf::actor_addr& who) {
    if (!clients.contains(who))
      clients.add(self, who);
  }

  template <class Self>
  void schedule(Self* self, caf::timespan delay, uint64_t id) {
    timer.schedule(self, delay, id);
  }

  [[nodiscard]] bool from_relay(const caf::strong_actor_ptr& sender) const {
    return timer.from_relay(sender);
  }

  /// Takes the request being handled into a waiter.
  template <class Self>
  waiter make_waiter(Self* self) {
    waiter w;
    w.id = next_id++;
    // Read the sender first: make_response_promise takes it away.
    w.who = caf::actor_cast<caf::actor_addr>(self->current_sender());
    watch(self, w.who);
    w.promise = self->make_response_promise();
    return w;
  }
};

// -- locks and semaphores ---------------------------------------------------

enum class kind : uint8_t { lock, rlock, semaphore, bounded };

struct permit_state : base_state {
  kind k = kind::lock;
  std::size_t available = 0;
  /// Holder -> re-entrant count (locks) or permits held (semaphores).
  std::unordered_map<caf::actor_addr, std::size_t> holders;
  /// Leases given back by dead holders and not reported to an acquirer yet.
  std::size_t lost = 0;
  std::deque<waiter> acquirers;
  /// Condition waiters, not competing for the lock until notified.
  std::deque<waiter> sleepers;

  permit_state() = default;
  permit_state(const permit_state&) = delete;
  permit_state& operator=(const permit_state&) = delete;

  ~permit_state() {
    auto err = troupe::make_error(troupe::errc::owner_down, "the primitive's actor terminated");
    for (auto& w : acquirers)
      fail_waiter(w, err);
    for (auto& w : sleepers)
      fail_waiter(w, err);
  }

  [[nodiscard]] bool is_lock() const noexcept {
    return k == kind::lock || k == kind::rlock;
  }

  /// Whether an acquirer was told of every lease lost so far.
  bool take_lost() {
    if (lost == 0)
      return false;
    --lost;
    return true;
  }

  void hold(const caf::actor_addr& who, std::size_t count) {
    --available;
    if (is_lock())
      holders[who] = count;
    else
      ++holders[who];
  }

  static constexpr const char* name = "troupe.ipc.permits";
};

using permit_actor = caf::stateful_actor<permit_state>;

/// Hands free permits to the oldest acquirers.
void grant(permit_actor* self) {
  auto& st = self->state;
  while (st.available > 0 && !st.acquirers.empty()) {
    auto w = std::move(st.acquirers.front());
    st.acquirers.pop_front();
    st.hold(w.who, w.count);
    auto died = st.take_lost();
    if (w.cond)
      w.promise.deliver(caf::ok_atom::value, w.notified, died);
    else
      w.promise.deliver(caf::ok_atom::value, died);
  }
}

/// Removes the waiters of `who` from `q`.
void drop(std::deque<waiter>& q, const caf::actor_addr& who) {
  q.erase(std::remove_if(q.begin(), q.end(), [&](const waiter& w) { return w.who == who; }),
          q.end());
}

caf::behavior permit_impl(permit_actor* self, kind k, std::size_t permits) {
  self->state.k = k;
  self->state.available = permits;
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& st = self->state;
    st.clients.forget(msg.source);
    drop(st.acquirers, msg.source);
    drop(st.sleepers, msg.source);
    if (auto i = st.holders.find(msg.source); i != st.holders.end()) {
      auto n = st.is_lock() ? std::size_t{1} : i->second;
      st.available += n;
      st.lost += n;
      st.holders.erase(i);
      grant(self);
    }
  });
  auto acquire = [self](caf::timespan timeout) -> caf::result<caf::ok_atom, bool> {
    auto& st = self->state;
    auto who = caf::actor_cast<caf::actor_addr>(self->current_sender());
    if (!who)
      return fail<caf::ok_atom, bool>(self,
                                      troupe::make_error(troupe::errc::invalid_argument,
                                                         "acquire needs a sender: locks and "
                                                         "permits are leases held by actors"));
    if (st.is_lock()) {
      if (auto i = st.holders.find(who); i != st.holders.end()) {
        if (st.k == kind::lock)
          return fail<caf::ok_atom, bool>(
            self,
            troupe::make_error(troupe::errc::would_deadlock, "the caller holds this lock already"));
        ++i->second;
        return {caf::ok_atom::value, false};
      }
    }
    if (st.available > 0 && st.acquirers.empty()) {
      st.watch(self, who);
      st.hold(who, 1);
      return {caf::ok_atom::value, st.take_lost()};
    }
    if (timeout <= caf::timespan::zero())
      return fail<caf::ok_atom, bool>(self, troupe::make_error(troupe::errc::timeout, "not free"));
    auto w = st.make_waiter(self);
    st.schedule(self, timeout, w.id);
    st.acquirers.push_back(std::move(w));
    return caf::delegated<caf::ok_atom, bool>{};
  };
  /// The holder's entry, or a not_held error.
  auto held_by_sender = [self]() {
    return self->state.holders.find(caf::actor_cast<caf::actor_addr>(self->current_sender()));
  };
  auto cond_wait =
    [self, held_by_sender](caf::timespan timeout) -> caf::result<caf::ok_atom, bool, bool> {
    auto& st = self->state;
    auto i = held_by_sender();
    if (!st.is_lock() || i == st.holders.end())
      return fail<caf::ok_atom, bool, bool>(
        self, troupe::make_error(troupe::errc::not_held, "wait on a condition needs its lock"));
    auto count = i->second;
    st.holders.erase(i);
    ++st.available;
    auto w = st.make_waiter(self);
    w.count = count;
    w.cond = true;
    if (timeout <= caf::timespan::zero()) {
      st.acquirers.push_back(std::move(w));
    } else {
      st.schedule(self, timeout, w.id);
      st.sleepers.push_back(std::move(w));
    }
    grant(self);
    return caf::delegated<caf::ok_atom, bool, bool>{};
  };
  auto notify = [self, held_by_sender](std::size_t n) -> caf::result<caf::ok_atom> {
    auto& st = self->state;
    if (!st.is_lock() || held_by_sender() == st.holders.end())
      return fail<caf::ok_atom>(
        self, troupe::make_error(troupe::errc::not_held, "notify needs the lock"));
    for (; n > 0 && !st.sleepers.empty(); --n) {
      auto w = std::move(st.sleepers.front());
      st.sleepers.pop_front();
      w.notified = true;
      st.acquirers.push_back(std::move(w));
    }
    return ack(self);
  };
  return {
    [acquire](acquire_atom) { return acquire(forever); },
    [acquire](acquire_atom, caf::timespan timeout) { return acquire(timeout); },
    [self](release_atom) -> caf::result<caf::ok_atom> {
      auto& st = self->state;
      auto who = caf::actor_cast<caf::actor_addr>(self->current_sender());
      auto i = st.holders.find(who);
      if (i == st.holders.end()) {
        if (st.k != kind::semaphore)
          return fail<caf::ok_atom>(
            self, troupe::make_error(troupe::errc::not_held,
                                     "release by an actor that does not hold it"));
        ++st.available; // Python's Semaphore: anyone may add a permit
      } else if (--i->second == 0 || !st.is_lock()) {
        if (i->second == 0)
          st.holders.erase(i);
        ++st.available;
      }
      grant(self);
      return ack(self);
    },
    [self](caf::get_atom) { return self->state.available; },
    [self](caf::get_atom, wait_atom) { return self->state.acquirers.size(); },
    [self](caf::get_atom, notify_atom) { return self->state.sleepers.size(); },
    [cond_wait](wait_atom) { return cond_wait(forever); },
    [cond_wait](wait_atom, caf::timespan timeout) { return cond_wait(timeout); },
    [notify](notify_atom, std::size_t n) { return notify(n); },
    [notify](notify_all_atom) { return notify(std::numeric_limits<std::size_t>::max()); },
    [self](expire_atom, uint64_t id) {
      auto& st = self->state;
      if (!st.from_relay(self->current_sender()))
        return;
      auto same = [id](const waiter& w) { return w.id == id; };
      if (auto i = std::find_if(st.acquirers.begin(), st.acquirers.end(), same);
          i != st.acquirers.end()) {
        if (i->cond)
          return; // notified already: waits for the lock as long as it takes
        fail_waiter(*i,
                    troupe::make_error(troupe::errc::timeout, "not acquired within the timeout"));
        st.acquirers.erase(i);
        return;
      }
      if (auto i = std::find_if(st.sleepers.begin(), st.sleepers.end(), same);
          i != st.sleepers.end()) {
        // Timed out: queue for the lock, to return holding it (not notified).
        st.acquirers.push_back(std::move(*i));
        st.sleepers.erase(i);
        grant(self);
      }
    },
  };
}

// -- barrier ----------------------------------------------------------------

struct barrier_state : base_state {
  std::size_t parties = 0;
  bool broken = false;
  std::string why;
  std::deque<waiter> waiters;

  barrier_state() = default;
  barrier_state(const barrier_state&) = delete;
  barrier_state& operator=(const barrier_state&) = delete;

  ~barrier_state() {
    auto err = troupe::make_error(troupe::errc::owner_down, "the barrier's actor terminated");
    for (auto& w : waiters)
      fail_waiter(w, err);
  }

  /// Fails every waiter with `broken_barrier`.
  void fail_all(const std::string& reason) {
    auto err = make_error(errc::broken_barrier, reason);
    for (auto& w : waiters)
      fail_waiter(w, err);
    waiters.clear();
  }

  void break_it(std::string reason) {
    broken = true;
    why = std::move(reason);
    fail_all(why);
  }

  static constexpr const char* name = "troupe.ipc.barrier";
};

using barrier_actor = caf::stateful_actor<barrier_state>;

caf::behavior barrier_impl(barrier_actor* self, std::size_t parties) {
  self->state.parties = parties;
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& st = self->state;
    st.clients.forget(msg.source);
    auto waiting = std::any_of(st.waiters.begin(), st.waiters.end(),
                               [&](const waiter& w) { return w.who == msg.source; });
    if (!waiting)
      return;
    drop(st.waiters, msg.source);
    st.break_it("a waiting party terminated: " + describe(msg.reason));
  });
  auto wait = [self](caf::timespan timeout) -> caf::result<std::size_t> {
    auto& st = self->state;
    if (st.broken)
      return fail<std::size_t>(self, make_error(errc::broken_barrier, st.why));
    if (!self->current_sender())
      return fail<std::size_t>(
        self, troupe::make_error(troupe::errc::invalid_argument, "a barrier wait needs a sender"));
    auto w = st.make_waiter(self);
    st.schedule(self, timeout, w.id);
    st.waiters.push_back(std::move(w));
    if (st.waiters.size() == st.parties) {
      std::size_t index = 0;
      for (auto& x : st.waiters)
        x.promise.deliver(index++);
      st.waiters.clear();
    }
    return caf::delegated<std::size_t>{};
  };
  return {
    [wait](wait_atom) { return wait(forever); },
    [wait](wait_atom, caf::timespan timeout) { return wait(timeout); },
    [self](reset_atom) {
      self->state.fail_all("the barrier was reset");
      self->state.broken = false;
      return ack(self);
    },
    [self](abort_atom) {
      self->state.break_it("the barrier was aborted");
      return ack(self);
    },
    [self](caf::get_atom, wait_atom) { return self->state.waiters.size(); },
    [self](expire_atom, uint64_t id) {
      auto& st = self->state;
      if (!st.from_relay(self->current_sender()))
        return;
      auto i = std::find_if(st.waiters.begin(), st.waiters.end(),
                            [id](const waiter& w) { return w.id == id; });
      if (i == st.waiters.end())
        return;
      fail_waiter(*i, troupe::make_error(troupe::errc::timeout, "not all parties arrived in time"));
      st.waiters.erase(i);
      st.break_it("a party timed out");
    },
  };
}

} // namespace

// -- permits ----------------------------------------------------------------

void lease::reset() noexcept {
  if (self_ == nullptr)
    return;
  try {
    if (auto err = release())
      std::cerr << "[troupe] lease: giving back a permit failed: " << describe(err) << '\n';
  } catch (...) {
    std::cerr << "[troupe] lease: giving back a permit threw\n";
  }
}

caf::expected<acquired> permits::acquire(caf::scoped_actor& self, caf::timespan timeout) const {
  acquired result;
  if (auto err = troupe::detail::call_through(
        self, owner_, forever, [&](caf::ok_atom, bool died) { result.previous_holder_died = died; },
        acquire_atom::value, timeout))
    return err;
  return result;
}

caf::error permits::release(caf::scoped_actor& self) const {
  return troupe::detail::call_through(
    self, owner_, forever, [](caf::ok_atom) {}, release_atom::value);
}

caf::expected<std::size_t> permits::available() const {
  return troupe::detail::ask<std::size_t>(owner_, forever, caf::get_atom::value);
}

caf::expected<std::size_t> permits::waiting() const {
  return troupe::detail::ask<std::size_t>(owner_, forever, caf::get_atom::value, wait_atom::value);
}

lock lock::make(caf::actor_system& sys) {
  return lock{detail::served_on_readers(sys.spawn(permit_impl, kind::lock, std::size_t{1}))};
}

caf::expected<bool> lock::locked() const {
  auto n = available();
  if (!n)
    return std::move(n.error());
  return *n == 0;
}

rlock rlock::make(caf::actor_system& sys) {
  return rlock{detail::served_on_readers(sys.spawn(permit_impl, kind::rlock, std::size_t{1}))};
}

semaphore semaphore::make(caf::actor_system& sys, std::size_t initial) {
  return semaphore{detail::served_on_readers(sys.spawn(permit_impl, kind::semaphore, initial))};
}

caf::expected<bounded_semaphore> bounded_semaphore::make(caf::actor_system& sys,
                                                         std::size_t permits) {
  if (permits == 0)
    return troupe::make_error(troupe::errc::invalid_argument, "a bounded semaphore needs a permit");
  return bounded_semaphore{
    detail::served_on_readers(sys.spawn(permit_impl, kind::bounded, permits))};
}

// -- condition --------------------------------------------------------------

condition condition::make(caf::actor_system& sys, bool reentrant) {
  return condition{detail::served_on_readers(
    sys.spawn(permit_impl, reentrant ? kind::rlock : kind::lock, std::size_t{1}))};
}

caf::expected<waited> condition::wait(caf::scoped_actor& self, caf::timespan timeout) const {
  waited result;
  if (auto err = troupe::detail::call_through(
        self, owner_, forever,
        [&](caf::ok_atom, bool notified, bool died) {
          result = waited{notified, died};
        },
        wait_atom::value, timeout))
    return err;
  return result;
}

caf::error condition::notify(caf::scoped_actor& self, std::size_t n) const {
  return troupe::detail::call_through(
    self, owner_, forever, [](caf::ok_atom) {}, notify_atom::value, n);
}

caf::error condition::notify_all(caf::scoped_actor& self) const {
  return troupe::detail::call_through(
    self, owner_, forever, [](caf::ok_atom) {}, notify_all_atom::value);
}

caf::expected<std::size_t> condition::sleeping() const {
  return troupe::detail::ask<std::size_t>(owner_, forever, caf::get_atom::value,
                                          notify_atom::value);
}

// -- event ------------------------------------------------------------------

event event::make(caf::actor_system& sys) {
  return event{detail::served_on_readers(troupe::event::make(sys).handle())};
}

// -- barrier ----------------------------------------------------------------

caf::expected<barrier> barrier::make(caf::actor_system& sys, std::size_t parties) {
  if (parties == 0)
    return troupe::make_error(troupe::errc::invalid_argument, "a barrier needs a party");
  return barrier{detail::served_on_readers(sys.spawn(barrier_impl, parties))};
}

caf::expected<std::size_t> barrier::wait(caf::scoped_actor& self, caf::timespan timeout) const {
  std::size_t index = 0;
  if (auto err = troupe::detail::call_through(
        self, owner_, forever, [&](std::size_t i) { index = i; }, wait_atom::value, timeout))
    return err;
  return index;
}

caf::error barrier::abort() const {
  return troupe::detail::call(
    owner_, forever, [](caf::ok_atom) {}, abort_atom::value);
}

caf::error barrier::reset() const {
  return troupe::detail::call(
    owner_, forever, [](caf::ok_atom) {}, reset_atom::value);
}

caf::expected<std::size_t> barrier::waiting() const {
  return troupe::detail::ask<std::size_t>(owner_, forever, caf::get_atom::value, wait_atom::value);
}

} // namespace troupe::ipc
