#include "support/fixture.hpp"
#include "troupe/bounded_queue.hpp"
#include "troupe/event.hpp"
#include "troupe/guarded.hpp"
#include "troupe/semaphore.hpp"

#include <atomic>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using troupe::errc;
using troupe::guarded;
using troupe::test::fixture;

namespace {

/// Keeps the owner of `sut` busy in an operation until `release()`; the
/// owner is inside that operation when the constructor returns.
class busy_owner {
public:
  explicit busy_owner(const guarded<int>& sut) {
    std::promise<void> entered;
    auto inside = entered.get_future();
    done_ = std::async(std::launch::async,
                       [&sut, gate = open_.get_future().share(), e = std::move(entered)]() mutable {
                         return sut.update([&](int& x) {
                           e.set_value();
                           gate.wait();
                           return ++x;
                         });
                       });
    inside.wait();
  }

  /// Lets the operation finish and returns its result.
  caf::expected<int> release() {
    open_.set_value();
    return done_.get();
  }

private:
  std::promise<void> open_;
  std::future<caf::expected<int>> done_;
};

} // namespace

TEST_SUITE("actors.guarded") {

  TEST_CASE_FIXTURE(fixture, "update applies the function and returns its result") {
    auto sut = guarded<int>::make(sys, 40);
    auto result = sut.update([](int& x) { return x += 2; });
    REQUIRE(result);
    CHECK(*result == 42);
    CHECK(*sut.get() == 42);
  }

  TEST_CASE_FIXTURE(fixture, "a function returning void yields success") {
    auto sut = guarded<std::vector<int>>::make(sys);
    auto result = sut.update([](std::vector<int>& xs) { xs.push_back(7); });
    CHECK(result);
    CHECK(sut.get()->size() == 1);
  }

  TEST_CASE_FIXTURE(fixture, "concurrent read-modify-writes from many threads lose nothing") {
    auto sut = guarded<long>::make(sys, 0L);
    constexpr int threads = 4;
    constexpr int per_thread = 5'000;
    std::atomic<int> failures{0};
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
          if (!ok)
            ++failures; // doctest's REQUIRE must not run off the main thread
        }
      });
    for (auto& w : workers)
      w.join();
    CHECK(failures == 0);
    CHECK(*sut.get(self) == threads * per_thread);
  }

  TEST_CASE_FIXTURE(fixture,
                    "a nested update of the same owner runs at once instead of deadlocking") {
    auto sut = guarded<int>::make(sys, 0);
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
    auto sut = guarded<std::vector<int>>::make(sys, std::vector<int>{1, 2, 3});
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
    auto sut = guarded<int>::make(sys, 0);
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
    auto sut = guarded<int>::make(sys, 1);
    auto result = sut.update_in_place([](int& x) -> int {
      x = 2;
      throw std::runtime_error("half done");
    });
    CHECK(troupe::is(result.error(), errc::update_failed));
    CHECK(*sut.get() == 2);
  }

  TEST_CASE_FIXTURE(fixture, "an update that gets no answer in time yields timeout") {
    auto sut = guarded<int>::make(sys, 0);
    busy_owner busy{sut};
    auto result = sut.update([](int& x) { return x; }, std::chrono::milliseconds(20));
    REQUIRE_FALSE(result);
    CHECK(troupe::is(result.error(), errc::timeout));
    CHECK(*busy.release() == 1);
  }

  TEST_CASE_FIXTURE(fixture, "update_then delivers the result to an event-based actor") {
    auto sut = guarded<int>::make(sys, 1);
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
    auto sut = guarded<int>::make(sys, 1);
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
    auto sut = guarded<int>::make(sys, 0);
    troupe::test::kill_and_wait(self, sut.handle());
    auto result = sut.update([](int& x) { return x; });
    REQUIRE_FALSE(result);
    CHECK(troupe::is(result.error(), errc::owner_down));
  }

  TEST_CASE_FIXTURE(fixture, "an update that timed out never runs later") {
    auto sut = guarded<int>::make(sys, 0);
    busy_owner busy{sut};
    auto ran = std::make_shared<std::atomic<bool>>(false);
    auto result = sut.update(
      [ran](int& x) {
        *ran = true;
        return x;
      },
      std::chrono::milliseconds(10));
    CHECK(troupe::is(result.error(), errc::timeout));
    CHECK(*busy.release() == 1);
    // The abandoned operation was queued before this one: once this one is
    // answered, the owner has passed it without running it.
    CHECK(sut.get());
    CHECK_FALSE(*ran);
  }

  TEST_CASE_FIXTURE(fixture, "an update the owner started before the timeout returns its result") {
    auto sut = guarded<int>::make(sys, 0);
    std::promise<void> unblock;
    auto gate = unblock.get_future().share();
    std::promise<void> entered;
    constexpr auto timeout = std::chrono::milliseconds(5);
    auto start = std::chrono::steady_clock::now();
    auto caller = std::async(std::launch::async, [&] {
      return sut.update(
        [&](int& x) {
          entered.set_value();
          gate.wait(); // still running when the caller's timeout passes
          return x = 42;
        },
        timeout);
    });
    entered.get_future().wait();
    // The event this test is about is the passing of the timeout itself.
    while (std::chrono::steady_clock::now() < start + 4 * timeout)
      std::this_thread::yield();
    unblock.set_value();
    REQUIRE(caller.wait_for(troupe::test::deadline) == std::future_status::ready);
    auto result = caller.get();
    REQUIRE(result);
    CHECK(*result == 42);
    CHECK(*sut.get() == 42);
  }

  TEST_CASE_FIXTURE(fixture, "a timeout of zero or less fails at once without running") {
    auto sut = guarded<int>::make(sys, 0);
    bool ran = false;
    auto result = sut.update(
      [&ran](int&) {
        ran = true;
        return 0;
      },
      caf::timespan::zero());
    CHECK(troupe::is(result.error(), errc::timeout));
    CHECK(troupe::is(sut.get(std::chrono::milliseconds(-1)).error(), errc::timeout));
    CHECK(*sut.get() == 0);
    CHECK_FALSE(ran);
  }

  TEST_CASE_FIXTURE(fixture,
                    "a call that would wait for itself across owners fails with would_deadlock") {
    auto a = guarded<int>::make(sys, 1);
    auto b = guarded<int>::make(sys, 2);
    caf::error inner;
    auto result = a.update(
      [&](int& x) {
        // A's operation blocks on B; B's operation calls back into A.
        auto from_b = b.update(
          [&](int& y) {
            auto back = a.update([](int& z) { return z; }, std::chrono::seconds(5));
            inner = back ? caf::error{} : back.error();
            return y;
          },
          std::chrono::seconds(5));
        return x + (from_b ? *from_b : -100);
      },
      std::chrono::seconds(5));
    REQUIRE(result);
    CHECK(*result == 3);
    CHECK(troupe::is(inner, errc::would_deadlock));
  }

  TEST_CASE_FIXTURE(
    fixture, "update_then reports timeout and never runs a function the busy owner did not start") {
    auto sut = guarded<int>::make(sys, 0);
    busy_owner busy{sut};
    auto ran = std::make_shared<std::atomic<bool>>(false);
    // Set once update_then has stamped its deadline: the clock starts there,
    // not when the test sends its request.
    auto stamped = std::make_shared<std::promise<std::chrono::steady_clock::time_point>>();
    auto stamped_at = stamped->get_future();
    const caf::timespan timeout = std::chrono::milliseconds(1);
    auto client = sys.spawn([=](caf::event_based_actor* me) -> caf::behavior {
      return {[=](caf::get_atom) {
        auto rp = me->make_response_promise<int>();
        sut.update_then(
          me,
          [ran](int& x) {
            *ran = true;
            return x;
          },
          [rp](int x) mutable { rp.deliver(x); },
          [rp](caf::error err) mutable { rp.deliver(std::move(err)); }, timeout);
        stamped->set_value(std::chrono::steady_clock::now());
        return rp;
      }};
    });
    auto answer = self->request(client, troupe::test::deadline, caf::get_atom::value);
    REQUIRE(stamped_at.wait_for(troupe::test::deadline) == std::future_status::ready);
    // Let the deadline pass while the owner is busy, then free the owner.
    auto passed = stamped_at.get() + 2 * timeout;
    while (std::chrono::steady_clock::now() < passed)
      std::this_thread::yield();
    CHECK(busy.release());
    answer.receive([](int) { FAIL("the operation ran after its deadline"); },
                   [](caf::error& err) { CHECK(troupe::is(err, errc::timeout)); });
    CHECK_FALSE(*ran);
  }

  TEST_CASE_FIXTURE(fixture, "update_then on a terminated owner reports owner_down") {
    auto sut = guarded<int>::make(sys, 0);
    troupe::test::kill_and_wait(self, sut.handle());
    auto client = sys.spawn([sut](caf::event_based_actor* me) -> caf::behavior {
      return {[me, sut](caf::get_atom) {
        auto rp = me->make_response_promise<int>();
        sut.update_then(
          me, [](int& x) { return x; }, [rp](int x) mutable { rp.deliver(x); },
          [rp](caf::error err) mutable { rp.deliver(std::move(err)); });
        return rp;
      }};
    });
    self->request(client, troupe::test::deadline, caf::get_atom::value)
      .receive([](int) { FAIL("a dead owner answered"); },
               [](caf::error& err) { CHECK(troupe::is(err, errc::owner_down)); });
  }

  TEST_CASE_FIXTURE(fixture, "every moved-from handle answers invalid_argument, not owner_down") {
    // One error for an empty handle, whatever the type: a caller's mistake,
    // not an owner that died.
    auto sut = guarded<int>::make(sys, 0);
    auto other = std::move(sut);
    CHECK(troupe::is(sut.get().error(), errc::invalid_argument)); // NOLINT(bugprone-use-after-move)
    CHECK(*other.get() == 0);
    auto ev = troupe::event::make(sys);
    auto ev2 = std::move(ev);
    CHECK(
      troupe::is(ev.is_set().error(), errc::invalid_argument)); // NOLINT(bugprone-use-after-move)
    auto sem = troupe::semaphore::make(sys, 1);
    REQUIRE(sem);
    auto sem2 = std::move(*sem);
    CHECK(troupe::is(sem->acquire(self, std::chrono::seconds(1)).error(), // NOLINT
                     errc::invalid_argument));
    auto q = troupe::bounded_queue<int>::make(sys, 1);
    REQUIRE(q);
    auto q2 = std::move(*q);
    CHECK(
      troupe::is(q->stats().error(), errc::invalid_argument)); // NOLINT(bugprone-use-after-move)
  }

} // TEST_SUITE
