// Tests of managed_value.hpp: get, set, compare-and-set and add, and handles of the wrong type.

#include "manager_fixture.hpp"
#include "troupe/ipc/managed_value.hpp"

#include <string>

using namespace troupe::test::ipc;

namespace {

/// Whether `x.add(delta)` compiles for a `managed_value` `V`.
template <class V, class = void>
constexpr bool has_add = false;
template <class V>
constexpr bool has_add<
  V, std::void_t<decltype(std::declval<V&>().add(std::declval<typename V::value_type>()))>> = true;

// `add` exists where it can succeed, and only there: `bool` has no `+=` that
// a counter wants, so `managed_value<bool>::add` is a compile error, not a
// run-time `type_error`.
static_assert(has_add<managed_value<int64_t>>);
static_assert(has_add<managed_value<double>>);
static_assert(!has_add<managed_value<bool>>);
static_assert(!has_add<managed_value<std::string>>);

} // namespace

TEST_SUITE("ipc.managed_value") {

  TEST_CASE("a shared value gets, sets, compares-and-sets and adds") {
    manager_fixture f{"value"};
    auto sut = svalue::make(f.sys, 5);
    CHECK(sut.get() == int64_t{5});
    CHECK(sut.add(3) == int64_t{8});
    CHECK(sut.compare_and_set(7, 100) == false);
    CHECK(sut.compare_and_set(8, 100) == true);
    REQUIRE_FALSE(sut.set(-1));
    CHECK(sut.get() == int64_t{-1});
    auto text = managed_value<std::string>::make(f.sys, "a");
    CHECK(text.compare_and_set("a", "b") == true);
    CHECK(text.get() == std::string{"b"});
  }

  TEST_CASE("a handle of other element types than the owner's gets type_error") {
    manager_fixture f{"mismatch"};
    auto owner = svalue::make(f.sys, 1);
    auto sut = managed_value<std::string>{owner.handle()};
    auto err = sut.set("x");
    CHECK(troupe::is(err, troupe::ipc::errc::type_error));
    CHECK(owner.get() == int64_t{1});
  }
}
