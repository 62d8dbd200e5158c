#include "support/fixture.hpp"
#include "troupe/executor.hpp"

#include <atomic>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using troupe::as_completed;
using troupe::errc;
using troupe::executor;
using troupe::executor_options;
using troupe::shutdown_mode;
using troupe::test::fixture;

namespace {

executor_options workers(std::size_t n) {
  executor_options result;
  result.workers = n;
  return result;
}

/// A task that runs on a worker of `ex` until `open()`; running when the
/// constructor returns.
struct gated_task {
  explicit gated_task(executor& ex) {
    auto running = started_.get_future();
    result = ex.submit([this, gate = gate_.get_future().share()] {
      started_.set_value();
      gate.wait();
      return 1;
    });
    running.wait();
  }

  void open() {
    gate_.set_value();
  }

  std::promise<void> gate_;
  std::promise<void> started_;
  troupe::future<int> result;
};

} // namespace

TEST_SUITE("actors.executor") {

  TEST_CASE_FIXTURE(fixture, "submit runs the function with its arguments on a worker") {
    auto sut = executor::make(sys, workers(2));
    REQUIRE(sut);
    auto caller = std::this_thread::get_id();
    auto f = sut->submit(
      [caller](int a, std::string b) {
        CHECK(std::this_thread::get_id() != caller);
        return b + std::to_string(a);
      },
      42, std::string{"x"});
    CHECK(*f.get(troupe::test::deadline) == "x42");
  }

  TEST_CASE_FIXTURE(fixture, "a task that returns nothing completes its future") {
    auto sut = executor::make(sys, workers(1));
    REQUIRE(sut);
    std::atomic<int> ran{0};
    auto f = sut->submit([&ran] { ++ran; });
    CHECK(f.get(troupe::test::deadline));
    CHECK(ran == 1);
  }

  TEST_CASE_FIXTURE(fixture, "a task's exception is delivered to whoever takes the result") {
    auto sut = executor::make(sys, workers(1));
    REQUIRE(sut);
    auto f = sut->submit([]() -> int { throw std::runtime_error("oops"); });
    auto result = f.get(troupe::test::deadline);
    REQUIRE_FALSE(result);
    CHECK(troupe::describe(result.error()) == "troupe.task_failed: oops");
    // The worker survives its task's exception.
    CHECK(*sut->submit([] { return 1; }).get(troupe::test::deadline) == 1);
  }

  TEST_CASE_FIXTURE(fixture, "map returns the results in input order") {
    auto sut = executor::make(sys, workers(3));
    REQUIRE(sut);
    // Later inputs finish first: each task waits for the one after it.
    std::vector<std::promise<void>> done(4);
    std::vector<std::shared_future<void>> after;
    after.reserve(done.size());
    for (auto& d : done)
      after.push_back(d.get_future().share());
    done[3].set_value();
    auto results = sut->map(
      [&](int i) {
        after[i + 1].wait();
        done[i].set_value();
        return i * i;
      },
      std::vector<int>{0, 1, 2});
    REQUIRE(results.size() == 3);
    CHECK(*results[0] == 0);
    CHECK(*results[1] == 1);
    CHECK(*results[2] == 4);
  }

  TEST_CASE_FIXTURE(fixture, "as_completed yields the executor's futures as they finish") {
    auto sut = executor::make(sys, workers(3));
    REQUIRE(sut);
    std::vector<std::promise<void>> gates(3);
    std::vector<troupe::future<int>> futures;
    futures.reserve(3);
    for (int i = 0; i < 3; ++i)
      futures.push_back(sut->submit([g = gates[i].get_future().share(), i] {
        g.wait();
        return i;
      }));
    as_completed<int> order{futures};
    std::vector<int> seen;
    for (int i : {1, 2, 0}) {
      gates[i].set_value(); // finish one, and see it come out next
      auto next = order.next(troupe::test::deadline);
      REQUIRE(next);
      REQUIRE(next->has_value());
      seen.push_back(*(*next)->get());
    }
    CHECK(seen == std::vector<int>{1, 2, 0});
  }

  TEST_CASE_FIXTURE(fixture, "stop waits for the queued tasks") {
    auto sut = executor::make(sys, workers(1));
    REQUIRE(sut);
    std::atomic<int> ran{0};
    std::vector<troupe::future<void>> futures;
    futures.reserve(5);
    for (int i = 0; i < 5; ++i)
      futures.push_back(sut->submit([&ran] { ++ran; }));
    REQUIRE_FALSE(sut->stop(shutdown_mode::wait));
    CHECK(ran == 5);
    for (auto& f : futures)
      CHECK(f.ready());
    auto late = sut->submit([] { return 1; });
    CHECK(troupe::is(late.get().error(), errc::cancelled));
  }

  TEST_CASE_FIXTURE(fixture,
                    "stop with cancel fails the queued tasks and lets the running one finish") {
    auto sut = executor::make(sys, workers(1));
    REQUIRE(sut);
    gated_task task{*sut};
    std::vector<troupe::future<int>> queued;
    queued.reserve(3);
    for (int i = 0; i < 3; ++i)
      queued.push_back(sut->submit([] { return 2; }));
    auto stopping =
      std::async(std::launch::async, [&] { return sut->stop(shutdown_mode::cancel); });
    for (auto& f : queued) {
      auto outcome = f.get(troupe::test::deadline);
      REQUIRE_FALSE(outcome);
      CHECK_MESSAGE(troupe::is(outcome.error(), errc::cancelled),
                    troupe::describe(outcome.error()));
    }
    task.open();
    CHECK(*task.result.get(troupe::test::deadline) == 1);
    REQUIRE(stopping.wait_for(troupe::test::deadline) == std::future_status::ready);
    CHECK_FALSE(stopping.get());
  }

  TEST_CASE_FIXTURE(fixture, "stop reports timeout while a task runs on, and a later stop waits") {
    auto sut = executor::make(sys, workers(1));
    REQUIRE(sut);
    gated_task task{*sut};
    CHECK(troupe::is(sut->stop(shutdown_mode::wait, std::chrono::milliseconds(1)), errc::timeout));
    // Closed by the first stop although it timed out.
    CHECK(troupe::is(sut->submit([] { return 2; }).get().error(), errc::cancelled));
    task.open();
    CHECK_FALSE(sut->stop());
    CHECK(*task.result.get() == 1);
    CHECK_FALSE(sut->stop()); // stopping again is no error
  }

  TEST_CASE("stop on a moved-from executor is invalid_argument") {
    fixture fx;
    auto sut = executor::make(fx.sys, workers(1));
    REQUIRE(sut);
    auto moved = std::move(*sut);
    CHECK(troupe::is(sut->stop(), errc::invalid_argument)); // NOLINT(bugprone-use-after-move)
    CHECK_FALSE(moved.stop());
  }

} // TEST_SUITE
