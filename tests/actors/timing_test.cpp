// What troupe does at a given time, on virtual time (CAF's test
// coordinator): every figure here is exact, whatever the machine's load.

#include "support/virtual_time.hpp"
#include "troupe/error.hpp"
#include "troupe/semaphore.hpp"
#include "troupe/supervisor.hpp"
#include "troupe/watchdog.hpp"

#include <doctest/doctest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using troupe::child_spec;
using troupe::errc;
using troupe::supervisor_event;
using troupe::supervisor_flags;
using troupe::test::virtual_time;

namespace {

using crash_atom = caf::atom_constant<caf::atom("crash")>;

/// A supervisor of one child on virtual time, and what happened to it.
struct supervised : virtual_time {
  /// When each incarnation of the child started.
  std::vector<caf::timespan> starts;
  /// The running incarnation.
  caf::actor child;
  /// What the supervisor told `on_event`.
  std::vector<supervisor_event::kind> events;
  /// Why the supervisor exited, once it has.
  std::optional<caf::error> exit_reason;
  caf::actor sup;

  /// A child that crashes on `crash_atom`, and ignores exit messages when
  /// `stubborn`.
  child_spec spec(bool stubborn = false) {
    child_spec result;
    result.name = "child";
    result.start = [this, stubborn](caf::actor_system& sys) {
      starts.push_back(now());
      child = sys.spawn([stubborn](caf::event_based_actor* self) -> caf::behavior {
        if (stubborn)
          self->set_exit_handler([](caf::exit_msg&) {});
        return {[self](crash_atom) { self->quit(caf::sec::runtime_error); }};
      });
      return child;
    };
    return result;
  }

  void start(supervisor_flags flags, child_spec child_spec) {
    flags.on_event = [this](const supervisor_event& e) { events.push_back(e.what); };
    sup = troupe::spawn_supervisor(sys, std::move(flags), {std::move(child_spec)});
    to_kill.push_back(sup);
    auto watcher = sys.spawn([this](caf::event_based_actor* self) -> caf::behavior {
      self->monitor(sup);
      self->set_down_handler([this](caf::down_msg& msg) { exit_reason = msg.reason; });
      return {[](int) {}};
    });
    to_kill.push_back(watcher);
    run();
    REQUIRE(starts.size() == 1);
  }

  void crash() {
    caf::anon_send(child, crash_atom::value);
    run();
  }

  /// Checks that the next start comes exactly `delay` after now.
  void expect_restart_after(caf::timespan delay) {
    auto before = starts.size();
    auto due = now() + delay;
    if (delay > 1ns)
      advance(delay - 1ns);
    CHECK_MESSAGE(starts.size() == before, "restarted before its delay");
    advance(1ns);
    REQUIRE_MESSAGE(starts.size() == before + 1, "not restarted after its delay");
    CHECK(starts.back() == due);
  }
};

/// Spawns an actor that asks `sem` for a permit (waiting up to `timeout`)
/// and writes down when it got one in `granted`, or when it failed in
/// `failed`. It holds its permit until it is killed.
void acquire_at_once(virtual_time& vt, const troupe::semaphore& sem, caf::timespan timeout,
                     std::vector<caf::timespan>& granted, std::vector<caf::timespan>& failed) {
  auto client = vt.sys.spawn([&vt, sem, timeout, &granted, &failed](caf::event_based_actor* self) {
    sem.acquire_then(
      self, [&vt, &granted] { granted.push_back(vt.now()); },
      [&vt, &failed](const caf::error&) { failed.push_back(vt.now()); }, timeout);
    return caf::behavior{[](int) {}};
  });
  vt.to_kill.push_back(client);
}

/// A watchdog on virtual time that writes down what it reports.
struct watched : virtual_time {
  std::vector<troupe::stall_report> reports;
  troupe::watchdog dog = make_dog();
  /// An actor the test runs only when it says so: not running it stands for
  /// a handler that blocks its thread.
  caf::actor sleeper = sys.spawn([]() -> caf::behavior { return {[](int x) { return x; }}; });

  watched() {
    to_kill.push_back(sleeper);
    dog.watch(sleeper);
  }

  troupe::watchdog make_dog() {
    troupe::watchdog_options options;
    options.threshold = 100ms;
    options.interval = 25ms;
    options.on_stall = [this](const troupe::stall_report& r) { reports.push_back(r); };
    auto result = troupe::watchdog::make(sys, options);
    REQUIRE(result);
    return std::move(*result);
  }

  /// Lets `d` pass in steps of the watchdog's interval, running only the
  /// watchdog: the sleeper never reaches its mailbox.
  void stall_for(caf::timespan d) {
    auto* dog_job =
      dynamic_cast<caf::resumable*>(caf::actor_cast<caf::abstract_actor*>(dog.handle()));
    for (auto passed = caf::timespan{0}; passed < d; passed += 25ms) {
      sched.clock().advance_time(25ms);
      sched.run_jobs_filtered([dog_job](caf::resumable* job) { return job == dog_job; });
    }
  }
};

supervisor_flags with_backoff(caf::timespan min, caf::timespan max, caf::timespan period) {
  supervisor_flags flags;
  flags.max_restarts = 100;
  flags.period = period;
  flags.backoff = troupe::restart_backoff{min, max, 0.0};
  return flags;
}

} // namespace

