// Tests of error.hpp: troupe::ipc's codes share the troupe category with the
// actors layer's, apart by number, and print alike.

#include "troupe/ipc/error.hpp"

#include <doctest/doctest.h>

#include <set>

using troupe::ipc::errc;

namespace {

const errc every_code[] = {
  errc::message_too_large, errc::group_running,  errc::no_such_group, errc::bad_key,
  errc::bad_segment,       errc::group_full,     errc::name_taken,    errc::name_not_found,
  errc::spawn_failed,      errc::bad_frame,      errc::key_error,     errc::index_error,
  errc::value_error,       errc::type_error,     errc::empty,         errc::broken_barrier,
  errc::no_shared_memory,  errc::resource_limit,
};

} // namespace

TEST_SUITE("ipc.error") {

  TEST_CASE("every code has its own name and prints as a troupe error") {
    std::set<std::string> names;
    for (auto code : every_code) {
      auto name = troupe::ipc::to_string(code);
      CHECK(name.find("errc(") == std::string::npos);
      CHECK(names.insert(name).second);
      CHECK(troupe::describe(code) == "troupe." + name);
    }
  }

  TEST_CASE("the codes start past the actors layer's, so no code means two things") {
    for (auto code : every_code) {
      auto err = troupe::ipc::make_error(code);
      CHECK(err.category() == troupe::error_category);
      CHECK(err.code() >= 64);
      CHECK(troupe::is(err, code));
      CHECK_FALSE(troupe::is(err, troupe::errc::timeout));
    }
    CHECK_FALSE(troupe::is(troupe::make_error(troupe::errc::timeout), errc::message_too_large));
  }

  TEST_CASE("an ipc error converts from its code and keeps its context") {
    caf::error sut = errc::bad_key;
    CHECK(troupe::is(sut, errc::bad_key));
    CHECK_FALSE(troupe::is(caf::error{}, errc::bad_key));
    auto with_what = troupe::ipc::make_error(errc::key_error, "'apples'");
    CHECK(troupe::describe(with_what) == "troupe.key_error: 'apples'");
  }

  TEST_CASE("a code no layer defines prints by number") {
    caf::error unknown{uint8_t{200}, troupe::error_category};
    CHECK(troupe::describe(unknown) == "troupe.errc(200)");
  }

} // TEST_SUITE
