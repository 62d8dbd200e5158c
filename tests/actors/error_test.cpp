#include "support/fixture.hpp"
#include "troupe/error.hpp"
#include "troupe/timeout.hpp"

TEST_SUITE("actors.error") {

  TEST_CASE("every error code has a name") {
    using troupe::errc;
    for (auto code :
         {errc::timeout, errc::owner_down, errc::update_failed, errc::not_held,
          errc::invalid_argument, errc::would_deadlock, errc::child_down, errc::restart_intensity,
          errc::start_failed, errc::worker_crashed, errc::cancelled, errc::task_failed,
          errc::closed, errc::full, errc::peer_lost}) {
      auto name = troupe::to_string(code);
      CHECK(name.find("errc(") == std::string::npos);
      CHECK(troupe::describe(code) == "troupe." + name);
    }
  }

  TEST_CASE("a troupe error converts from errc and is recognised by is") {
    caf::error sut = troupe::errc::timeout;
    CHECK(sut.category() == troupe::error_category);
    CHECK(troupe::is(sut, troupe::errc::timeout));
    CHECK_FALSE(troupe::is(sut, troupe::errc::owner_down));
    CHECK_FALSE(troupe::is(caf::error{}, troupe::errc::timeout));
  }

  TEST_CASE("describe names the code and keeps the context message") {
    auto sut = troupe::make_error(troupe::errc::update_failed, "insufficient funds");
    CHECK(troupe::describe(sut) == "troupe.update_failed: insufficient funds");
    CHECK(troupe::describe(caf::sec::request_timeout) == "caf.request_timeout");
    CHECK(troupe::describe(caf::error{}) == "no error");
  }

} // TEST_SUITE
