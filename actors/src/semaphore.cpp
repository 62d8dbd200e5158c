#include "troupe/semaphore.hpp"

#include "troupe/detail/blocking_call.hpp"
#include "troupe/detail/waiter_queue.hpp"
#include "troupe/error.hpp"

#include <caf/all.hpp>
#include <caf/send.hpp>

#include <chrono>
#include <deque>
#include <unordered_map>

namespace troupe {

namespace {

struct semaphore_state {
  std::size_t available = 0;
  /// Rate limit: at most `rate_count` grants within any `rate_window`
  /// (none if `rate_count` is 0); `granted_at` holds the recent grants.
  std::size_t rate_count = 0;
  caf::timespan rate_window{0};
  std::deque<caf::actor_clock::time_point> granted_at;
  bool wake_pending = false;
  std::unordered_map<caf::actor_addr, std::size_t> holders;
  detail::waiter_queue waiters; // also watches the holders
  static constexpr const char* name = "troupe.semaphore";
};

using semaphore_actor = caf::stateful_actor<semaphore_state>;

/// Whether the rate limit allows a grant now; if not, makes sure a wake-up
/// comes when it will.
bool rate_allows(semaphore_actor* self) {
  auto& st = self->state;
  if (st.rate_count == 0)
    return true;
  auto now = self->clock().now();
  while (!st.granted_at.empty() && now - st.granted_at.front() >= st.rate_window)
    st.granted_at.pop_front();
  if (st.granted_at.size() < st.rate_count)
    return true;
  if (!st.wake_pending) {
    st.wake_pending = true;
    auto due = st.granted_at.front() + st.rate_window - now;
    st.waiters.wake(self, std::chrono::duration_cast<caf::timespan>(due));
  }
  return false;
}

/// Gives `who` one permit.
void hold(semaphore_actor* self, const caf::actor_addr& who) {
  auto& st = self->state;
  if (st.rate_count > 0)
    st.granted_at.push_back(self->clock().now());
  --st.available;
  ++st.holders[who];
  st.waiters.watch().add(self, who);
}

/// Hands free permits to the oldest waiters.
void grant(semaphore_actor* self) {
  auto& st = self->state;
  while (st.available > 0 && !st.waiters.empty() && rate_allows(self)) {
    auto next = st.waiters.pop(self);
    if (!next)
      return;
    hold(self, next->who);
    next->promise.deliver(caf::ok_atom::value);
  }
}

caf::behavior semaphore_impl(semaphore_actor* self, std::size_t permits, std::size_t rate_count,
                             caf::timespan rate_window) {
  self->state.available = permits;
  self->state.rate_count = rate_count;
  self->state.rate_window = rate_window;
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& st = self->state;
    st.waiters.on_down(msg.source);
    if (auto i = st.holders.find(msg.source); i != st.holders.end()) {
      st.available += i->second;
      st.holders.erase(i);
      grant(self);
    }
  });
  auto acquire = [self](caf::timespan timeout) -> caf::result<caf::ok_atom> {
    auto& st = self->state;
    auto who = caf::actor_cast<caf::actor_addr>(self->current_sender());
    if (!who)
      return detail::fail(self, make_error(errc::invalid_argument,
                                           "acquire needs a sender: permits are leases held by "
                                           "actors"));
    if (st.available > 0 && st.waiters.empty() && rate_allows(self)) {
      hold(self, who);
      return caf::ok_atom::value;
    }
    if (timeout <= caf::timespan::zero())
      return detail::fail(self, make_error(errc::timeout, "no permit free"));
    st.waiters.push(self, timeout);
    return caf::delegated<caf::ok_atom>{};
  };
  return {
    [acquire](acquire_atom) { return acquire(forever); },
    [acquire](acquire_atom, caf::timespan timeout) { return acquire(timeout); },
    [self](release_atom) -> caf::result<caf::ok_atom> {
      auto& st = self->state;
      auto who = caf::actor_cast<caf::actor_addr>(self->current_sender());
      auto i = st.holders.find(who);
      if (i == st.holders.end())
        return detail::fail(self,
                            make_error(errc::not_held, "release by an actor that holds no permit"));
      if (--i->second == 0)
        st.holders.erase(i);
      st.waiters.watch().remove(self, who);
      ++st.available;
      grant(self);
      return detail::ack(self);
    },
    [self](caf::get_atom) { return self->state.available; },
    [self](caf::get_atom, wait_atom) { return self->state.waiters.size(); },
    [self](detail::expire_atom, uint64_t id) {
      auto& st = self->state;
      if (!st.waiters.from_relay(self->current_sender()))
        return;
      if (id == detail::waiter_queue::wake_id) {
        st.wake_pending = false;
        grant(self);
        return;
      }
      st.waiters.expire(self, id, make_error(errc::timeout, "no permit within the timeout"));
    },
  };
}

} // namespace

caf::expected<semaphore> semaphore::make(caf::actor_system& sys, std::size_t permits) {
  if (permits == 0)
    return make_error(errc::invalid_argument, "a semaphore needs at least one permit");
  return semaphore{sys.spawn(semaphore_impl, permits, std::size_t{0}, caf::timespan{0})};
}

caf::expected<semaphore> semaphore::make(caf::actor_system& sys, std::size_t permits,
                                         std::size_t count, caf::timespan per) {
  if (permits == 0)
    return make_error(errc::invalid_argument, "a rate limiter needs at least one permit");
  if (count == 0 || per <= caf::timespan::zero())
    return make_error(errc::invalid_argument, "a rate needs a count and a positive window");
  return semaphore{sys.spawn(semaphore_impl, permits, count, per)};
}

caf::expected<semaphore::lease> semaphore::acquire(caf::scoped_actor& self,
                                                   caf::timespan timeout) const {
  if (auto err = detail::call_through(
        self, owner_, forever, [](caf::ok_atom) {}, acquire_atom::value, timeout))
    return err;
  return lease{owner_, caf::actor_cast<caf::weak_actor_ptr>(self.ptr())};
}

caf::expected<std::size_t> semaphore::available() const {
  return detail::ask<std::size_t>(owner_, forever, caf::get_atom::value);
}

caf::expected<std::size_t> semaphore::waiting() const {
  return detail::ask<std::size_t>(owner_, forever, caf::get_atom::value, wait_atom::value);
}

semaphore::lease::lease(lease&& other) noexcept
  : sem_(std::move(other.sem_)), holder_(std::move(other.holder_)) {
  other.holder_.reset();
}

semaphore::lease& semaphore::lease::operator=(lease&& other) noexcept {
  if (this != &other) {
    release();
    sem_ = std::move(other.sem_);
    holder_ = std::move(other.holder_);
    other.holder_.reset();
  }
  return *this;
}

semaphore::lease::~lease() {
  release();
}

void semaphore::lease::release() {
  if (!holder_)
    return;
  // A holder that is gone already gave the permit back by terminating.
  if (auto holder = holder_.lock())
    caf::send_as(caf::actor_cast<caf::actor>(holder), sem_, release_atom::value);
  holder_.reset();
  sem_ = nullptr;
}

} // namespace troupe
