#include "support/owner_checks.hpp"
#include "troupe/bounded_queue.hpp"
#include "troupe/event.hpp"
#include "troupe/guarded.hpp"
#include "troupe/semaphore.hpp"
#include "troupe/supervisor.hpp"
#include "troupe/watchdog.hpp"
#include "troupe/worker_pool.hpp"

#include <atomic>
#include <memory>

using namespace troupe;
using namespace troupe::test;
using namespace std::chrono_literals;

namespace {

caf::behavior echo() {
  return {[](int x) { return x; }};
}

/// Calls `check(type, make)` for every handle type of the actors layer.
template <class Check>
void for_every_type(Check check) {
  check("guarded", [](caf::actor_system& sys) { return guarded<int>::make(sys, 1); });
  check("event", [](caf::actor_system& sys) { return event::make(sys); });
  check("semaphore", [](caf::actor_system& sys) { return *semaphore::make(sys, 2); });
  check("rate limiter", [](caf::actor_system& sys) {
    return *semaphore::make(sys, 2, 10, std::chrono::seconds(1));
  });
  check("bounded_queue", [](caf::actor_system& sys) { return *bounded_queue<int>::make(sys, 4); });
  check("watchdog", [](caf::actor_system& sys) { return *watchdog::make(sys); });
  check("worker_pool", [](caf::actor_system& sys) {
    pool_options options;
    options.workers = 2;
    return *worker_pool::make(
      sys, [](caf::actor_system& s) { return s.spawn(echo); }, options);
  });
  check("supervisor", [](caf::actor_system& sys) {
    child_spec child;
    child.name = "echo";
    child.start = [](caf::actor_system& s) { return s.spawn(echo); };
    return *supervisor::make(sys, supervisor_flags{}, {child});
  });
}

} // namespace

TEST_SUITE("actors.owner_handle") {
  TEST_CASE("stop ends the owner of every handle type before it returns") {
    for_every_type([](const char* type, auto make) { check_stop_ends_the_owner(type, make); });
  }

  TEST_CASE("the owner of every handle type ends with its last handle") {
    for_every_type(
      [](const char* type, auto make) { check_last_handle_ends_the_owner(type, make); });
  }

  TEST_CASE("stop on a moved-from handle of every type is invalid_argument") {
    for_every_type([](const char* type, auto make) { check_empty_handle_cannot_stop(type, make); });
  }

  TEST_CASE_FIXTURE(fixture, "stop returns only once the owner has finished ending") {
    auto ended = std::make_shared<std::atomic<bool>>(false);
    owner_handle sut{sys.spawn([ended](caf::event_based_actor* me) -> caf::behavior {
      // Runs as the owner ends, on a scheduler thread: a stop that did not
      // wait would return before it.
      me->attach_functor([ended] { *ended = true; });
      return {[](int x) { return x; }};
    })};
    REQUIRE_FALSE(sut.stop());
    CHECK(*ended);
  }

  TEST_CASE_FIXTURE(fixture, "stop of an owner that does not end reports timeout") {
    auto stubborn = sys.spawn([](caf::event_based_actor* me) -> caf::behavior {
      me->set_exit_handler([](const caf::exit_msg&) {}); // ignores user_shutdown
      return {[](int x) { return x; }};
    });
    owner_handle sut{stubborn};
    CHECK(troupe::is(sut.stop(10ms), errc::timeout));
    kill_and_wait(self, stubborn);
  }

  TEST_CASE("a default-constructed handle is empty and cannot stop") {
    owner_handle sut;
    CHECK_FALSE(sut);
    CHECK(troupe::is(sut.stop(), errc::invalid_argument));
  }
}
