#pragma once

/// @file
/// `troupe::full_policy`: what a sender does when what it sends to has no room.

namespace troupe {

/// What a sender does when what it sends to is full: a `bounded_queue` at
/// its capacity, or (`troupe::ipc::group_options::on_full`) the ring to
/// another process whose reader is slow or stopped.
enum class full_policy {
  /// Wait for room, up to the call's timeout (`group_options::full_timeout`
  /// for a ring): the waiting sender is the backpressure.
  wait,
  /// Fail at once with `errc::full` (an asynchronous sender across
  /// processes gets it as an error message).
  fail,
};

} // namespace troupe
