#include "support/fixture.hpp"
#include "troupe/error.hpp"
#include "troupe/timeout.hpp"

TEST_SUITE("actors.error") {

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

  TEST_CASE("CAF's request errors map onto troupe's codes") {
    using troupe::detail::normalize_request_error;
    CHECK(troupe::is(normalize_request_error(caf::sec::request_timeout), troupe::errc::timeout));
    CHECK(troupe::is(normalize_request_error(caf::sec::request_receiver_down),
                     troupe::errc::owner_down));
    caf::error other = caf::sec::unexpected_message;
    CHECK(normalize_request_error(other) == other);
  }

  TEST_CASE("a configured actor system renders troupe errors by name") {
    troupe::test::fixture fx;
    auto text = fx.sys.render(troupe::make_error(troupe::errc::not_held, "x"));
    CHECK(text.find("troupe.not_held") != std::string::npos);
  }

} // TEST_SUITE
