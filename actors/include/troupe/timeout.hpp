#pragma once

/// @file
/// `troupe::forever`, the timeout of every troupe call that waits, and the helpers that turn it
/// into CAF's.

#include <caf/duration.hpp>
#include <caf/error.hpp>
#include <caf/timespan.hpp>

#include <chrono>

namespace troupe {

/// A timeout that never runs out: wait for as long as it takes. Every troupe
/// call that waits takes a `caf::timespan` and defaults to this.
constexpr caf::timespan forever = caf::timespan::max();

namespace detail {

/// Whether `timeout` means no deadline: `forever`, or so long (over a
/// century) that adding it to a clock reading could overflow.
constexpr bool is_forever(caf::timespan timeout) noexcept {
  return timeout >= std::chrono::hours(24 * 365 * 100);
}

/// Converts a troupe timeout to the `caf::duration` that CAF's `request`
/// takes (`forever` becomes `caf::infinite`).
inline caf::duration to_duration(caf::timespan timeout) {
  return is_forever(timeout) ? caf::duration{caf::infinite} : caf::duration{timeout};
}

/// Maps CAF's request errors onto troupe's: `sec::request_timeout` becomes
/// `errc::timeout` and `sec::request_receiver_down` becomes
/// `errc::owner_down`, so callers of troupe primitives test one set of codes.
/// Any other error is returned as it is.
caf::error normalize_request_error(caf::error err);

} // namespace detail
} // namespace troupe
