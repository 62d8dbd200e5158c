#include "support/fixture.hpp"
#include "troupe/configure.hpp"
#include "troupe/error.hpp"

TEST_SUITE("actors.configure") {

  TEST_CASE("a configured actor system renders troupe errors by name") {
    troupe::test::fixture fx;
    auto text = fx.sys.render(troupe::make_error(troupe::errc::not_held, "x"));
    CHECK(text.find("troupe.not_held") != std::string::npos);
  }

  TEST_CASE("configuring twice is harmless") {
    troupe::test::fixture::config cfg;
    troupe::configure(cfg);
    caf::actor_system sys{cfg};
    CHECK(sys.render(troupe::make_error(troupe::errc::timeout)).find("troupe.timeout")
          != std::string::npos);
  }

} // TEST_SUITE
