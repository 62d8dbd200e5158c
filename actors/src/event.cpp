#include "troupe/event.hpp"

#include "troupe/detail/blocking_call.hpp"
#include "troupe/detail/waiter_queue.hpp"
#include "troupe/error.hpp"

#include <caf/all.hpp>

namespace troupe {

namespace {

struct event_state {
  bool flag = false;
  detail::waiter_queue waiters;
  static constexpr const char* name = "troupe.event";
};

using event_actor = caf::stateful_actor<event_state>;

caf::behavior event_impl(event_actor* self) {
  self->set_down_handler([self](caf::down_msg& msg) { self->state.waiters.on_down(msg.source); });
  auto wait = [self](caf::timespan timeout) -> caf::result<caf::ok_atom> {
    auto& st = self->state;
    if (st.flag)
      return caf::ok_atom::value;
    if (timeout <= caf::timespan::zero())
      return detail::fail(self, make_error(errc::timeout, "event not set"));
    st.waiters.push(self, timeout);
    return caf::delegated<caf::ok_atom>{};
  };
  return {
    [wait](wait_atom) { return wait(forever); },
    [wait](wait_atom, caf::timespan timeout) { return wait(timeout); },
    [self](set_atom) {
      self->state.flag = true;
      self->state.waiters.deliver_all(self, caf::ok_atom::value);
      return detail::ack(self);
    },
    [self](clear_atom) {
      self->state.flag = false;
      return detail::ack(self);
    },
    [self](caf::get_atom) { return self->state.flag; },
    [self](caf::get_atom, wait_atom) { return self->state.waiters.size(); },
    [self](detail::expire_atom, uint64_t id) {
      auto& waiters = self->state.waiters;
      if (waiters.from_relay(self->current_sender()))
        waiters.expire(self, id, make_error(errc::timeout, "event not set in time"));
    },
  };
}

} // namespace

event event::make(caf::actor_system& sys) {
  return event{sys.spawn(event_impl)};
}

namespace {

/// Sends `flag_op` (set or clear) so that a later `wait` from any thread of
/// this process is ordered after it.
caf::error change_flag(const caf::actor& owner, caf::message flag_op) {
  if (owner && owner->node() == owner->home_system().node()) {
    // The local mailbox orders it: enqueued before this returns.
    caf::anon_send(owner, std::move(flag_op));
    return caf::none;
  }
  // Messages from two threads to an actor of another process may overtake
  // each other on the way: only the answer says the owner has it.
  return detail::call_ok(owner, forever, std::move(flag_op));
}

} // namespace

caf::error event::set() const {
  return change_flag(owner_, caf::make_message(set_atom::value));
}

caf::error event::clear() const {
  return change_flag(owner_, caf::make_message(clear_atom::value));
}

caf::expected<bool> event::is_set() const {
  return detail::ask<bool>(owner_, forever, caf::get_atom::value);
}

caf::expected<std::size_t> event::waiting() const {
  return detail::ask<std::size_t>(owner_, forever, caf::get_atom::value, wait_atom::value);
}

caf::error event::wait(caf::timespan timeout) const {
  return detail::call_ok(owner_, forever, wait_atom::value, timeout);
}

caf::error event::wait(caf::scoped_actor& self, caf::timespan timeout) const {
  return detail::call_through(
    self, owner_, forever, [](caf::ok_atom) {}, wait_atom::value, timeout);
}

} // namespace troupe
