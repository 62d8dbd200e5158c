#include "support/fixture.hpp"
#include "troupe/error.hpp"
#include "troupe/watchdog.hpp"

#include <atomic>
#include <future>
#include <memory>
#include <mutex>
#include <vector>

using troupe::errc;
using troupe::stall_report;
using troupe::watchdog;
using troupe::watchdog_options;
using troupe::test::fixture;

namespace {

struct blocker_state {
  static constexpr const char* name = "blocker";
};

} // namespace

TEST_SUITE("actors.watchdog") {

  TEST_CASE_FIXTURE(fixture, "an actor whose handler blocks is reported by name") {
    auto reported = std::make_shared<std::promise<stall_report>>();
    auto once = std::make_shared<std::once_flag>();
    watchdog_options opts;
    opts.threshold = std::chrono::milliseconds(20);
    opts.on_stall = [reported, once](const stall_report& r) {
      std::call_once(*once, [&] { reported->set_value(r); });
    };
    auto sut = watchdog::make(sys, opts);
    REQUIRE(sut);
    std::promise<void> open;
    auto gate = open.get_future().share();
    auto blocker = sys.spawn([gate](caf::stateful_actor<blocker_state>*) -> caf::behavior {
      return {[gate](caf::get_atom) {
        gate.wait(); // the pitfall: a blocking call inside a handler
        return 1;
      }};
    });
    sut->watch(blocker);
    self->send(blocker, caf::get_atom::value);
    auto report = reported->get_future();
    REQUIRE(report.wait_for(troupe::test::deadline) == std::future_status::ready);
    auto r = report.get();
    CHECK(r.name == "blocker");
    CHECK(r.id == blocker.id());
    CHECK(r.blocked_for >= opts.threshold);
    open.set_value();
  }

  TEST_CASE_FIXTURE(fixture, "a watchdog needs a positive threshold") {
    watchdog_options opts;
    opts.threshold = caf::timespan::zero();
    CHECK(troupe::is(watchdog::make(sys, opts).error(), errc::invalid_argument));
  }

  TEST_CASE_FIXTURE(fixture, "the watchdog reports even when every scheduler thread is blocked") {
    // The fixture's scheduler has two threads: block both.
    auto reports = std::make_shared<std::atomic<int>>(0);
    watchdog_options opts;
    opts.threshold = std::chrono::milliseconds(20);
    opts.on_stall = [reports](const stall_report&) { ++*reports; };
    auto sut = watchdog::make(sys, opts);
    REQUIRE(sut);
    std::promise<void> open;
    auto gate = open.get_future().share();
    std::vector<caf::actor> blockers;
    for (int i = 0; i < 2; ++i) {
      blockers.push_back(
        sys.spawn([gate]() -> caf::behavior { return {[gate](caf::get_atom) { gate.wait(); }}; }));
      sut->watch(blockers.back());
      self->send(blockers.back(), caf::get_atom::value);
    }
    CHECK(troupe::test::eventually([&] { return *reports == 2; }));
    open.set_value();
    CHECK_FALSE(sut->stop());
  }

} // TEST_SUITE
