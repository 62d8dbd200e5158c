// Tests of managed_array.hpp: a fixed-length array with Python's indices and errors.

#include "manager_fixture.hpp"
#include "troupe/ipc/managed_array.hpp"

#include <string>
#include <vector>

using namespace troupe::test::ipc;

TEST_SUITE("ipc.managed_array") {

  TEST_CASE("a managed array answers every operation with Python's indices and errors") {
    manager_fixture f{"array"};
    auto zeros = sarray::make(f.sys, 3);
    CHECK(zeros.snapshot() == std::vector<int64_t>{0, 0, 0});
    auto filled = sarray::make(f.sys, 2, 7);
    CHECK(filled.snapshot() == std::vector<int64_t>{7, 7});
    CHECK(sarray::make(f.sys, 0).len() == int64_t{0});
    auto sut = sarray::make(f.sys, std::vector<int64_t>{1, 2, 3, 4, 5});
    CHECK(sut.len() == int64_t{5});
    CHECK(sut.get(0) == int64_t{1});
    CHECK(sut.get(-1) == int64_t{5});
    CHECK(sut.get(-5) == int64_t{1});
    REQUIRE_FALSE(sut.set(1, 20));
    REQUIRE_FALSE(sut.set(-1, 50));
    CHECK(sut.add(0, 9) == int64_t{10});
    CHECK(sut.add(-2, -4) == int64_t{0});
    CHECK(sut.snapshot() == std::vector<int64_t>{10, 20, 3, 0, 50});
    CHECK(sut.slice(1, -1) == std::vector<int64_t>{20, 3, 0});
    CHECK(sut.slice(-2, 100) == std::vector<int64_t>{0, 50});
    CHECK(sut.slice(3, 1) == std::vector<int64_t>{});
    auto out = sut.get(5);
    REQUIRE_FALSE(out);
    CHECK(troupe::is(out.error(), troupe::ipc::errc::index_error));
    CHECK(troupe::describe(out.error())
          == "troupe.index_error: get: index 5 out of range for an array of 5");
    CHECK(troupe::is(sut.get(-6).error(), troupe::ipc::errc::index_error));
    CHECK(troupe::is(sut.set(5, 0), troupe::ipc::errc::index_error));
    CHECK(troupe::describe(sut.add(-6, 1).error())
          == "troupe.index_error: add: index -6 out of range for an array of 5");
    // The failed calls changed nothing, and the length is fixed.
    CHECK(sut.snapshot() == std::vector<int64_t>{10, 20, 3, 0, 50});
    auto doubles = managed_array<double>::make(f.sys, {0.5, 1.5});
    CHECK(doubles.add(1, 0.25) == 1.75);
    auto texts = managed_array<std::string>::make(f.sys, 2, "x");
    REQUIRE_FALSE(texts.set(0, "y"));
    CHECK(texts.snapshot() == std::vector<std::string>{"y", "x"});
    // A handle of another element type than the owner's.
    auto wrong = managed_array<double>{sut.handle()};
    CHECK(troupe::is(wrong.set(0, 1.5), troupe::ipc::errc::type_error));
    CHECK(troupe::is(wrong.add(0, 1.5).error(), troupe::ipc::errc::type_error));
    CHECK(sut.get(0) == int64_t{10});
    REQUIRE_FALSE(sut.stop());
    CHECK(troupe::is(sut.len().error(), errc::owner_down));
  }
}
