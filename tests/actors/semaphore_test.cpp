#include "support/fixture.hpp"
#include "troupe/error.hpp"
#include "troupe/semaphore.hpp"

#include <future>
#include <optional>

using troupe::errc;
using troupe::semaphore;
using troupe::test::eventually;
using troupe::test::fixture;

namespace {

/// An event-based actor that takes a permit when asked and then never gives
/// it back: it answers `ok` once it holds the permit.
caf::behavior greedy_holder(caf::event_based_actor* self, caf::actor sem) {
  return {[self, sem](caf::get_atom) {
    auto rp = self->make_response_promise<caf::ok_atom>();
    self->request(sem, caf::infinite, troupe::acquire_atom::value)
      .then([rp](caf::ok_atom x) mutable { rp.deliver(x); },
            [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
    return rp;
  }};
}

} // namespace

TEST_SUITE("actors.semaphore") {

  TEST_CASE_FIXTURE(fixture, "a semaphore without permits is refused") {
    auto sut = semaphore::make(sys, 0);
    REQUIRE_FALSE(sut);
    CHECK(troupe::is(sut.error(), errc::invalid_argument));
  }

  TEST_CASE_FIXTURE(fixture, "acquire takes a permit and the lease gives it back") {
    auto sut = *semaphore::make(sys, 2);
    {
      auto lease = sut.acquire(self);
      REQUIRE(lease);
      CHECK(lease->held());
      CHECK(*sut.available() == 1);
    }
    CHECK(*sut.available() == 2);
  }

  TEST_CASE_FIXTURE(fixture, "acquire with a timeout when no permit is free ends in timeout") {
    auto sut = *semaphore::make(sys, 1);
    auto first = sut.acquire(self);
    REQUIRE(first);
    caf::scoped_actor other{sys};
    auto second = sut.acquire(other, std::chrono::milliseconds(20));
    REQUIRE_FALSE(second);
    CHECK(troupe::is(second.error(), errc::timeout));
    CHECK(*sut.available() == 0);
  }

  TEST_CASE_FIXTURE(fixture, "a waiter gets the permit when the holder releases it") {
    auto sut = *semaphore::make(sys, 1);
    auto first = sut.acquire(self);
    REQUIRE(first);
    auto waiter = std::async(std::launch::async, [&] {
      caf::scoped_actor me{sys};
      auto lease = sut.acquire(me, troupe::test::deadline);
      return static_cast<bool>(lease);
    });
    REQUIRE(eventually([&] {
      auto n = sut.waiting();
      REQUIRE(n);
      return *n == 1;
    }));
    first->release();
    REQUIRE(waiter.wait_for(troupe::test::deadline) == std::future_status::ready);
    CHECK(waiter.get());
  }

  TEST_CASE_FIXTURE(fixture, "a holder that dies without releasing gives its permit back") {
    auto sut = *semaphore::make(sys, 1);
    auto holder = sys.spawn(greedy_holder, sut.handle());
    self->request(holder, troupe::test::deadline, caf::get_atom::value)
      .receive([](caf::ok_atom) {}, [](caf::error& err) { FAIL(troupe::describe(err)); });
    CHECK(*sut.available() == 0);
    troupe::test::kill_and_wait(self, holder);
    auto lease = sut.acquire(self, troupe::test::deadline);
    CHECK(lease);
  }

  TEST_CASE_FIXTURE(fixture, "a waiter that dies leaves the queue and takes no permit") {
    auto sut = *semaphore::make(sys, 1);
    auto first = sut.acquire(self);
    REQUIRE(first);
    auto waiter = sys.spawn(greedy_holder, sut.handle());
    caf::anon_send(waiter, caf::get_atom::value); // queues behind `first`
    REQUIRE(eventually([&] {
      auto n = sut.waiting();
      REQUIRE(n);
      return *n == 1;
    }));
    troupe::test::kill_and_wait(self, waiter);
    REQUIRE(eventually([&] {
      auto n = sut.waiting();
      REQUIRE(n);
      return *n == 0;
    }));
    first->release();
    REQUIRE(eventually([&] { return *sut.available() == 1; }));
  }

  TEST_CASE_FIXTURE(fixture, "releasing a permit one does not hold is not_held") {
    auto sut = *semaphore::make(sys, 1);
    self->request(sut.handle(), troupe::test::deadline, troupe::release_atom::value)
      .receive([](caf::ok_atom) { FAIL("release without a permit succeeded"); },
               [](caf::error& err) { CHECK(troupe::is(err, errc::not_held)); });
    CHECK(*sut.available() == 1);
  }

  TEST_CASE_FIXTURE(fixture, "an acquire without a sender takes no permit") {
    auto sut = *semaphore::make(sys, 1);
    // Nobody could ever release a permit taken anonymously. The query below is
    // sent from this thread after the acquire, so it is answered after it.
    caf::anon_send(sut.handle(), troupe::acquire_atom::value);
    CHECK(*sut.available() == 1);
  }

  TEST_CASE_FIXTURE(fixture, "the same actor may hold several permits") {
    auto sut = *semaphore::make(sys, 3);
    auto a = sut.acquire(self);
    auto b = sut.acquire(self);
    REQUIRE(a);
    REQUIRE(b);
    CHECK(*sut.available() == 1);
    a->release();
    CHECK(eventually([&] { return *sut.available() == 2; }));
  }

  TEST_CASE_FIXTURE(fixture, "waiters get owner_down when the semaphore's actor is killed") {
    auto sut = *semaphore::make(sys, 1);
    auto first = sut.acquire(self);
    REQUIRE(first);
    auto waiter = std::async(std::launch::async, [&] {
      caf::scoped_actor me{sys};
      return sut.acquire(me).error();
    });
    REQUIRE(eventually([&] {
      auto n = sut.waiting();
      REQUIRE(n);
      return *n == 1;
    }));
    troupe::test::kill_and_wait(self, sut.handle());
    REQUIRE(waiter.wait_for(troupe::test::deadline) == std::future_status::ready);
    CHECK(troupe::is(waiter.get(), errc::owner_down));
  }

} // TEST_SUITE
