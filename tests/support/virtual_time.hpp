#pragma once

// An actor system on CAF's deterministic test coordinator: actors run only
// when the test says so, on the test's thread, and time passes only when the
// test advances the actor clock. For the tests of what troupe does at a given
// time (backoff, restart intensity, timeouts, rate limits), which then neither
// wait for real time nor depend on the machine's load.

#include "troupe/configure.hpp"

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include <chrono>
#include <vector>

namespace troupe::test {

struct virtual_time {
  struct config : caf::actor_system_config {
    config() {
      troupe::configure(*this);
      set("scheduler.policy", caf::atom("testing"));
    }
  };

  config cfg;
  caf::actor_system sys{cfg};
  caf::scheduler::test_coordinator& sched =
    dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());
  /// Actors to kill when the test ends, so that the system can shut down.
  std::vector<caf::actor> to_kill;

  virtual_time() {
    sched.run();
  }

  ~virtual_time() {
    for (auto& x : to_kill)
      caf::anon_send_exit(x, caf::exit_reason::kill);
    // Let everything end, timers included: nothing else would run it.
    do
      sched.run();
    while (sched.clock().trigger_timeouts() > 0);
  }

  /// The actor clock's time since the test began.
  caf::timespan now() const {
    return std::chrono::duration_cast<caf::timespan>(sched.clock().now() - start_);
  }

  /// Lets `d` pass on the actor clock, then runs every actor that has work.
  void advance(caf::timespan d) {
    sched.clock().advance_time(d);
    sched.run();
  }

  /// Runs every actor that has work, without letting time pass.
  void run() {
    sched.run();
  }

private:
  caf::actor_clock::time_point start_ = sched.clock().now();
};

} // namespace troupe::test
