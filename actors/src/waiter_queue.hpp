#pragma once

#include "troupe/error.hpp"
#include "troupe/timeout.hpp"

#include <caf/actor_addr.hpp>
#include <caf/all.hpp>
#include <caf/delegated.hpp>
#include <caf/response_promise.hpp>
#include <caf/result.hpp>

#include <cstdint>
#include <deque>
#include <optional>

namespace troupe::detail {

/// A request that an actor has accepted but not answered yet.
struct waiter {
  uint64_t id;
  caf::response_promise promise;
  caf::actor_addr who;
};

/// FIFO of accepted requests kept in an actor's state. Whatever is still
/// queued when the state is destroyed (the owner terminates) is failed with
/// `errc::owner_down`, so no requester is left waiting on a dead actor.
class waiter_queue {
public:
  waiter_queue() = default;
  waiter_queue(const waiter_queue&) = delete;
  waiter_queue& operator=(const waiter_queue&) = delete;

  ~waiter_queue() {
    fail_all(make_error(errc::owner_down, "the owner terminated while the request waited"));
  }

  /// Queues the request that `self` is handling. Unless `timeout` is
  /// `forever`, the owner receives `(caf::timeout_atom, id)` when it runs out
  /// and should then call `expire(id, ...)`.
  ///
  /// The timer does not keep the owner alive: CAF's `delayed_send` holds
  /// a strong reference for the whole timeout, so an actor system would wait
  /// for every stale timer at shutdown. The timer goes to a hidden relay with
  /// a weak reference instead, and the relay forwards it if the owner lives.
  template <class Self>
  uint64_t push(Self* self, caf::timespan timeout) {
    auto id = next_id_++;
    // Read the sender first: make_response_promise takes it out of the
    // current message.
    auto who = caf::actor_cast<caf::actor_addr>(self->current_sender());
    queue_.push_back(waiter{id, self->make_response_promise(), std::move(who)});
    if (timeout != forever) {
      if (!relay_)
        relay_ = self->home_system().template spawn<caf::hidden>(
          timer_relay, caf::actor_cast<caf::weak_actor_ptr>(self));
      // Not delayed_anon_send: in CAF 0.17 it still puts `self` in the
      // sender field, a strong reference.
      auto& clock = self->home_system().clock();
      clock.schedule_message(clock.now() + timeout, caf::actor_cast<caf::strong_actor_ptr>(relay_),
                             caf::make_mailbox_element(nullptr, caf::make_message_id(), {},
                                                       caf::timeout_atom::value, id));
    }
    return id;
  }

  /// Takes the oldest request, if any.
  std::optional<waiter> pop() {
    if (queue_.empty())
      return std::nullopt;
    auto result = std::move(queue_.front());
    queue_.pop_front();
    return result;
  }

  /// Fails the request `id` with `err` if it is still queued.
  void expire(uint64_t id, const caf::error& err) {
    for (auto i = queue_.begin(); i != queue_.end(); ++i) {
      if (i->id == id) {
        i->promise.deliver(err);
        queue_.erase(i);
        return;
      }
    }
  }

  /// Forgets every request of `who` (who is gone and expects no answer).
  void drop(const caf::actor_addr& who) {
    for (auto i = queue_.begin(); i != queue_.end();)
      i = i->who == who ? queue_.erase(i) : i + 1;
  }

  /// Answers every queued request with `msg` and empties the queue.
  template <class... Ts>
  void deliver_all(const Ts&... xs) {
    for (auto& w : queue_)
      w.promise.deliver(xs...);
    queue_.clear();
  }

  /// Fails every queued request with `err` and empties the queue.
  void fail_all(const caf::error& err) {
    for (auto& w : queue_)
      w.promise.deliver(err);
    queue_.clear();
  }

  [[nodiscard]] std::size_t size() const noexcept {
    return queue_.size();
  }

  [[nodiscard]] bool empty() const noexcept {
    return queue_.empty();
  }

private:
  /// Forwards `(timeout_atom, id)` to `owner` if it is still alive.
  static caf::behavior timer_relay(caf::event_based_actor*, caf::weak_actor_ptr owner) {
    return {
      [owner](caf::timeout_atom, uint64_t id) {
        if (auto strong = owner.lock())
          caf::anon_send(caf::actor_cast<caf::actor>(strong), caf::timeout_atom::value, id);
      },
    };
  }

  caf::actor relay_;
  std::deque<waiter> queue_;
  uint64_t next_id_ = 1;
};

/// Answers the current message with `caf::ok_atom` if it is a request and
/// with nothing if it was sent asynchronously (CAF would otherwise send the
/// answer back to the sender as a stray message).
template <class Self>
caf::result<caf::ok_atom> ack(Self* self) {
  if (self->current_message_id().is_request())
    return caf::ok_atom::value;
  return caf::delegated<caf::ok_atom>{};
}

/// Asks `who` a question answered with a `size_t`, from a temporary
/// `scoped_actor`; for the counters that handles expose.
template <class... Ts>
caf::expected<std::size_t> ask_count(const caf::actor& who, const Ts&... xs) {
  caf::scoped_actor self{who->home_system()};
  caf::expected<std::size_t> result{std::size_t{0}};
  self->request(who, caf::infinite, xs...)
    .receive([&](std::size_t n) { result = n; },
             [&](caf::error& err) { result = normalize_request_error(std::move(err)); });
  return result;
}

} // namespace troupe::detail
