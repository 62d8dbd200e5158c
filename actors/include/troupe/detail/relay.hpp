#pragma once

/// @file
/// Internal (for templates; not part of the API): `relay_request`, a request whose answer is passed
/// on whatever its types.

#include <caf/all.hpp>

#include <utility>

namespace troupe::detail {

/// Sends `content` to `dest` as a request of `self` and hands whatever comes
/// back, answer or error, to `on_answer(caf::message)` or
/// `on_error(caf::error)`, whatever the answer's types.
///
/// CAF 0.17 has no catch-all handler for event-based actors. An answer that
/// matches no handler of a response behaviour reaches its error handler as
/// `sec::unexpected_response` with the answer as context; that is how any
/// answer is passed on here. Returns the id of the (response to the)
/// request: to give up on it, enqueue an error message with that id to
/// `self`, which runs `on_error` and releases the handler.
template <class Self, class OnAnswer, class OnError>
caf::message_id relay_request(Self* self, const caf::actor& dest, caf::message content,
                              OnAnswer on_answer, OnError on_error) {
  auto handle = self->request(dest, caf::infinite, std::move(content));
  auto id = handle.id();
  self->add_multiplexed_response_handler(
    id, caf::behavior{[self, on_answer, on_error](caf::error& err) mutable {
      // An error the other side answered (or CAF bounced) is the message
      // itself; anything else came here only for not matching.
      auto* element = self->current_mailbox_element();
      bool real_error =
        element != nullptr && element->content().template match_elements<caf::error>();
      if (!real_error && err == caf::sec::unexpected_response)
        on_answer(err.context());
      else
        on_error(std::move(err));
    }});
  return id;
}

} // namespace troupe::detail
