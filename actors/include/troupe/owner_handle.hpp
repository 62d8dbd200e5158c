#pragma once

/// @file
/// `troupe::owner_handle`: what every handle to an actor-owned object shares, and the one way to
/// end that object.

#include "troupe/timeout.hpp"

#include <caf/actor.hpp>
#include <caf/error.hpp>

#include <utility>

namespace troupe {

namespace detail {

/// What every call on an empty handle returns: `errc::invalid_argument`.
caf::error empty_handle_error();

} // namespace detail

/// The part every troupe handle shares. A handle is a value naming the
/// actor (the *owner*) that holds some state, a queue, a pool or a shared
/// dict; copies talk to the same owner, from any thread.
///
/// Every owner ends the same way:
/// - `stop(timeout)` tells it to exit and waits until it has;
/// - otherwise it lives while something refers to it: a handle, a
///   publication, a request it has not answered yet. When the last of them
///   is gone, CAF ends it.
///
/// An empty handle (default-constructed or moved from) fails every call
/// with `errc::invalid_argument`.
class owner_handle {
public:
  /// An empty handle.
  owner_handle() = default;

  /// A handle to `owner`, e.g. what `node::lookup` returned. No type check
  /// happens: a call the owner does not understand fails.
  explicit owner_handle(caf::actor owner) noexcept : owner_(std::move(owner)) {}

  /// The owner, to monitor, link, publish, or talk to with its protocol.
  [[nodiscard]] const caf::actor& handle() const noexcept {
    return owner_;
  }

  /// Whether the handle names an owner (it may have ended since).
  explicit operator bool() const noexcept {
    return static_cast<bool>(owner_);
  }

  /// Tells the owner to exit (`caf::exit_reason::user_shutdown`) and waits
  /// until it has. Works from any thread and, for an owner in another
  /// process, from any process of its group. Returns no error once the
  /// owner is gone (also if it already was), `errc::timeout` if it still
  /// runs after `timeout`, `errc::invalid_argument` on an empty handle.
  /// Other handles to the same owner fail afterwards with
  /// `errc::owner_down` (or `errc::peer_lost` across processes).
  [[nodiscard]] caf::error stop(caf::timespan timeout = forever) const;

protected:
  /// What every call on an empty handle returns.
  static caf::error empty_handle_error() {
    return detail::empty_handle_error();
  }

  /// The owner; empty in an empty handle.
  caf::actor owner_;
};

} // namespace troupe
