#pragma once

// Decoding a message read from a ring into a mailbox element.
//
// CAF 0.17 deserializes every message into a `dynamic_message_data`: a
// vector of type-erased values, one allocation each, matched by the
// receiver one element at a time through virtual calls. A message sent
// inside one process is one typed `mailbox_element_vals<Ts...>` instead.
// For the shapes most messages have (one built-in value, or an atom and a
// built-in value), this decoder builds that same typed element from the
// bytes, so a cross-process message costs the receiver what a local one
// does; every other shape takes CAF's own path. The wire format is CAF's
// either way: the sender does not change.

#include <caf/binary_deserializer.hpp>
#include <caf/fwd.hpp>
#include <caf/mailbox_element.hpp>

#include <string>
#include <unordered_map>

namespace troupe::ipc::detail {

class message_decoder {
public:
  /// Learns the types' portable names from `sys` (the names on the wire).
  explicit message_decoder(caf::actor_system& sys);

  /// Reads the message at `src`'s position into a mailbox element (with
  /// `sender`, `mid` and `stages` moved into it). Typed for a known shape;
  /// otherwise through CAF's `caf::message`. Null with `err` set if the
  /// bytes are no message.
  caf::mailbox_element_ptr decode(caf::binary_deserializer& src, caf::strong_actor_ptr& sender,
                                  caf::message_id mid,
                                  caf::mailbox_element::forwarding_stack& stages,
                                  caf::error& err) const;

  /// Decodes a message of a known shape into a typed element.
  using typed_decoder = caf::mailbox_element_ptr (*)(caf::deserializer&, caf::strong_actor_ptr&,
                                                     caf::message_id,
                                                     caf::mailbox_element::forwarding_stack&,
                                                     caf::error&);

private:
  template <class... Ts>
  void add(caf::actor_system& sys);

  /// By the message's type name on the wire (`@<>+NAME+NAME...`).
  std::unordered_map<std::string, typed_decoder> shapes_;
};

} // namespace troupe::ipc::detail
