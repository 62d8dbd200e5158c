#include "troupe/bounded_queue.hpp"

#include "troupe/detail/waiter_queue.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <deque>

namespace troupe {

namespace {

using stats_atom = caf::atom_constant<caf::atom("tr_qstats")>;

struct queue_state {
  std::size_t capacity = 0; // 0: unbounded

  bool has_room() const {
    return capacity == 0 || items.size() < capacity;
  }
  full_policy policy = full_policy::wait;
  std::deque<caf::message> items;
  std::size_t high_water = 0;
  bool closed = false;
  detail::waiter_queue getters;
  detail::waiter_queue putters; // each holds its item as payload
  static constexpr const char* name = "troupe.bounded_queue";
};

using queue_actor = caf::stateful_actor<queue_state>;

void store(queue_actor* self, caf::message item) {
  auto& st = self->state;
  st.items.push_back(std::move(item));
  st.high_water = std::max(st.high_water, st.items.size());
}

/// Moves items to waiting getters and waiting puts into free room, until
/// neither can go on.
void settle(queue_actor* self) {
  auto& st = self->state;
  for (;;) {
    if (!st.items.empty() && !st.getters.empty()) {
      auto getter = st.getters.pop(self);
      getter->promise.deliver(std::move(st.items.front()));
      st.items.pop_front();
      continue;
    }
    if (st.has_room() && !st.putters.empty()) {
      auto putter = st.putters.pop(self);
      store(self, std::move(putter->payload));
      putter->promise.deliver(caf::ok_atom::value);
      continue;
    }
    return;
  }
}

caf::behavior queue_impl(queue_actor* self, std::size_t capacity, full_policy policy) {
  self->state.capacity = capacity;
  self->state.policy = policy;
  self->set_down_handler([self](caf::down_msg& msg) {
    self->state.getters.on_down(msg.source);
    self->state.putters.on_down(msg.source);
    settle(self);
  });
  return {
    [self](caf::put_atom, caf::timespan timeout, caf::message& item) -> caf::result<caf::ok_atom> {
      auto& st = self->state;
      if (st.closed)
        return detail::fail(self, make_error(errc::closed, "put on a closed queue"));
      if (st.has_room() && st.putters.empty()) {
        store(self, std::move(item));
        settle(self);
        return detail::ack(self);
      }
      if (st.policy == full_policy::fail)
        return detail::fail(self, make_error(errc::full, "the queue is full"));
      if (timeout <= caf::timespan::zero())
        return detail::fail(self, make_error(errc::timeout, "the queue is full"));
      if (!self->current_message_id().is_request())
        // Holding an item nobody waits for would unbound the memory.
        return detail::fail(self, make_error(errc::full, "the queue is full and the put "
                                                         "was not a request"));
      st.putters.push(self, timeout, std::move(item));
      return caf::delegated<caf::ok_atom>{};
    },
    [self](caf::get_atom, caf::timespan timeout) -> caf::result<caf::message> {
      auto& st = self->state;
      if (!st.items.empty()) {
        auto item = std::move(st.items.front());
        st.items.pop_front();
        settle(self);
        return item;
      }
      if (st.closed)
        return detail::fail<caf::message>(
          self, make_error(errc::closed, "the queue is closed and drained"));
      if (timeout <= caf::timespan::zero())
        return detail::fail<caf::message>(self, make_error(errc::timeout, "the queue is empty"));
      st.getters.push(self, timeout);
      return caf::delegated<caf::message>{};
    },
    [self](caf::close_atom) {
      auto& st = self->state;
      st.closed = true;
      auto err = make_error(errc::closed, "the queue was closed");
      // Errors go to requests only (see detail::fail).
      while (auto putter = st.putters.pop(self))
        if (!putter->promise.async())
          putter->promise.deliver(err);
      // Getters wait only while the queue is empty, so none gets an item.
      while (auto getter = st.getters.pop(self))
        if (!getter->promise.async())
          getter->promise.deliver(make_error(errc::closed, "the queue is closed and drained"));
      return detail::ack(self);
    },
    [self](stats_atom) {
      auto& st = self->state;
      return caf::make_message(uint64_t{st.items.size()}, uint64_t{st.capacity},
                               uint64_t{st.high_water}, uint64_t{st.putters.size()},
                               uint64_t{st.getters.size()}, st.closed);
    },
    [self](detail::expire_atom, uint64_t id) {
      auto& st = self->state;
      auto sender = self->current_sender();
      if (st.getters.from_relay(sender))
        st.getters.expire(self, id, make_error(errc::timeout, "no item within the timeout"));
      else if (st.putters.from_relay(sender))
        st.putters.expire(self, id, make_error(errc::timeout, "no room within the timeout"));
    },
  };
}

} // namespace

namespace detail {

caf::actor spawn_bounded_queue(caf::actor_system& sys, std::size_t capacity, full_policy policy) {
  return sys.spawn(queue_impl, capacity, policy);
}

caf::expected<queue_stats> queue_stats_of(const caf::actor& queue) {
  queue_stats result;
  if (auto err = call(
        queue, forever,
        [&](uint64_t size, uint64_t capacity, uint64_t high_water, uint64_t putters,
            uint64_t getters, bool closed) {
          result = queue_stats{size, capacity, high_water, putters, getters, closed};
        },
        stats_atom::value))
    return err;
  return result;
}

} // namespace detail
} // namespace troupe
