#include "support/fixture.hpp"
#include "troupe/gather.hpp"

#include <memory>
#include <string>
#include <vector>

using troupe::ask;
using troupe::call;
using troupe::errc;
using troupe::test::fixture;

namespace {

/// Answers `(get_atom, name)` with `name` only once `expected` requests are
/// waiting: gathered calls that did not overlap would never be answered.
struct barrier_state {
  std::vector<std::pair<caf::typed_response_promise<std::string>, std::string>> waiting;
};

caf::behavior barrier(caf::stateful_actor<barrier_state>* self, std::size_t expected) {
  return {[self, expected](caf::get_atom, std::string name) {
    auto rp = self->make_response_promise<std::string>();
    auto& waiting = self->state.waiting;
    waiting.emplace_back(rp, std::move(name));
    if (waiting.size() == expected) {
      // Answer in reverse order: the gather must still keep argument order.
      for (auto i = waiting.rbegin(); i != waiting.rend(); ++i)
        i->first.deliver(i->second);
      waiting.clear();
    }
    return rp;
  }};
}

caf::behavior echo() {
  return {
    [](caf::get_atom, std::string name) -> caf::result<std::string> {
      if (name == "bad")
        return troupe::make_error(errc::invalid_argument, "bad name");
      return name;
    },
  };
}

} // namespace

TEST_SUITE("actors.gather") {

  TEST_CASE_FIXTURE(fixture, "gather overlaps the calls and keeps argument order") {
    auto b = sys.spawn(barrier, std::size_t{3});
    auto results = troupe::gather<std::string>(sys,
                                               {ask(b, caf::get_atom::value, std::string{"a"}),
                                                ask(b, caf::get_atom::value, std::string{"b"}),
                                                ask(b, caf::get_atom::value, std::string{"c"})},
                                               troupe::test::deadline);
    REQUIRE(results.size() == 3);
    CHECK(*results[0] == "a");
    CHECK(*results[1] == "b");
    CHECK(*results[2] == "c");
  }

  TEST_CASE_FIXTURE(fixture, "collect-all gives every call its own outcome") {
    auto e = sys.spawn(echo);
    auto results =
      troupe::gather<std::string>(sys, {ask(e, caf::get_atom::value, std::string{"x"}),
                                        ask(e, caf::get_atom::value, std::string{"bad"}),
                                        ask(e, caf::get_atom::value, std::string{"y"})});
    REQUIRE(results.size() == 3);
    CHECK(*results[0] == "x");
    CHECK(troupe::is(results[1].error(), errc::invalid_argument));
    CHECK(*results[2] == "y");
  }

  TEST_CASE_FIXTURE(fixture, "first-error gives the values, or the error") {
    auto e = sys.spawn(echo);
    auto good =
      troupe::gather_values<std::string>(sys, {ask(e, caf::get_atom::value, std::string{"x"}),
                                               ask(e, caf::get_atom::value, std::string{"y"})});
    REQUIRE(good);
    CHECK(*good == std::vector<std::string>{"x", "y"});
    auto bad =
      troupe::gather_values<std::string>(sys, {ask(e, caf::get_atom::value, std::string{"x"}),
                                               ask(e, caf::get_atom::value, std::string{"bad"})});
    REQUIRE_FALSE(bad);
    CHECK(troupe::is(bad.error(), errc::invalid_argument));
  }

  TEST_CASE_FIXTURE(fixture, "a call that is not answered in time yields timeout") {
    auto b = sys.spawn(barrier, std::size_t{2}); // never gets its second request
    auto results = troupe::gather<std::string>(
      sys, {ask(b, caf::get_atom::value, std::string{"a"})}, std::chrono::milliseconds(20));
    REQUIRE(results.size() == 1);
    CHECK(troupe::is(results[0].error(), errc::timeout));
    self->send_exit(b, caf::exit_reason::user_shutdown);
  }

  TEST_CASE_FIXTURE(fixture, "gathering nothing completes at once") {
    CHECK(troupe::gather<int>(sys, {}).empty());
    CHECK(troupe::gather_values<int>(sys, {})->empty());
  }

  TEST_CASE_FIXTURE(fixture, "an event-based actor gathers without blocking") {
    auto e = sys.spawn(echo);
    auto client = sys.spawn([e](caf::event_based_actor* me) -> caf::behavior {
      return {[me, e](caf::get_atom) {
        auto rp = me->make_response_promise<std::string>();
        troupe::gather_then_values<std::string>(
          me,
          {ask(e, caf::get_atom::value, std::string{"p"}),
           ask(e, caf::get_atom::value, std::string{"q"})},
          [rp](std::vector<std::string> xs) mutable { rp.deliver(xs[0] + xs[1]); },
          [rp](caf::error err) mutable { rp.deliver(std::move(err)); });
        return rp;
      }};
    });
    self->request(client, troupe::test::deadline, caf::get_atom::value)
      .receive([](std::string& s) { CHECK(s == "pq"); },
               [](caf::error& err) { FAIL(troupe::describe(err)); });
  }

} // TEST_SUITE
