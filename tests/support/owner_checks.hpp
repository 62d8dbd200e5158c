#pragma once

// Checks that hold for every troupe handle (troupe::owner_handle): how its
// owner is ended. Each layer's owner_handle_test runs them on its types.

#include "support/fixture.hpp"
#include "troupe/error.hpp"
#include "troupe/owner_handle.hpp"

#include <caf/all.hpp>
#include <doctest/doctest.h>

#include <utility>

namespace troupe::test {

/// Waits for the down message of the owner `self` monitors; returns whether
/// it came before the deadline.
inline bool owner_went_down(caf::scoped_actor& self) {
  bool down = false;
  self->receive([&](const caf::down_msg&) { down = true; }, caf::after(deadline) >> [] {});
  return down;
}

/// `stop()` ends the owner before it returns, and stopping again is no error.
/// `make(sys)` returns a handle of the type under test, called `type`.
template <class Make>
void check_stop_ends_the_owner(const char* type, Make make) {
  CAPTURE(type);
  fixture fx;
  auto sut = make(fx.sys);
  REQUIRE(sut);
  fx.self->monitor(sut.handle());
  CHECK_FALSE(sut.stop());
  // Stopped means gone: the down message is already on its way, and a
  // request now bounces instead of waiting.
  CHECK(owner_went_down(fx.self));
  CHECK_FALSE(sut.stop(std::chrono::seconds(1)));
}

/// An owner nobody refers to any more ends by itself.
template <class Make>
void check_last_handle_ends_the_owner(const char* type, Make make) {
  CAPTURE(type);
  fixture fx;
  {
    auto sut = make(fx.sys);
    REQUIRE(sut);
    fx.self->monitor(sut.handle());
  }
  CHECK_MESSAGE(owner_went_down(fx.self), type << " outlived its last handle");
}

/// Every way a handle can be empty fails `stop` with `invalid_argument`.
template <class Make>
void check_empty_handle_cannot_stop(const char* type, Make make) {
  CAPTURE(type);
  fixture fx;
  auto sut = make(fx.sys);
  auto moved = std::move(sut);
  CHECK(troupe::is(sut.stop(), errc::invalid_argument)); // NOLINT(bugprone-use-after-move)
  CHECK_FALSE(moved.stop());
}

} // namespace troupe::test
