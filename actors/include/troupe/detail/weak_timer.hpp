#pragma once

/// @file
/// Internal (for templates; not part of the API): `weak_timer`, timers that keep neither their
/// actor nor its actor system alive.

#include "troupe/timeout.hpp"

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/behavior.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/send.hpp>

#include <algorithm>
#include <cstdint>

namespace troupe::detail {

/// Timer messages `(Atom, id)` for an event-based actor that neither keep the
/// actor alive nor hold up its actor system's shutdown.
///
/// CAF 0.17's `delayed_send` holds a strong reference to the receiver for the
/// whole delay (and `delayed_anon_send` still carries the sender), so an actor
/// system would wait for every stale timer at shutdown. Here the actor clock
/// holds a hidden relay instead; the relay keeps a weak reference to the owner
/// and forwards the message only if the owner still lives. The owner accepts
/// `(Atom, id)` only when `from_relay(current_sender())` holds.
///
/// One per owner, used on the owner's thread only.
template <class Atom>
class weak_timer {
public:
  /// Makes `self` receive `(Atom, id)` after `delay`; nothing for `forever`.
  template <class Self>
  void schedule(Self* self, caf::timespan delay, uint64_t id) {
    if (is_forever(delay))
      return;
    if (!relay_)
      relay_ = self->home_system().template spawn<caf::hidden>(
        relay, caf::actor_cast<caf::weak_actor_ptr>(self));
    auto& clock = self->home_system().clock();
    clock.schedule_message(
      clock.now() + std::max(delay, caf::timespan::zero()),
      caf::actor_cast<caf::strong_actor_ptr>(relay_),
      caf::make_mailbox_element(nullptr, caf::make_message_id(), {}, Atom::value, id));
  }

  /// Whether `sender` is this timer's relay (only it may deliver timeouts).
  [[nodiscard]] bool from_relay(const caf::strong_actor_ptr& sender) const {
    return relay_ && sender == caf::actor_cast<caf::strong_actor_ptr>(relay_);
  }

  /// Stops the relay at once (it also goes when the owner's state does).
  void stop() {
    if (relay_)
      caf::anon_send_exit(relay_, caf::exit_reason::kill);
    relay_ = nullptr;
  }

private:
  static caf::behavior relay(caf::event_based_actor* self, caf::weak_actor_ptr owner) {
    return {
      [self, owner](Atom, uint64_t id) {
        if (auto strong = owner.lock())
          self->send(caf::actor_cast<caf::actor>(strong), Atom::value, id);
      },
    };
  }

  caf::actor relay_;
};

} // namespace troupe::detail
