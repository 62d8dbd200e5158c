#include "support/fixture.hpp"
#include "troupe/error.hpp"
#include "troupe/semaphore.hpp"

#include <algorithm>
#include <atomic>
#include <future>
#include <optional>
#include <thread>
#include <vector>

using troupe::errc;
using troupe::semaphore;
using troupe::test::eventually;
using troupe::test::fixture;

namespace {

/// Waits (with the deadline) until `sut` has `n` waiters queued.
bool waiting_becomes(const semaphore& sut, std::size_t n) {
  return eventually([&] {
    auto waiting = sut.waiting();
    REQUIRE(waiting);
    return *waiting == n;
  });
}

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

  TEST_CASE_FIXTURE(fixture, "a lease that outlives its holder no longer holds the permit") {
    auto sut = *semaphore::make(sys, 1);
    semaphore::lease sut_lease;
    {
      caf::scoped_actor holder{sys};
      auto lease = sut.acquire(holder);
      REQUIRE(lease);
      sut_lease = std::move(*lease);
      CHECK(sut_lease.held());
    } // the holder is gone: the semaphore takes the permit back
    CHECK(eventually([&] { return *sut.available() == 1; }));
    CHECK(eventually([&] { return !sut_lease.held(); }));
    sut_lease.release(); // nothing left to give back
    CHECK(*sut.available() == 1);
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
    REQUIRE(waiting_becomes(sut, 1));
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
    REQUIRE(waiting_becomes(sut, 1));
    troupe::test::kill_and_wait(self, waiter);
    REQUIRE(waiting_becomes(sut, 0));
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
    REQUIRE(waiting_becomes(sut, 1));
    troupe::test::kill_and_wait(self, sut.handle());
    REQUIRE(waiter.wait_for(troupe::test::deadline) == std::future_status::ready);
    CHECK(troupe::is(waiter.get(), errc::owner_down));
  }

  TEST_CASE_FIXTURE(fixture, "ten actors sharing three permits never hold more than three") {
    auto sut = *semaphore::make(sys, 3);
    // The gauge counts holders: `add` once a permit is held, `sub` before it
    // is given back, so it never counts a task that holds no permit.
    struct gauge_state {
      int inside = 0;
      int max_inside = 0;
    };
    auto gauge = sys.spawn([](caf::stateful_actor<gauge_state>* me) -> caf::behavior {
      return {
        [me](caf::add_atom) {
          me->state.max_inside = std::max(me->state.max_inside, ++me->state.inside);
          return me->state.max_inside;
        },
        [me](caf::sub_atom) {
          --me->state.inside;
          return caf::ok_atom::value;
        },
        [me](caf::get_atom) { return me->state.max_inside; },
      };
    });
    caf::actor boss = caf::actor_cast<caf::actor>(self.ptr());
    for (int i = 0; i < 10; ++i)
      sys.spawn([sut, gauge, boss](caf::event_based_actor* me) {
        sut.acquire_then(
          me,
          [me, sut, gauge, boss] {
            me->request(gauge, caf::infinite, caf::add_atom::value).then([=](int) {
              me->request(gauge, caf::infinite, caf::sub_atom::value).then([=](caf::ok_atom) {
                sut.release(me);
                me->send(boss, caf::ok_atom::value);
              });
            });
          },
          [me, boss](const caf::error& err) { me->send(boss, err); });
      });
    for (int done = 0; done < 10; ++done)
      self->receive([](caf::ok_atom) {}, [](caf::error& err) { FAIL(troupe::describe(err)); },
                    caf::after(troupe::test::deadline) >> [] { FAIL("tasks did not finish"); });
    self->request(gauge, troupe::test::deadline, caf::get_atom::value)
      .receive(
        [](int max_inside) {
          CHECK(max_inside >= 1);
          CHECK(max_inside <= 3);
        },
        [](caf::error& err) { FAIL(troupe::describe(err)); });
    CHECK(eventually([&] { return *sut.available() == 3; }));
  }

