#pragma once

#include "troupe/configure.hpp"

#include <caf/all.hpp>
#include <doctest/doctest.h>

#include <chrono>
#include <functional>
#include <thread>

namespace troupe::test {

/// An actor system with troupe configured and a scoped actor to ask from.
/// Uses the real scheduler: the tests exercise real concurrency, each with a
/// deadline so that a regression fails instead of hanging.
struct fixture {
  struct config : caf::actor_system_config {
    config() {
      troupe::configure(*this);
      set("scheduler.max-threads", 2);
    }
  };

  config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
};

/// The deadline a test waits for an event that should come promptly.
constexpr auto deadline = std::chrono::seconds(10);

/// Polls `pred` until it holds or `deadline` passed; returns whether it held.
/// For conditions that can only be observed by asking (an actor's state).
inline bool eventually(const std::function<bool()>& pred) {
  auto until = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < until) {
    if (pred())
      return true;
    std::this_thread::yield();
  }
  return pred();
}

/// Kills `who` and waits until it is gone.
inline void kill_and_wait(caf::scoped_actor& self, const caf::actor& who) {
  self->monitor(who);
  self->send_exit(who, caf::exit_reason::kill);
  self->receive([](const caf::down_msg&) {},
                caf::after(deadline) >> [] { FAIL("actor did not terminate"); });
}

} // namespace troupe::test
