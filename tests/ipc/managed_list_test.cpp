// Tests of managed_list.hpp: Python's list, indices and errors included.

#include "manager_fixture.hpp"
#include "troupe/ipc/managed_list.hpp"

#include <vector>

using namespace troupe::test::ipc;

TEST_SUITE("ipc.managed_list") {

  TEST_CASE("a shared list answers every operation with Python's indices and errors") {
    manager_fixture f{"list"};
    auto sut = slist::make(f.sys, {1, 2, 3});
    REQUIRE_FALSE(sut.append(4));
    REQUIRE_FALSE(sut.extend({5, 6}));
    CHECK(sut.snapshot() == std::vector<int32_t>{1, 2, 3, 4, 5, 6});
    CHECK(sut.get(0) == int32_t{1});
    CHECK(sut.get(-1) == int32_t{6});
    REQUIRE_FALSE(sut.set(1, 20));
    REQUIRE_FALSE(sut.insert(0, 0));
    REQUIRE_FALSE(sut.insert(100, 7)); // clamped, as list.insert does
    CHECK(sut.snapshot() == std::vector<int32_t>{0, 1, 20, 3, 4, 5, 6, 7});
    CHECK(sut.pop() == int32_t{7});
    CHECK(sut.pop(0) == int32_t{0});
    REQUIRE_FALSE(sut.remove(20));
    CHECK(sut.index(4) == int64_t{2});
    CHECK(sut.len() == int64_t{5});
    CHECK(sut.slice(1, -1) == std::vector<int32_t>{3, 4, 5});
    CHECK(sut.slice(-2, 100) == std::vector<int32_t>{5, 6});
    CHECK(sut.slice(3, 1) == std::vector<int32_t>{});
    auto out = sut.get(5);
    REQUIRE_FALSE(out);
    CHECK(troupe::is(out.error(), troupe::ipc::errc::index_error));
    CHECK(troupe::describe(out.error())
          == "troupe.index_error: get: index 5 out of range for a list of 5");
    CHECK(troupe::is(sut.set(-6, 0), troupe::ipc::errc::index_error));
    CHECK(troupe::is(sut.remove(42), troupe::ipc::errc::value_error));
    CHECK(troupe::is(sut.index(42).error(), troupe::ipc::errc::value_error));
    // Slices with a step and open ends: l[::2], l[::-1], l[3:0:-2], l[-100:2].
    auto open = troupe::ipc::open_end;
    CHECK(sut.snapshot() == std::vector<int32_t>{1, 3, 4, 5, 6});
    CHECK(sut.slice(open, open, 2) == std::vector<int32_t>{1, 4, 6});
    CHECK(sut.slice(open, open, -1) == std::vector<int32_t>{6, 5, 4, 3, 1});
    CHECK(sut.slice(3, 0, -2) == std::vector<int32_t>{5, 3});
    CHECK(sut.slice(-100, 2) == std::vector<int32_t>{1, 3});
    CHECK(sut.slice(open, -100, -1) == std::vector<int32_t>{6, 5, 4, 3, 1});
    CHECK(troupe::is(sut.slice(0, 1, 0).error(), troupe::ipc::errc::value_error));
    // count, in, del, reverse, sort.
    REQUIRE_FALSE(sut.extend({3, 3}));
    CHECK(sut.count(3) == int64_t{3});
    CHECK(sut.count(42) == int64_t{0});
    CHECK(sut.contains(6) == true);
    CHECK(sut.contains(42) == false);
    REQUIRE_FALSE(sut.erase(-1));
    CHECK(troupe::is(sut.erase(10), troupe::ipc::errc::index_error));
    REQUIRE_FALSE(sut.reverse());
    CHECK(sut.snapshot() == std::vector<int32_t>{3, 6, 5, 4, 3, 1});
    REQUIRE_FALSE(sut.sort());
    CHECK(sut.snapshot() == std::vector<int32_t>{1, 3, 3, 4, 5, 6});
    auto empty = slist::make(f.sys);
    CHECK(troupe::describe(empty.pop().error()) == "troupe.index_error: pop from empty list");
  }
}
