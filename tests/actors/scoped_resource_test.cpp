#include "support/fixture.hpp"
#include "troupe/scoped_resource.hpp"

#include <atomic>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>

using troupe::errc;
using troupe::scoped_resource;
using troupe::test::fixture;

namespace {

struct connection {
  int id = 0;
};

} // namespace

TEST_SUITE("actors.scoped_resource") {

  TEST_CASE("release runs once on an explicit release") {
    int released = 0;
    auto sut = scoped_resource<connection>::make(
      nullptr, [] { return connection{1}; }, [&](connection&) { ++released; });
    REQUIRE(sut);
    CHECK(sut->held());
    CHECK((*sut)->id == 1);
    CHECK_FALSE(sut->release());
    CHECK_FALSE(sut->held());
    CHECK_FALSE(sut->release());
    CHECK(released == 1);
  }

  TEST_CASE("release runs when the scope is left by an exception") {
    int released = 0;
    try {
      auto sut = scoped_resource<connection>::make(
        nullptr, [] { return connection{2}; }, [&](connection&) { ++released; });
      throw std::runtime_error("the body failed");
    } catch (const std::runtime_error&) {
    }
    CHECK(released == 1);
  }

  TEST_CASE("an acquire that throws holds nothing") {
    int released = 0;
    auto sut = scoped_resource<connection>::make(
      nullptr, []() -> connection { throw std::runtime_error("no route"); },
      [&](connection&) { ++released; });
    REQUIRE_FALSE(sut);
    CHECK(troupe::is(sut.error(), errc::start_failed));
    CHECK(released == 0);
  }

  TEST_CASE("a release that throws is reported to the caller") {
    auto sut = scoped_resource<connection>::make(
      nullptr, [] { return connection{3}; },
      [](connection&) { throw std::runtime_error("socket stuck"); });
    REQUIRE(sut);
    auto err = sut->release();
    CHECK(troupe::is(err, errc::task_failed));
    CHECK_FALSE(sut->held());
  }

  TEST_CASE_FIXTURE(fixture, "release runs when the owning actor dies holding the resource") {
    // The resource object lives outside the actor: only the owner's death
    // can release it here.
    std::atomic<int> released{0};
    std::optional<scoped_resource<connection>> outside;
    std::promise<void> made;
    auto owner = sys.spawn([&](caf::event_based_actor* me) -> caf::behavior {
      auto res = scoped_resource<connection>::make(
        me, [] { return connection{4}; }, [&released](connection&) { ++released; });
      if (res)
        outside.emplace(std::move(*res));
      made.set_value();
      return {[](caf::get_atom) {}};
    });
    made.get_future().wait();
    REQUIRE(outside);
    CHECK(outside->held());
    troupe::test::kill_and_wait(self, owner);
    // The release runs in the owner's cleanup, which may finish just after
    // its down message went out.
    CHECK(troupe::test::eventually([&] { return released == 1; }));
    CHECK_FALSE(outside->held());
    outside.reset(); // no second release
    CHECK(released == 1);
  }

} // TEST_SUITE
