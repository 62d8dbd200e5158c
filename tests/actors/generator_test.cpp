#include "support/fixture.hpp"
#include "troupe/generator.hpp"

#include <atomic>
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

} // TEST_SUITE
