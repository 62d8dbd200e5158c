#include "support/fixture.hpp"
#include "troupe/report_errors.hpp"

#include <future>
#include <memory>
#include <string>

using troupe::test::fixture;

namespace {

struct forgetful_state {
  static constexpr const char* name = "forgetful";
};

} // namespace

TEST_SUITE("actors.report_errors") {

  TEST_CASE_FIXTURE(fixture, "a failed request without an error handler is reported by name") {
    auto seen = std::make_shared<std::promise<std::pair<std::string, caf::error>>>();
    auto dead = sys.spawn([]() -> caf::behavior { return {[](int x) { return x; }}; });
    troupe::test::kill_and_wait(self, dead);
    auto sut = sys.spawn([seen, dead](caf::stateful_actor<forgetful_state>* me) -> caf::behavior {
      troupe::report_unhandled_errors(me, [seen](const std::string& name, const caf::error& err) {
        seen->set_value({name, err});
      });
      me->request(dead, caf::infinite, 1).then([](int) {}); // no error handler
      return {[](caf::get_atom) {}};
    });
    self->monitor(sut);
    auto report = seen->get_future();
    REQUIRE(report.wait_for(troupe::test::deadline) == std::future_status::ready);
    auto [name, err] = report.get();
    CHECK(name == "forgetful");
    CHECK(err == caf::sec::request_receiver_down);
    // The actor still ends with the error, as CAF's default does.
    self->receive([](caf::down_msg& msg) { CHECK(msg.reason == caf::sec::request_receiver_down); },
                  caf::after(troupe::test::deadline) >> [] { FAIL("the actor kept running"); });
  }

} // TEST_SUITE
