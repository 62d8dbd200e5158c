#pragma once

/// @file
/// Internal (for templates; not part of the API): the blocking call every handle of the actors
/// layer makes on its owner.

#include "troupe/error.hpp"
#include "troupe/owner_handle.hpp"
#include "troupe/timeout.hpp"

#include <caf/all.hpp>

#include <optional>
#include <utility>

namespace troupe::detail {

/// Sends `xs...` to `owner` through `self` and blocks until the answer,
/// which goes to `on_reply`; returns the error instead (normalized:
/// `errc::owner_down`...), or `errc::invalid_argument` for an empty owner.
/// No CAF timeout: a call with a deadline carries it in its message, so that
/// the owner knows when the caller gives up.
template <class OnReply, class... Ts>
caf::error call_through(caf::scoped_actor& self, const caf::actor& owner, OnReply on_reply,
                        Ts&&... xs) {
  if (!owner)
    return empty_handle_error();
  caf::error result;
  self->request(owner, caf::infinite, std::forward<Ts>(xs)...)
    .receive(on_reply, [&](caf::error& err) { result = normalize_request_error(std::move(err)); });
  return result;
}

/// `call_through` from a temporary `scoped_actor`.
template <class OnReply, class... Ts>
caf::error call(const caf::actor& owner, OnReply on_reply, Ts&&... xs) {
  if (!owner)
    return empty_handle_error();
  caf::scoped_actor self{owner->home_system()};
  return call_through(self, owner, std::move(on_reply), std::forward<Ts>(xs)...);
}

/// `call_through` for a call answered with one value of type `T`.
template <class T, class... Ts>
caf::expected<T> ask_through(caf::scoped_actor& self, const caf::actor& owner, Ts&&... xs) {
  std::optional<T> value;
  if (auto err = call_through(
        self, owner, [&](T& x) { value = std::move(x); }, std::forward<Ts>(xs)...))
    return err;
  return std::move(*value);
}

/// `call` for a call answered with one value of type `T`.
template <class T, class... Ts>
caf::expected<T> ask(const caf::actor& owner, Ts&&... xs) {
  std::optional<T> value;
  if (auto err = call(
        owner, [&](T& x) { value = std::move(x); }, std::forward<Ts>(xs)...))
    return err;
  return std::move(*value);
}

} // namespace troupe::detail
