// Tests of configure.hpp (what a process of a group needs from CAF) and
// managed_types.hpp (the element types that cross processes in managed
// containers).

#include "troupe/ipc/configure.hpp"
#include "troupe/ipc/error.hpp"
#include "troupe/ipc/managed_types.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace {

/// Writes `msg` with `sys`'s types and reads it back.
caf::expected<caf::message> round_trip(caf::actor_system& sys, const caf::message& msg) {
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  if (auto err = sink(const_cast<caf::message&>(msg)))
    return err;
  caf::message result;
  caf::binary_deserializer source{sys, buf};
  if (auto err = source(result))
    return err;
  return result;
}

} // namespace

TEST_SUITE("ipc.configure") {
  TEST_CASE("configure loads CAF's middleman, which gives the process its node id") {
    caf::actor_system_config cfg;
    troupe::ipc::configure(cfg);
    caf::actor_system sys{cfg};
    CHECK(sys.has_middleman());
    CHECK(sys.node() != caf::node_id{});
  }

  TEST_CASE("configure renders troupe's errors by name, those of troupe::ipc too") {
    caf::actor_system_config cfg;
    troupe::ipc::configure(cfg);
    caf::actor_system sys{cfg};
    auto text = sys.render(troupe::make_error(troupe::errc::peer_lost, "x"));
    CHECK(text.find("troupe.peer_lost") != std::string::npos);
    text = sys.render(troupe::ipc::make_error(troupe::ipc::errc::bad_key, "x"));
    CHECK(text.find("troupe.bad_key") != std::string::npos);
  }

  TEST_CASE("configure makes idle scheduler workers sleep until woken instead of polling") {
    caf::actor_system_config cfg;
    troupe::ipc::configure(cfg);
    CHECK(caf::get_or(cfg, "work-stealing.moderate-poll-attempts", size_t{99}) == 0);
  }
}

TEST_SUITE("ipc.managed_types") {
  TEST_CASE("add_managed_types lets the vectors of managed containers cross processes") {
    caf::actor_system_config cfg;
    troupe::ipc::configure(cfg);
    troupe::ipc::add_managed_types(cfg);
    caf::actor_system sys{cfg};
    auto ints = std::vector<int32_t>{1, -2, 3};
    auto longs = std::vector<int64_t>{int64_t{1} << 40};
    auto reals = std::vector<double>{0.5, -1.25};
    auto back = round_trip(sys, caf::make_message(ints, longs, reals));
    REQUIRE_MESSAGE(back, sys.render(back.error()));
    REQUIRE(
      (back->match_elements<std::vector<int32_t>, std::vector<int64_t>, std::vector<double>>()));
    CHECK(back->get_as<std::vector<int32_t>>(0) == ints);
    CHECK(back->get_as<std::vector<int64_t>>(1) == longs);
    CHECK(back->get_as<std::vector<double>>(2) == reals);
  }

  TEST_CASE("without add_managed_types such a vector cannot be written for another process") {
    caf::actor_system_config cfg;
    troupe::ipc::configure(cfg);
    caf::actor_system sys{cfg};
    // CAF 0.17 says so on stderr and writes a message that does not read
    // back as what was sent.
    auto back = round_trip(sys, caf::make_message(std::vector<int32_t>{1}));
    CHECK_FALSE((back && back->match_elements<std::vector<int32_t>>()));
  }
}
