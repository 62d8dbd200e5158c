// Tests of the message decoder (ipc/src/transport/message_decoder.hpp): a
// message serialized as a node sends it comes back as the same message,
// typed for the common shapes and through CAF's `caf::message` otherwise.

#include "messages.hpp"
#include "transport/message_decoder.hpp"

#include <caf/all.hpp>
#include <doctest/doctest.h>

#include <string>
#include <vector>

using troupe::ipc::detail::message_decoder;
using troupe::test::ipc::config;
using troupe::test::ipc::point;

namespace {

struct fixture {
  config cfg{true};
  caf::actor_system sys{cfg};
  message_decoder sut{sys};

  /// `msg` as it stands in a frame (after the sender and stages).
  std::vector<char> wire(const caf::message& msg) {
    std::vector<char> buf;
    caf::binary_serializer sink{sys, buf};
    auto copy = msg;
    REQUIRE_FALSE(sink(copy));
    return buf;
  }

  /// Decodes `bytes`; `left` gets what the decoder did not read.
  caf::mailbox_element_ptr decode(const std::vector<char>& bytes, caf::error& err,
                                  size_t* left = nullptr) {
    caf::binary_deserializer src{sys, bytes};
    caf::strong_actor_ptr sender;
    caf::mailbox_element::forwarding_stack stages;
    auto res = sut.decode(src, sender, caf::make_message_id(), stages, err);
    if (left != nullptr)
      *left = src.remaining();
    return res;
  }
};

template <class... Ts>
bool is_typed(const caf::mailbox_element_ptr& x) {
  return dynamic_cast<caf::mailbox_element_vals<Ts...>*>(x.get()) != nullptr;
}

} // namespace

TEST_SUITE("ipc.message_decoder") {
  TEST_CASE("a message of one built-in value comes back typed and equal") {
    fixture f;
    caf::error err;
    auto str = f.decode(f.wire(caf::make_message(std::string(64, 'x'))), err);
    REQUIRE_FALSE(err);
    CHECK(is_typed<std::string>(str));
    CHECK(str->content().get_as<std::string>(0) == std::string(64, 'x'));
    auto num = f.decode(f.wire(caf::make_message(int32_t{-7})), err);
    REQUIRE_FALSE(err);
    CHECK(is_typed<int32_t>(num));
    CHECK(num->content().get_as<int32_t>(0) == -7);
  }

  TEST_CASE("an atom and a built-in value come back typed and equal") {
    fixture f;
    caf::error err;
    auto x = f.decode(f.wire(caf::make_message(caf::atom("get"), uint64_t{42})), err);
    REQUIRE_FALSE(err);
    CHECK((is_typed<caf::atom_value, uint64_t>(x)));
    CHECK(x->content().get_as<caf::atom_value>(0) == caf::atom("get"));
    CHECK(x->content().get_as<uint64_t>(1) == 42u);
  }

  TEST_CASE("an error as a message comes back typed, with its context") {
    fixture f;
    caf::error err;
    auto sent = caf::make_error(caf::sec::request_timeout, "why");
    auto x = f.decode(f.wire(caf::make_message(sent)), err);
    REQUIRE_FALSE(err);
    CHECK(is_typed<caf::error>(x));
    CHECK(x->content().get_as<caf::error>(0) == sent);
  }

  TEST_CASE("other shapes come back through CAF's message, equal") {
    fixture f;
    caf::error err;
    auto user = f.decode(f.wire(caf::make_message(point{1, 2})), err);
    REQUIRE_FALSE(err);
    CHECK_FALSE(is_typed<point>(user));
    CHECK(user->content().get_as<point>(0).y == 2);
    auto three = f.decode(f.wire(caf::make_message(int32_t{1}, int32_t{2}, int32_t{3})), err);
    REQUIRE_FALSE(err);
    REQUIRE(three->content().size() == 3);
    CHECK(three->content().get_as<int32_t>(2) == 3);
    auto empty = f.decode(f.wire(caf::message{}), err);
    REQUIRE_FALSE(err);
    CHECK(empty->content().empty());
  }

  TEST_CASE("the decoder stops right after the message, wherever it decoded it") {
    fixture f;
    caf::error err;
    for (auto msg : {caf::make_message(std::string{"abc"}), caf::make_message(point{3, 4})}) {
      auto bytes = f.wire(msg);
      bytes.push_back('!'); // a stray byte: the caller rejects the frame
      size_t left = 0;
      REQUIRE(f.decode(bytes, err, &left));
      CHECK(left == 1);
    }
  }

  TEST_CASE("a truncated message is never taken for a whole one") {
    // Typed, it is an error. CAF's own path reads an empty message and
    // leaves the bytes, which the frame's reader rejects as stray.
    fixture f;
    caf::error err;
    auto typed = f.wire(caf::make_message(std::string(40, 'y')));
    typed.resize(typed.size() - 3);
    CHECK_FALSE(f.decode(typed, err));
    CHECK(err);
    auto other = f.wire(caf::make_message(point{5, 6}));
    other.resize(other.size() - 3);
    err = caf::none;
    size_t left = 0;
    auto res = f.decode(other, err, &left);
    CHECK((err || left != 0));
  }
}
