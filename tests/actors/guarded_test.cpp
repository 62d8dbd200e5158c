#include "support/fixture.hpp"
#include "troupe/guarded.hpp"

#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using troupe::errc;
using troupe::guarded;
using troupe::test::fixture;

TEST_SUITE("actors.guarded") {

  TEST_CASE_FIXTURE(fixture, "update applies the function and returns its result") {
    guarded<int> sut{sys, 40};
    auto result = sut.update([](int& x) { return x += 2; });
    REQUIRE(result);
    CHECK(*result == 42);
    CHECK(*sut.get() == 42);
  }

  TEST_CASE_FIXTURE(fixture, "a function returning void yields success") {
    guarded<std::vector<int>> sut{sys};
    auto result = sut.update([](std::vector<int>& xs) { xs.push_back(7); });
    CHECK(result);
    CHECK(sut.get()->size() == 1);
  }

  TEST_CASE_FIXTURE(fixture, "concurrent read-modify-writes from many threads lose nothing") {
    guarded<long> sut{sys, 0L};
    constexpr int threads = 4;
    constexpr int per_thread = 5'000;
    std::vector<std::thread> workers;
    workers.reserve(threads);
    for (int t = 0; t < threads; ++t)
      workers.emplace_back([&] {
        caf::scoped_actor me{sys};
        for (int i = 0; i < per_thread; ++i) {
          // A read, then a write: a lost update if two could interleave.
          auto ok = sut.update(me, [](long& x) {
            auto seen = x;
            x = seen + 1;
          });
          REQUIRE(ok);
        }
      });
    for (auto& w : workers)
      w.join();
    CHECK(*sut.get(self) == threads * per_thread);
  }

  TEST_CASE_FIXTURE(fixture,
                    "a nested update of the same owner runs at once instead of deadlocking") {
    guarded<int> sut{sys, 0};
    auto deposit = [&](int amount) {
      return sut.update([amount](int& x) { return x += amount; }, std::chrono::seconds(5));
    };
    auto result = sut.update(
      [&](int& x) {
        x += 1;
        auto inner = deposit(10); // re-enters the owner from its own operation
        REQUIRE(inner);
        CHECK(*inner == 11); // the nested call sees the outer work in progress
        return x;
      },
      std::chrono::seconds(5));
    REQUIRE(result);
    CHECK(*result == 11);
    CHECK(*sut.get() == 11);
  }

  TEST_CASE_FIXTURE(fixture,
                    "a throwing function yields update_failed and leaves the state intact") {
    guarded<std::vector<int>> sut{sys, std::vector<int>{1, 2, 3}};
    auto result = sut.update([](std::vector<int>& xs) -> int {
      xs.clear(); // a partial change, then the failure
      throw std::runtime_error("insufficient funds");
    });
    REQUIRE_FALSE(result);
    CHECK(troupe::is(result.error(), errc::update_failed));
    CHECK(troupe::describe(result.error()) == "troupe.update_failed: insufficient funds");
    CHECK(*sut.get() == std::vector<int>{1, 2, 3});
    // The owner keeps serving after the failure.
    CHECK(sut.update([](std::vector<int>& xs) { xs.push_back(4); }));
    CHECK(sut.get()->size() == 4);
  }

  TEST_CASE_FIXTURE(fixture,
                    "a throwing nested update fails alone and the outer update still commits") {
    guarded<int> sut{sys, 0};
    auto result = sut.update([&](int& x) {
      x = 5;
      auto inner = sut.update([](int& y) -> int {
        y = 1000;
        throw std::logic_error("nope");
      });
      CHECK(troupe::is(inner.error(), errc::update_failed));
      return x;
    });
    REQUIRE(result);
    CHECK(*result == 5);
    CHECK(*sut.get() == 5);
  }

  TEST_CASE_FIXTURE(fixture, "update_in_place keeps the changes made before a throw") {
    guarded<int> sut{sys, 1};
    auto result = sut.update_in_place([](int& x) -> int {
      x = 2;
      throw std::runtime_error("half done");
    });
    CHECK(troupe::is(result.error(), errc::update_failed));
    CHECK(*sut.get() == 2);
  }

  TEST_CASE_FIXTURE(fixture, "an update that gets no answer in time yields timeout") {
    guarded<int> sut{sys, 0};
    std::promise<void> unblock;
    auto gate = unblock.get_future().share();
    std::promise<void> entered;
    // Occupy the owner with an operation that waits for the test.
    auto busy = std::async(std::launch::async, [&] {
      return sut.update([&](int& x) {
        entered.set_value();
        gate.wait();
        return ++x;
      });
    });
    entered.get_future().wait();
    auto result = sut.update([](int& x) { return x; }, std::chrono::milliseconds(20));
    REQUIRE_FALSE(result);
    CHECK(troupe::is(result.error(), errc::timeout));
    unblock.set_value();
    CHECK(*busy.get() == 1);
  }

  TEST_CASE_FIXTURE(fixture, "update_then delivers the result to an event-based actor") {
    guarded<int> sut{sys, 1};
    auto client = sys.spawn([sut](caf::event_based_actor* me) -> caf::behavior {
      return {[me, sut](caf::get_atom) {
        auto rp = me->make_response_promise<int>();
        sut.update_then(
          me, [](int& x) { return x *= 10; }, [rp](int x) mutable { rp.deliver(x); },
          [rp](caf::error err) mutable { rp.deliver(std::move(err)); });
        return rp;
      }};
    });
    self->request(client, troupe::test::deadline, caf::get_atom::value)
      .receive([](int x) { CHECK(x == 10); }, [](caf::error& err) { FAIL(troupe::describe(err)); });
  }

  TEST_CASE_FIXTURE(fixture, "update_then reports a throwing function as an error") {
    guarded<int> sut{sys, 1};
    auto client = sys.spawn([sut](caf::event_based_actor* me) -> caf::behavior {
      return {[me, sut](caf::get_atom) {
        auto rp = me->make_response_promise<int>();
        sut.update_then(
          me, [](int&) -> int { throw std::runtime_error("boom"); },
          [rp](int x) mutable { rp.deliver(x); },
          [rp](caf::error err) mutable { rp.deliver(std::move(err)); });
        return rp;
      }};
    });
    self->request(client, troupe::test::deadline, caf::get_atom::value)
      .receive([](int) { FAIL("expected an error"); },
               [](caf::error& err) { CHECK(troupe::is(err, errc::update_failed)); });
    CHECK(*sut.get() == 1);
  }

  TEST_CASE_FIXTURE(fixture, "an update sent to a terminated owner yields owner_down") {
    guarded<int> sut{sys, 0};
    troupe::test::kill_and_wait(self, sut.handle());
    auto result = sut.update([](int& x) { return x; });
    REQUIRE_FALSE(result);
    CHECK(troupe::is(result.error(), errc::owner_down));
  }

} // TEST_SUITE
