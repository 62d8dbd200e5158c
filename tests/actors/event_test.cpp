#include "support/fixture.hpp"
#include "troupe/error.hpp"
#include "troupe/event.hpp"

#include <atomic>
#include <future>
#include <thread>
#include <vector>

using troupe::errc;
using troupe::event;
using troupe::test::eventually;
using troupe::test::fixture;

namespace {

/// Waits (with the deadline) until `sut` has `n` waiters queued.
bool waiting_becomes(const event& sut, std::size_t n) {
  return eventually([&] {
    auto waiting = sut.waiting();
    REQUIRE(waiting);
    return *waiting == n;
  });
}

/// Starts a thread that waits on `sut` and returns the future of its result.
std::future<caf::error> wait_async(const event& sut, caf::timespan timeout = troupe::forever) {
  return std::async(std::launch::async, [sut, timeout] { return sut.wait(timeout); });
}

bool ready(std::future<caf::error>& f) {
  return f.wait_for(troupe::test::deadline) == std::future_status::ready;
}

} // namespace

TEST_SUITE("actors.event") {

  TEST_CASE_FIXTURE(fixture, "a waiter blocks until another thread sets the event") {
    auto sut = event::make(sys);
    auto waiter = wait_async(sut);
    REQUIRE(waiting_becomes(sut, 1));
    CHECK(waiter.wait_for(std::chrono::milliseconds(0)) == std::future_status::timeout);
    REQUIRE_FALSE(sut.set());
    REQUIRE(ready(waiter));
    CHECK_FALSE(waiter.get());
  }

  TEST_CASE_FIXTURE(fixture, "set wakes every waiter") {
    auto sut = event::make(sys);
    std::vector<std::future<caf::error>> waiters;
    waiters.reserve(5);
    for (int i = 0; i < 5; ++i)
      waiters.push_back(wait_async(sut));
    REQUIRE(waiting_becomes(sut, 5));
    REQUIRE_FALSE(sut.set());
    for (auto& w : waiters) {
      REQUIRE(ready(w));
      CHECK_FALSE(w.get());
    }
    CHECK(*sut.waiting() == 0);
  }

  TEST_CASE_FIXTURE(fixture, "waiting on an unset event with a timeout ends in timeout") {
    auto sut = event::make(sys);
    auto err = sut.wait(self, std::chrono::milliseconds(20));
    CHECK(troupe::is(err, errc::timeout));
    CHECK(*sut.waiting() == 0);
    // A zero timeout polls.
    CHECK(troupe::is(sut.wait(self, caf::timespan::zero()), errc::timeout));
  }

  TEST_CASE_FIXTURE(fixture, "waiters that arrive after set return at once") {
    auto sut = event::make(sys);
    REQUIRE_FALSE(sut.set());
    CHECK(*sut.is_set());
    CHECK_FALSE(sut.wait(self, caf::timespan::zero()));
    CHECK_FALSE(sut.wait(self));
  }

  TEST_CASE_FIXTURE(fixture, "clear resets the event so new waiters block again") {
    auto sut = event::make(sys);
    REQUIRE_FALSE(sut.set());
    REQUIRE_FALSE(sut.clear());
    CHECK_FALSE(*sut.is_set());
    CHECK(troupe::is(sut.wait(self, std::chrono::milliseconds(10)), errc::timeout));
  }

  TEST_CASE_FIXTURE(fixture, "racing set and clear leave no waiter hanging") {
    auto sut = event::make(sys);
    std::vector<std::future<caf::error>> waiters;
    waiters.reserve(4);
    for (int i = 0; i < 4; ++i)
      waiters.push_back(wait_async(sut, std::chrono::seconds(5)));
    REQUIRE(waiting_becomes(sut, 4));
    std::atomic<int> failed{0};
    std::thread setter{[&] {
      for (int i = 0; i < 1000; ++i)
        failed += sut.set() ? 1 : 0;
    }};
    std::thread clearer{[&] {
      for (int i = 0; i < 1000; ++i)
        failed += sut.clear() ? 1 : 0;
    }};
    setter.join();
    clearer.join();
    CHECK(failed == 0);
    REQUIRE_FALSE(sut.set()); // whatever the interleaving, the event ends set
    for (auto& w : waiters) {
      REQUIRE(ready(w));
      CHECK_FALSE(w.get());
    }
    CHECK(*sut.is_set());
  }

  TEST_CASE_FIXTURE(fixture, "an actor can wait without blocking through the handle") {
    auto sut = event::make(sys);
    auto client = sys.spawn([sut](caf::event_based_actor* me) -> caf::behavior {
      return {[me, sut](caf::get_atom) {
        auto rp = me->make_response_promise<caf::ok_atom>();
        me->request(sut.handle(), caf::infinite, troupe::wait_atom::value)
          .then([rp](caf::ok_atom x) mutable { rp.deliver(x); },
                [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
        return rp;
      }};
    });
    auto answer = self->request(client, troupe::test::deadline, caf::get_atom::value);
    REQUIRE(waiting_becomes(sut, 1));
    REQUIRE_FALSE(sut.set());
    answer.receive([](caf::ok_atom) {}, [](caf::error& err) { FAIL(troupe::describe(err)); });
  }

  TEST_CASE_FIXTURE(fixture, "waiters get owner_down when the event's actor is killed") {
    auto sut = event::make(sys);
    auto waiter = wait_async(sut);
    REQUIRE(waiting_becomes(sut, 1));
    troupe::test::kill_and_wait(self, sut.handle());
    REQUIRE(ready(waiter));
    CHECK(troupe::is(waiter.get(), errc::owner_down));
  }

  TEST_CASE_FIXTURE(fixture, "waiting on an event whose actor is gone yields owner_down") {
    auto sut = event::make(sys);
    troupe::test::kill_and_wait(self, sut.handle());
    CHECK(troupe::is(sut.wait(self), errc::owner_down));
    CHECK(troupe::is(sut.is_set().error(), errc::owner_down));
  }

} // TEST_SUITE

TEST_SUITE("actors.event") {

  TEST_CASE("a served wait with a long timeout does not hold up shutdown") {
    // The timer of a wait must not keep the event alive: a system whose waits
    // were all answered shuts down at once, not when the timers run out.
    auto done = std::async(std::launch::async, [] {
      fixture fx;
      auto sut = event::make(fx.sys);
      REQUIRE_FALSE(sut.set());
      auto waiter = wait_async(sut, std::chrono::hours(1));
      REQUIRE(waiter.get() == caf::error{});
      caf::anon_send(sut.handle(), troupe::clear_atom::value);
      CHECK(troupe::is(sut.wait(fx.self, std::chrono::milliseconds(1)), errc::timeout));
      auto late = wait_async(sut, std::chrono::hours(1));
      REQUIRE(eventually([&] { return *sut.waiting() == 1; }));
      REQUIRE_FALSE(sut.set());
      CHECK_FALSE(late.get());
    });
    CHECK(done.wait_for(troupe::test::deadline) == std::future_status::ready);
  }

  TEST_CASE_FIXTURE(fixture, "a waiter actor that dies leaves the queue") {
    auto sut = event::make(sys);
    auto waiter = sys.spawn([sut](caf::event_based_actor* me) -> caf::behavior {
      sut.wait_then(
        me, [] {}, [](const caf::error&) {});
      return {[](caf::get_atom) {}};
    });
    REQUIRE(eventually([&] { return *sut.waiting() == 1; }));
    troupe::test::kill_and_wait(self, waiter);
    CHECK(eventually([&] { return *sut.waiting() == 0; }));
  }

  TEST_CASE_FIXTURE(fixture, "wait_then reports a timeout to an event-based actor") {
    auto sut = event::make(sys);
    auto client = sys.spawn([sut](caf::event_based_actor* me) -> caf::behavior {
      return {[me, sut](caf::get_atom) {
        auto rp = me->make_response_promise<caf::ok_atom>();
        sut.wait_then(
          me, [rp]() mutable { rp.deliver(caf::ok_atom::value); },
          [rp](caf::error err) mutable { rp.deliver(std::move(err)); },
          std::chrono::milliseconds(5));
        return rp;
      }};
    });
    self->request(client, troupe::test::deadline, caf::get_atom::value)
      .receive([](caf::ok_atom) { FAIL("an unset event was reported set"); },
               [](caf::error& err) { CHECK(troupe::is(err, errc::timeout)); });
  }

  TEST_CASE_FIXTURE(fixture, "a failed asynchronous wait does not terminate the sender") {
    auto sut = event::make(sys);
    auto client = sys.spawn([sut](caf::event_based_actor* me) -> caf::behavior {
      return {[me, sut](caf::get_atom) {
        // A poll of an unset event, sent without asking for an answer, then a
        // request: an error reply to the poll would arrive first and end `me`.
        me->send(sut.handle(), troupe::wait_atom::value, caf::timespan::zero());
        auto rp = me->make_response_promise<caf::ok_atom>();
        me->request(sut.handle(), caf::infinite, caf::get_atom::value).then([rp](bool) mutable {
          rp.deliver(caf::ok_atom::value);
        });
        return rp;
      }};
    });
    self->request(client, troupe::test::deadline, caf::get_atom::value)
      .receive([](caf::ok_atom) {},
               [](caf::error& err) { FAIL("the sender died: " << troupe::describe(err)); });
  }

  TEST_CASE_FIXTURE(fixture, "timeouts racing a set leave every waiter answered") {
    auto sut = event::make(sys);
    std::vector<std::future<caf::error>> waiters;
    waiters.reserve(20);
    for (int i = 0; i < 20; ++i)
      waiters.push_back(wait_async(sut, std::chrono::microseconds(50 * i)));
    REQUIRE_FALSE(sut.set());
    for (auto& w : waiters) {
      REQUIRE(ready(w));
      auto err = w.get();
      CHECK((!err || troupe::is(err, errc::timeout)));
    }
    CHECK(*sut.waiting() == 0);
  }

} // TEST_SUITE
