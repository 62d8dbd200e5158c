#include "troupe/semaphore.hpp"

#include "troupe/error.hpp"
#include "waiter_queue.hpp"

#include <caf/all.hpp>
#include <caf/send.hpp>

#include <unordered_map>

namespace troupe {

namespace {

struct semaphore_state {
  std::size_t available = 0;
  std::unordered_map<caf::actor_addr, std::size_t> holders;
  detail::waiter_queue waiters; // also watches the holders
  static constexpr const char* name = "troupe.semaphore";
};

using semaphore_actor = caf::stateful_actor<semaphore_state>;

/// Gives `who` one permit.
void hold(semaphore_actor* self, const caf::actor_addr& who) {
  auto& st = self->state;
  --st.available;
  ++st.holders[who];
  st.waiters.watch().add(self, who);
}

/// Hands free permits to the oldest waiters.
void grant(semaphore_actor* self) {
  auto& st = self->state;
  while (st.available > 0) {
    auto next = st.waiters.pop(self);
    if (!next)
      return;
    hold(self, next->who);
    next->promise.deliver(caf::ok_atom::value);
  }
}

caf::behavior semaphore_impl(semaphore_actor* self, std::size_t permits) {
  self->state.available = permits;
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
    if (st.available > 0 && st.waiters.empty()) {
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
      auto& waiters = self->state.waiters;
      if (waiters.from_relay(self->current_sender()))
        waiters.expire(self, id, make_error(errc::timeout, "no permit within the timeout"));
    },
  };
}

} // namespace

caf::expected<semaphore> semaphore::make(caf::actor_system& sys, std::size_t permits) {
  if (permits == 0)
    return make_error(errc::invalid_argument, "a semaphore needs at least one permit");
  return semaphore{sys.spawn(semaphore_impl, permits)};
}

caf::expected<semaphore::lease> semaphore::acquire(caf::scoped_actor& self,
                                                   caf::timespan timeout) const {
  if (!impl_)
    return make_error(errc::owner_down, "empty semaphore handle (moved from)");
  caf::error err;
  self->request(impl_, caf::infinite, acquire_atom::value, timeout)
    .receive([](caf::ok_atom) {},
             [&](caf::error& x) { err = detail::normalize_request_error(std::move(x)); });
  if (err)
    return err;
  return lease{impl_, caf::actor_cast<caf::weak_actor_ptr>(self.ptr())};
}

caf::expected<std::size_t> semaphore::available() const {
  return detail::ask_count(impl_, caf::get_atom::value);
}

caf::expected<std::size_t> semaphore::waiting() const {
  return detail::ask_count(impl_, caf::get_atom::value, wait_atom::value);
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
