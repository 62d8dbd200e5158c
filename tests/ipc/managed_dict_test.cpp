// Tests of managed_dict.hpp: Python's dict, operation for operation, on an owner in this process.

#include "manager_fixture.hpp"
#include "troupe/ipc/managed_dict.hpp"

#include <string>
#include <utility>
#include <vector>

using namespace troupe::test::ipc;

TEST_SUITE("ipc.managed_dict") {

  TEST_CASE("a shared dict answers as Python's dict, name for name, order and errors included") {
    using item = std::pair<std::string, std::string>;
    manager_fixture f{"dict"};
    auto sut = sdict::make(f.sys);
    REQUIRE_FALSE(sut.set("b", "1"));
    REQUIRE_FALSE(sut.set("a", "x"));
    CHECK(sut.at("b") == std::string{"1"});
    CHECK(sut.setdefault("b", "other") == std::string{"1"});
    CHECK(sut.setdefault("c", "2") == std::string{"2"});
    REQUIRE_FALSE(sut.update({{"d", "3"}, {"b", "10"}})); // b keeps its place
    CHECK(sut.len() == int64_t{4});
    CHECK(sut.contains("c") == true);
    CHECK(sut.contains("zz") == false);
    // Insertion order, as Python's dict keeps it.
    CHECK(sut.keys() == std::vector<std::string>{"b", "a", "c", "d"});
    CHECK(sut.values() == std::vector<std::string>{"10", "x", "2", "3"});
    auto items = sut.items();
    REQUIRE(items);
    CHECK(*items == std::vector<item>{{"b", "10"}, {"a", "x"}, {"c", "2"}, {"d", "3"}});
    CHECK(sut.copy() == *items);
    // d.get(k) never fails on a missing key; d[k] does.
    auto present = sut.get("a");
    auto absent = sut.get("zz");
    REQUIRE(present);
    REQUIRE(absent);
    CHECK(*present == std::optional<std::string>{"x"});
    CHECK(*absent == std::nullopt);
    CHECK(sut.get("zz", "fallback") == std::string{"fallback"});
    auto missing = sut.at("zz");
    REQUIRE_FALSE(missing);
    CHECK(troupe::is(missing.error(), troupe::ipc::errc::key_error));
    CHECK(troupe::describe(missing.error()) == "troupe.key_error: key 'zz' is not in the dict");
    CHECK(sut.pop("c") == std::string{"2"});
    CHECK(troupe::is(sut.pop("c").error(), troupe::ipc::errc::key_error));
    CHECK(sut.pop("c", "gone") == std::string{"gone"});
    CHECK(sut.popitem() == item{"d", "3"}); // the newest
    REQUIRE_FALSE(sut.erase("a"));          // del d['a']
    CHECK(troupe::is(sut.erase("a"), troupe::ipc::errc::key_error));
    REQUIRE_FALSE(sut.set("e", "5"));
    CHECK(sut.keys() == std::vector<std::string>{"b", "e"});
    REQUIRE_FALSE(sut.clear());
    CHECK(sut.len() == int64_t{0});
    CHECK(troupe::describe(sut.popitem().error())
          == "troupe.key_error: popitem(): dictionary is empty");
  }
}
