#include "support/fixture.hpp"
#include "troupe/future.hpp"

#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

using troupe::as_completed;
using troupe::errc;
using troupe::future;
using troupe::detail::future_state;

namespace {

std::pair<future<int>, std::shared_ptr<future_state<int>>> make_future() {
  auto state = std::make_shared<future_state<int>>();
  return {future<int>{state}, state};
}

} // namespace

TEST_SUITE("actors.future") {

  TEST_CASE("get returns the value another thread sets") {
    auto [sut, state] = make_future();
    std::thread setter{[s = state] { s->set(42); }};
    CHECK(*sut.get() == 42);
    setter.join();
    CHECK(sut.ready());
    CHECK(*sut.get() == 42); // as often as asked
  }

  TEST_CASE("get with a timeout on a pending future ends in timeout") {
    auto [sut, state] = make_future();
    CHECK(troupe::is(sut.get(std::chrono::milliseconds(5)).error(), errc::timeout));
    CHECK_FALSE(sut.ready());
  }

  TEST_CASE("an error outcome reaches every copy and the first outcome wins") {
    auto [sut, state] = make_future();
    auto copy = sut;
    state->set(troupe::make_error(errc::task_failed, "oops"));
    state->set(7);
    CHECK(troupe::describe(sut.get().error()) == "troupe.task_failed: oops");
    CHECK(troupe::is(copy.get().error(), errc::task_failed));
  }

  TEST_CASE("on_ready runs at once when ready and later otherwise") {
    auto [sut, state] = make_future();
    int calls = 0;
    sut.on_ready([&] { ++calls; });
    CHECK(calls == 0);
    state->set(1);
    CHECK(calls == 1);
    sut.on_ready([&] { ++calls; });
    CHECK(calls == 2);
  }

  TEST_CASE("an invalid future says so") {
    future<int> sut;
    CHECK_FALSE(sut.valid());
    CHECK(troupe::is(sut.get().error(), errc::invalid_argument));
  }

  TEST_CASE("as_completed yields in completion order, each future once") {
    std::vector<future<int>> futures;
    std::vector<std::shared_ptr<future_state<int>>> states;
    for (int i = 0; i < 3; ++i) {
      auto [f, s] = make_future();
      futures.push_back(f);
      states.push_back(s);
    }
    as_completed<int> sut{futures};
    states[2]->set(2);
    states[0]->set(0);
    std::vector<int> order;
    auto first = sut.next();
    REQUIRE(first);
    order.push_back(*(*first)->get());
    std::thread late{[s = states[1]] { s->set(1); }};
    for (auto f : sut) // the rest, blocking until each completes
      order.push_back(*f.get());
    late.join();
    CHECK(order == std::vector<int>{2, 0, 1});
    CHECK(sut.remaining() == 0);
  }

  TEST_CASE("as_completed bounds a wait with a timeout") {
    auto [f, s] = make_future();
    as_completed<int> sut{{f}};
    CHECK(troupe::is(sut.next(std::chrono::milliseconds(5)).error(), errc::timeout));
    s->set(1);
    auto next = sut.next(troupe::test::deadline);
    REQUIRE(next);
    CHECK(next->has_value());
    CHECK_FALSE(sut.next()->has_value()); // exhausted
  }

  TEST_CASE("a throwing callback does not keep the others from running") {
    auto [sut, state] = make_future();
    int later = 0;
    sut.on_ready([] { throw std::runtime_error("bad callback"); });
    sut.on_ready([&later] { ++later; });
    as_completed<int> order{{sut}};
    state->set(1);
    CHECK(later == 1);
    auto next = order.next(troupe::test::deadline);
    REQUIRE(next);
    CHECK(next->has_value());
  }

} // TEST_SUITE
