#include "support/fixture.hpp"
#include "troupe/scoped_resource.hpp"

#include <atomic>
#include <future>
#include <memory>
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
    auto released = std::make_shared<std::promise<int>>();
    auto owner = sys.spawn([released](caf::event_based_actor* self) -> caf::behavior {
      auto res = std::make_shared<std::optional<scoped_resource<connection>>>();
      auto made = scoped_resource<connection>::make(
        self, [] { return connection{4}; },
        [released](connection& c) { released->set_value(c.id); });
      if (made)
        res->emplace(std::move(*made));
      // The behaviour keeps the resource: it is held until the actor ends.
      return {[res](caf::get_atom) { return (*res)->held(); }};
    });
    self->request(owner, troupe::test::deadline, caf::get_atom::value)
      .receive([](bool held) { CHECK(held); },
               [](caf::error& err) { FAIL(troupe::describe(err)); });
    troupe::test::kill_and_wait(self, owner);
    auto id = released->get_future();
    REQUIRE(id.wait_for(troupe::test::deadline) == std::future_status::ready);
    CHECK(id.get() == 4);
  }

} // TEST_SUITE