TEST_SUITE("actors.timing") {
  TEST_CASE_FIXTURE(supervised, "backoff doubles with each consecutive restart up to its max") {
    start(with_backoff(100ms, 400ms, 10s), spec());
    for (auto delay : {100ms, 200ms, 400ms, 400ms}) {
      crash();
      expect_restart_after(delay);
    }
    CHECK(events.size() == 4);
  }

  TEST_CASE_FIXTURE(supervised,
                    "a child that stayed up longer than the period backs off from min") {
    start(with_backoff(100ms, 1s, 1s), spec());
    crash();
    expect_restart_after(100ms);
    crash();
    expect_restart_after(200ms);
    advance(1s + 1ms); // up for longer than the period
    crash();
    expect_restart_after(100ms);
  }

  TEST_CASE_FIXTURE(supervised,
                    "one restart too many within the period makes the supervisor give up") {
    supervisor_flags flags;
    flags.max_restarts = 2;
    flags.period = 1s;
    start(flags, spec());
    crash();
    advance(400ms);
    crash();
    CHECK(starts.size() == 3);
    CHECK_FALSE(exit_reason);
    advance(400ms); // the third crash within 1 s of the first
    crash();
    CHECK(starts.size() == 3);
    REQUIRE(exit_reason);
    CHECK(troupe::is(*exit_reason, errc::restart_intensity));
    CHECK(events
          == std::vector<supervisor_event::kind>{supervisor_event::kind::restarted,
                                                 supervisor_event::kind::restarted,
                                                 supervisor_event::kind::gave_up});
  }

  TEST_CASE_FIXTURE(supervised, "restarts further apart than the period never add up") {
    supervisor_flags flags;
    flags.max_restarts = 1;
    flags.period = 1s;
    start(flags, spec());
    for (int i = 0; i < 5; ++i) {
      crash();
      advance(1s + 1ms);
    }
    CHECK(starts.size() == 6);
    CHECK_FALSE(exit_reason);
  }

  TEST_CASE_FIXTURE(supervised, "a child that ignores the stop is killed at its shutdown timeout") {
    auto stubborn = spec(true);
    stubborn.shutdown_timeout = 50ms;
    start(supervisor_flags{}, stubborn);
    caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
    run();
    advance(50ms - 1ns);
    CHECK_FALSE(exit_reason);
    advance(1ns);
    REQUIRE(exit_reason);
    CHECK(*exit_reason == caf::exit_reason::user_shutdown);
  }

  TEST_CASE_FIXTURE(virtual_time, "a rate limiter grants at most its count within any window") {
    auto sem = troupe::semaphore::make(sys, 10, 2, 1s); // 10 at once, 2 per second
    REQUIRE(sem);
    to_kill.push_back(sem->handle());
    std::vector<caf::timespan> granted;
    std::vector<caf::timespan> failed;
    for (int i = 0; i < 5; ++i)
      acquire_at_once(*this, *sem, troupe::forever, granted, failed);
    run();
    CHECK(granted == std::vector<caf::timespan>{0s, 0s});
    advance(1s - 1ns);
    CHECK(granted.size() == 2);
    advance(1ns);
    advance(1s);
    CHECK(granted == std::vector<caf::timespan>{0s, 0s, 1s, 1s, 2s});
    CHECK(failed.empty());
  }

  TEST_CASE_FIXTURE(virtual_time, "a semaphore waiter times out at its timeout, not before") {
    auto sem = troupe::semaphore::make(sys, 1);
    REQUIRE(sem);
    to_kill.push_back(sem->handle());
    std::vector<caf::timespan> granted;
    std::vector<caf::timespan> failed;
    acquire_at_once(*this, *sem, troupe::forever, granted, failed); // holds the permit
    acquire_at_once(*this, *sem, 300ms, granted, failed);
    run();
    CHECK(granted == std::vector<caf::timespan>{0s});
    advance(300ms - 1ns);
    CHECK(failed.empty());
    advance(1ns);
    CHECK(failed == std::vector<caf::timespan>{300ms});
  }

  TEST_CASE_FIXTURE(watched, "the watchdog reports an actor past its threshold, once per stall") {
    sched.run_jobs_filtered([this](caf::resumable* job) {
      return job
             == dynamic_cast<caf::resumable*>(caf::actor_cast<caf::abstract_actor*>(dog.handle()));
    }); // the watchdog takes the watch and probes the sleeper at 0
    stall_for(100ms);
    CHECK(reports.empty()); // exactly at the threshold: not past it
    stall_for(25ms);
    REQUIRE(reports.size() == 1);
    CHECK(reports[0].id == sleeper.id());
    CHECK(reports[0].blocked_for == 125ms);
    stall_for(500ms);
    CHECK(reports.size() == 1); // once per stall
    run();                      // the sleeper answers the probe: the stall is over
    stall_for(150ms);           // the next tick probes again, and that stall is reported too
    REQUIRE(reports.size() == 2);
    CHECK(reports[1].blocked_for == 125ms);
  }

  TEST_CASE_FIXTURE(watched,
                    "the watchdog never reports an actor that keeps reaching its mailbox") {
    for (int i = 0; i < 100; ++i)
      advance(25ms); // 2.5 s, running every actor at each step
    CHECK(reports.empty());
  }
}
