// Tests of managed_namespace.hpp: fields of any type, and what a field holds.

#include "manager_fixture.hpp"
#include "troupe/ipc/managed_namespace.hpp"

#include <string>
#include <vector>

using namespace troupe::test::ipc;

TEST_SUITE("ipc.managed_namespace") {

  TEST_CASE("a shared namespace holds fields of any type and says what a field holds") {
    manager_fixture f{"ns"};
    auto sut = managed_namespace::make(f.sys);
    REQUIRE_FALSE(sut.set("x", int32_t{42}));
    REQUIRE_FALSE(sut.set("name", std::string{"troupe"}));
    CHECK(sut.get<int32_t>("x") == int32_t{42});
    CHECK(sut.get<std::string>("name") == std::string{"troupe"});
    auto wrong = sut.get<std::string>("x");
    REQUIRE_FALSE(wrong);
    CHECK(troupe::is(wrong.error(), troupe::ipc::errc::type_error));
    CHECK(sut.contains("x") == true);
    CHECK(sut.names() == std::vector<std::string>{"name", "x"});
    REQUIRE_FALSE(sut.erase("x"));
    CHECK(troupe::is(sut.get<int32_t>("x").error(), troupe::ipc::errc::key_error));
    CHECK(troupe::is(sut.erase("x"), troupe::ipc::errc::key_error));
    CHECK(sut.contains("x") == false);
  }
}
