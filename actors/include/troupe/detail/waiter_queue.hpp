#pragma once

/// @file
/// Internal (for the owners of both layers; not part of the API): what an owner actor needs to
/// hold requests it answers later: a queue of waiters with timeouts, the watch list of the actors
/// it waits on, and the two ways to answer (`ack`, `fail`).

#include "troupe/detail/weak_timer.hpp"
#include "troupe/error.hpp"
#include "troupe/timeout.hpp"

#include <caf/all.hpp>

#include <cstdint>
#include <deque>
#include <iostream>
#include <optional>
#include <unordered_map>

namespace troupe::detail {

/// Private tag of the timer messages an owner receives from its relay.
using expire_atom = caf::atom_constant<caf::atom("tr_expire")>;

/// A request that an actor has accepted but not answered yet.
struct waiter {
  uint64_t id;
  caf::response_promise promise;
  caf::actor_addr who;
  /// What the request carries while it waits (a queue's pending item).
  caf::message payload;
};

/// The actors an owner monitors, counted: one count per queued request or
/// held lease. The owner monitors an actor at its first count and stops at
/// its last, so long-lived clients do not pile up monitors.
class watch_list {
public:
  template <class Self>
  void add(Self* self, const caf::actor_addr& who) {
    if (who && counts_[who]++ == 0)
      self->monitor(who);
  }

  template <class Self>
  void remove(Self* self, const caf::actor_addr& who) {
    auto i = counts_.find(who);
    if (i == counts_.end())
      return;
    if (--i->second == 0) {
      counts_.erase(i);
      self->demonitor(who);
    }
  }

  /// Whether `who` is watched.
  [[nodiscard]] bool contains(const caf::actor_addr& who) const {
    return counts_.count(who) > 0;
  }

  /// Forgets `who` once its down message arrived.
  void forget(const caf::actor_addr& who) {
    counts_.erase(who);
  }

private:
  std::unordered_map<caf::actor_addr, std::size_t> counts_;
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

/// Answers the current message with `err` if it is a request. An
/// asynchronous message gets no error back, because CAF 0.17 would deliver it
/// as an error message that terminates a sender without an error handler;
/// the failure is reported on stderr instead, never dropped unseen.
///
/// `T, Ts...` are the types of the answer a success would have had.
template <class T = caf::ok_atom, class... Ts, class Self>
caf::result<T, Ts...> fail(Self* self, caf::error err) {
  if (self->current_message_id().is_request())
    return err;
  std::cerr << "[troupe] " << self->name() << ": an asynchronous message failed with "
            << describe(err) << " (send it as a request to receive the error)\n";
  return caf::delegated<T, Ts...>{};
}

/// FIFO of accepted requests kept in an actor's state, with the monitors
/// that keep it honest:
/// - every requester is monitored; `on_down` drops the requests of a dead
///   one (a response promise holds a strong reference to the owner, so a
///   forgotten request would keep the owner alive forever);
/// - a request with a timeout gets a timer (see `push`);
/// - whatever is still queued when the state is destroyed (the owner
///   terminates) is failed with `errc::owner_down`.
/// Requests that came as asynchronous messages get successes delivered, never
/// errors (see `fail`).
class waiter_queue {
public:
  waiter_queue() = default;
  waiter_queue(const waiter_queue&) = delete;
  waiter_queue& operator=(const waiter_queue&) = delete;

  ~waiter_queue() {
    auto err = make_error(errc::owner_down, "the owner terminated while the request waited");
    for (auto& w : queue_)
      if (!w.promise.async())
        w.promise.deliver(err);
  }

  /// Queues the request that `self` is handling. Unless `timeout` is
  /// `forever`, the owner receives `(expire_atom, id)` from its relay when it
  /// runs out and should then call `expire`.
  ///
  /// The timer does not keep the owner alive (see `weak_timer`).
  template <class Self>
  uint64_t push(Self* self, caf::timespan timeout, caf::message payload = {}) {
    auto id = next_id_++;
    // Read the sender first: make_response_promise takes it out of the
    // current message.
    auto who = caf::actor_cast<caf::actor_addr>(self->current_sender());
    watch_.add(self, who);
    queue_.push_back(waiter{id, self->make_response_promise(), std::move(who), std::move(payload)});
    if (!is_forever(timeout))
      schedule(self, timeout, id);
    return id;
  }

  /// Id of the `(expire_atom, id)` message that `wake` schedules: no
  /// request has it (ids start at 1).
  static constexpr uint64_t wake_id = 0;

  /// Makes the owner receive `(expire_atom, wake_id)` after `delay`, through
  /// the relay, so the timer does not keep the owner alive.
  template <class Self>
  void wake(Self* self, caf::timespan delay) {
    schedule(self, delay, wake_id);
  }

  /// Whether `sender` is this queue's timer relay (only it may expire).
  [[nodiscard]] bool from_relay(const caf::strong_actor_ptr& sender) const {
    return timer_.from_relay(sender);
  }

  /// Takes the oldest request, if any.
  template <class Self>
  std::optional<waiter> pop(Self* self) {
    if (queue_.empty())
      return std::nullopt;
    auto result = std::move(queue_.front());
    queue_.pop_front();
    watch_.remove(self, result.who);
    return result;
  }

  /// Fails the request `id` with `err` if it is still queued.
  template <class Self>
  void expire(Self* self, uint64_t id, const caf::error& err) {
    for (auto i = queue_.begin(); i != queue_.end(); ++i) {
      if (i->id == id) {
        if (!i->promise.async())
          i->promise.deliver(err);
        watch_.remove(self, i->who);
        queue_.erase(i);
        return;
      }
    }
  }

  /// Answers every queued request with `xs...` and empties the queue.
  template <class Self, class... Ts>
  void deliver_all(Self* self, const Ts&... xs) {
    for (auto& w : queue_) {
      w.promise.deliver(xs...);
      watch_.remove(self, w.who);
    }
    queue_.clear();
  }

  /// Forgets every request of `who`, which is gone and expects no answer,
  /// and stops counting it as watched.
  void on_down(const caf::actor_addr& who) {
    for (auto i = queue_.begin(); i != queue_.end();)
      i = i->who == who ? queue_.erase(i) : i + 1;
    watch_.forget(who);
  }

  /// The monitors of this owner, for other reasons to watch a client (a
  /// semaphore counts its holders here too).
  watch_list& watch() noexcept {
    return watch_;
  }

  [[nodiscard]] std::size_t size() const noexcept {
    return queue_.size();
  }

  [[nodiscard]] bool empty() const noexcept {
    return queue_.empty();
  }

private:
  template <class Self>
  void schedule(Self* self, caf::timespan delay, uint64_t id) {
    timer_.schedule(self, delay, id);
  }

  weak_timer<expire_atom> timer_;
  std::deque<waiter> queue_;
  watch_list watch_;
  uint64_t next_id_ = 1;
};

} // namespace troupe::detail
