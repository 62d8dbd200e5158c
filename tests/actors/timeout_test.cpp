#include "support/fixture.hpp"
#include "troupe/error.hpp"
#include "troupe/timeout.hpp"

#include <chrono>

TEST_SUITE("actors.timeout") {

  TEST_CASE("forever and timeouts past a century mean no deadline") {
    CHECK(troupe::detail::is_forever(troupe::forever));
    CHECK(troupe::detail::is_forever(std::chrono::hours(24 * 365 * 200)));
    CHECK_FALSE(troupe::detail::is_forever(std::chrono::hours(24)));
    CHECK_FALSE(troupe::detail::to_duration(troupe::forever).valid()); // caf::infinite
    CHECK(troupe::detail::to_duration(std::chrono::milliseconds(5))
          == caf::duration{caf::timespan{std::chrono::milliseconds(5)}});
  }

  TEST_CASE("CAF's request errors map onto troupe's codes") {
    using troupe::detail::normalize_request_error;
    CHECK(troupe::is(normalize_request_error(caf::sec::request_timeout), troupe::errc::timeout));
    CHECK(troupe::is(normalize_request_error(caf::sec::request_receiver_down),
                     troupe::errc::owner_down));
    caf::error other = caf::sec::unexpected_message;
    CHECK(normalize_request_error(other) == other);
  }

} // TEST_SUITE