  TEST_CASE_FIXTURE(fixture, "acquire timeouts racing releases lose no permit") {
    auto sut = *semaphore::make(sys, 2);
    std::atomic<int> acquired{0};
    std::vector<std::thread> threads;
    threads.reserve(4);
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&, t] {
        caf::scoped_actor me{sys};
        for (int i = 0; i < 200; ++i) {
          auto lease = sut.acquire(me, std::chrono::microseconds((t * 37 + i) % 100));
          if (lease)
            ++acquired;
        } // each lease is released at the end of its iteration
      });
    for (auto& t : threads)
      t.join();
    CHECK(acquired > 0);
    CHECK(eventually([&] { return *sut.available() == 2 && *sut.waiting() == 0; }));
  }

  TEST_CASE_FIXTURE(fixture, "a failed asynchronous release does not terminate the sender") {
    auto sut = *semaphore::make(sys, 1);
    auto client = sys.spawn([sut](caf::event_based_actor* me) -> caf::behavior {
      return {[me, sut](caf::get_atom) {
        // Holds no permit: the failure is reported on stderr. An error reply
        // would arrive before the answer to the request below and end `me`.
        sut.release(me);
        auto rp = me->make_response_promise<caf::ok_atom>();
        me->request(sut.handle(), caf::infinite, caf::get_atom::value)
          .then([rp](std::size_t) mutable { rp.deliver(caf::ok_atom::value); });
        return rp;
      }};
    });
    self->request(client, troupe::test::deadline, caf::get_atom::value)
      .receive([](caf::ok_atom) {},
               [](caf::error& err) { FAIL("the sender died: " << troupe::describe(err)); });
    CHECK(*sut.available() == 1);
  }

  TEST_CASE_FIXTURE(fixture, "acquire on a semaphore whose actor is gone yields owner_down") {
    auto sut = *semaphore::make(sys, 1);
    troupe::test::kill_and_wait(self, sut.handle());
    auto lease = sut.acquire(self);
    REQUIRE_FALSE(lease);
    CHECK(troupe::is(lease.error(), errc::owner_down));
  }

  TEST_CASE("waiters are served first come, first served") {
    // Deterministic: CAF's test coordinator runs the actors on this thread,
    // one step at a time, so the order below is the only possible one.
    caf::actor_system_config cfg;
    troupe::configure(cfg);
    cfg.set("scheduler.policy", caf::atom("testing"));
    caf::actor_system sys{cfg};
    auto& sched = dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());
    auto sut = *semaphore::make(sys, 1);
    auto order = std::make_shared<std::vector<int>>();
    auto client = [&](int n) {
      return sys.spawn([sut, order, n](caf::event_based_actor* me) -> caf::behavior {
        return {
          [=](caf::get_atom) {
            sut.acquire_then(
              me, [order, n] { order->push_back(n); }, [](const caf::error&) {});
          },
          [=](troupe::release_atom) { sut.release(me); },
        };
      });
    };
    auto a = client(1);
    auto b = client(2);
    auto c = client(3);
    for (auto& x : {a, b, c}) {
      caf::anon_send(x, caf::get_atom::value);
      sched.run();
    }
    CHECK(*order == std::vector<int>{1});
    caf::anon_send(a, troupe::release_atom::value);
    sched.run();
    CHECK(*order == std::vector<int>{1, 2});
    caf::anon_send(b, troupe::release_atom::value);
    sched.run();
    CHECK(*order == std::vector<int>{1, 2, 3});
    for (auto& x : {a, b, c})
      caf::anon_send_exit(x, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(sut.handle(), caf::exit_reason::user_shutdown);
    sched.run();
  }

  TEST_CASE_FIXTURE(fixture, "a rate limiter grants at most count permits per window") {
    constexpr auto window = std::chrono::milliseconds(40);
    auto sut = semaphore::make(sys, 10, 2, window);
    REQUIRE(sut);
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 6; ++i) {
      auto lease = sut->acquire(self, troupe::test::deadline);
      REQUIRE(lease);
    } // each released at once: only the rate holds them back
    // Grants 0-1 in the first window, 2-3 in the second, 4-5 in the third.
    CHECK(std::chrono::steady_clock::now() - start >= 2 * window);
  }

  TEST_CASE_FIXTURE(fixture, "a rate limiter still bounds what is in flight") {
    auto sut = *semaphore::make(sys, 2, 100, std::chrono::seconds(1));
    auto a = sut.acquire(self);
    auto b = sut.acquire(self);
    REQUIRE(a);
    REQUIRE(b);
    CHECK(troupe::is(sut.acquire(self, std::chrono::milliseconds(5)).error(), errc::timeout));
  }

  TEST_CASE_FIXTURE(fixture, "a rate limiter without a rate is refused") {
    CHECK(troupe::is(semaphore::make(sys, 1, 0, std::chrono::seconds(1)).error(),
                     errc::invalid_argument));
    CHECK(troupe::is(semaphore::make(sys, 1, 1, caf::timespan::zero()).error(),
                     errc::invalid_argument));
    CHECK(troupe::is(semaphore::make(sys, 0, 1, std::chrono::seconds(1)).error(),
                     errc::invalid_argument));
  }

  TEST_CASE("a rate limiter's pending wake-up does not hold up shutdown") {
    auto done = std::async(std::launch::async, [] {
      fixture fx;
      auto sut = *semaphore::make(fx.sys, 5, 1, std::chrono::hours(1));
      auto first = sut.acquire(fx.self);
      REQUIRE(first);
      // The second waits for the rate (an hour) and gives up.
      CHECK(troupe::is(sut.acquire(fx.self, std::chrono::milliseconds(5)).error(), errc::timeout));
    });
    CHECK(done.wait_for(troupe::test::deadline) == std::future_status::ready);
  }

} // TEST_SUITE
