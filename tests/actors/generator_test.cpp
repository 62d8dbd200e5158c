#include "support/fixture.hpp"
#include "troupe/generator.hpp"

#include <atomic>
#include <future>
#include <memory>
#include <stdexcept>
#include <vector>

using troupe::errc;
using troupe::generator;
using troupe::test::fixture;

namespace {

/// Counts 0..n-1 and records how far the producer ran.
generator<int>::producer counter(int n, std::shared_ptr<std::atomic<int>> produced) {
  return [n, produced, i = 0]() mutable -> std::optional<int> {
    if (i == n)
      return std::nullopt;
    ++*produced;
    return i++;
  };
}

} // namespace

TEST_SUITE("actors.generator") {

  TEST_CASE_FIXTURE(fixture, "values arrive in order and the stream ends cleanly") {
    auto produced = std::make_shared<std::atomic<int>>(0);
    generator<int> sut{sys, counter(5, produced)};
    std::vector<int> seen;
    for (int x : sut)
      seen.push_back(x);
    CHECK(seen == std::vector<int>{0, 1, 2, 3, 4});
    CHECK_FALSE(sut.error());
    CHECK_FALSE(sut.next()); // stays ended
  }

  TEST_CASE_FIXTURE(fixture, "the producer runs at most credit values ahead") {
    auto produced = std::make_shared<std::atomic<int>>(0);
    generator<int> sut{sys, counter(100, produced), 3};
    CHECK(*sut.next() == 0);
    CHECK(*sut.next() == 1);
    // Four pulls were sent in all (three, then one to top up): the producer
    // can have made no more than four values.
    CHECK(*produced <= 4);
  }

  TEST_CASE_FIXTURE(fixture, "a producer that throws ends the stream with its error") {
    int calls = 0;
    generator<int> sut{sys, [&calls]() -> std::optional<int> {
                         if (++calls > 2)
                           throw std::runtime_error("disk gone");
                         return calls;
                       }};
    std::vector<int> seen;
    for (int x : sut)
      seen.push_back(x);
    CHECK(seen == std::vector<int>{1, 2});
    CHECK(troupe::describe(sut.error()) == "troupe.task_failed: disk gone");
  }

  TEST_CASE_FIXTURE(fixture, "destroying a generator stops its producer before returning") {
    auto calls = std::make_shared<std::atomic<int>>(0);
    std::promise<void> open;
    auto gate = open.get_future().share();
    auto sut = std::make_unique<generator<int>>(
      sys,
      [calls, gate]() -> std::optional<int> {
        if (++*calls == 2)
          gate.wait(); // the second call is still running at destruction
        return *calls;
      },
      2);
    CHECK(*sut->next() == 1);
    REQUIRE(troupe::test::eventually([&] { return *calls == 2; }));
    auto destroyed = std::async(std::launch::async, [&] { sut.reset(); });
    // The destructor waits for the call in progress.
    CHECK(destroyed.wait_for(std::chrono::milliseconds(20)) == std::future_status::timeout);
    open.set_value();
    REQUIRE(destroyed.wait_for(troupe::test::deadline) == std::future_status::ready);
    CHECK(*calls == 2); // and no call after it
  }

} // TEST_SUITE
