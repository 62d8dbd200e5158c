#include "troupe/event.hpp"

#include "troupe/error.hpp"
#include "waiter_queue.hpp"

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

event::event(caf::actor_system& sys) : impl_(sys.spawn(event_impl)) {}

caf::error event::set() const {
  if (!impl_)
    return make_error(errc::invalid_argument, "empty event handle (moved from)");
  caf::anon_send(impl_, set_atom::value);
  return caf::none;
}

caf::error event::clear() const {
  if (!impl_)
    return make_error(errc::invalid_argument, "empty event handle (moved from)");
  caf::anon_send(impl_, clear_atom::value);
  return caf::none;
}

caf::expected<bool> event::is_set() const {
  if (!impl_)
    return make_error(errc::invalid_argument, "empty event handle (moved from)");
  caf::scoped_actor self{impl_->home_system()};
  caf::expected<bool> result{false};
  self->request(impl_, caf::infinite, caf::get_atom::value)
    .receive([&](bool flag) { result = flag; },
             [&](caf::error& err) { result = detail::normalize_request_error(std::move(err)); });
  return result;
}

caf::expected<std::size_t> event::waiting() const {
  return detail::ask_count(impl_, caf::get_atom::value, wait_atom::value);
}

caf::error event::wait(caf::timespan timeout) const {
  if (!impl_)
    return make_error(errc::invalid_argument, "empty event handle (moved from)");
  caf::scoped_actor self{impl_->home_system()};
  return wait(self, timeout);
}

caf::error event::wait(caf::scoped_actor& self, caf::timespan timeout) const {
  caf::error result;
  self->request(impl_, caf::infinite, wait_atom::value, timeout)
    .receive([](caf::ok_atom) {},
             [&](caf::error& err) { result = detail::normalize_request_error(std::move(err)); });
  return result;
}

} // namespace troupe
