// Tests of the single-writer ring alone (ipc/src/transport/ring.hpp): no
// CAF, no frames, no second process; the ring lives in this process's heap.

#include "transport/ring.hpp"

#include <doctest/doctest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

using troupe::ipc::detail::pad_magic;
using troupe::ipc::detail::ring_header;
using troupe::ipc::detail::ring_reader;
using troupe::ipc::detail::ring_view;
using troupe::ipc::detail::ring_writer;

namespace {

constexpr uint64_t capacity = 1024;

/// A ring of `capacity` bytes, zeroed like fresh shared memory.
struct heap_ring {
  ring_header hdr{};
  alignas(64) unsigned char data[capacity] = {};

  ring_view view() {
    return ring_view{&hdr, data, capacity};
  }

  /// Starts both cursors at `at` (monotonic byte counts, as after traffic).
  void start_at(uint64_t at) {
    hdr.tail.store(at);
    hdr.head.store(at);
  }
};

std::string text(size_t n, char c) {
  return std::string(n, c);
}

/// Puts `s` as one record; false if it does not fit.
bool put(heap_ring& r, const std::string& s) {
  ring_writer out{r.view()};
  return out.try_put(s.data(), s.size(), nullptr, 0);
}

/// Reads every published record (each `len` bytes long) and releases them.
std::vector<std::string> take_all(heap_ring& r, size_t len) {
  std::vector<std::string> res;
  ring_reader in{r.view(), 8};
  while (in.next() == ring_reader::status::record) {
    REQUIRE(in.available() >= len);
    res.emplace_back(reinterpret_cast<const char*>(in.data()), len);
    in.consume(len);
  }
  in.release();
  return res;
}

} // namespace

TEST_SUITE("ipc.ring") {
  TEST_CASE("records come out whole and in the order they were put") {
    auto sut = std::make_unique<heap_ring>();
    REQUIRE(put(*sut, text(40, 'a')));
    REQUIRE(put(*sut, text(40, 'b')));
    ring_writer out{sut->view()};
    std::string head = text(16, 'c');
    std::string tail = text(24, 'd');
    REQUIRE(out.try_put(head.data(), head.size(), tail.data(), tail.size()));
    CHECK(take_all(*sut, 40)
          == std::vector<std::string>{text(40, 'a'), text(40, 'b'), head + tail});
    CHECK(sut->hdr.head.load() == sut->hdr.tail.load());
  }

  TEST_CASE("a record that would cross the ring's end starts over behind a pad") {
    auto sut = std::make_unique<heap_ring>();
    sut->start_at(capacity * 3 - 64); // 64 bytes left before the end
    ring_writer out{sut->view()};
    CHECK(out.bytes_needed(100) == 64 + 104);
    REQUIRE(put(*sut, text(100, 'x')));
    uint32_t magic = 0;
    std::memcpy(&magic, sut->data + capacity - 64, sizeof(magic));
    CHECK(magic == pad_magic);
    CHECK(std::memcmp(sut->data, text(100, 'x').data(), 100) == 0);
    CHECK(take_all(*sut, 100) == std::vector<std::string>{text(100, 'x')});
  }

  TEST_CASE("slack shorter than the smallest record is skipped as a pad") {
    auto sut = std::make_unique<heap_ring>();
    sut->start_at(capacity - 8); // one word left before the end
    REQUIRE(put(*sut, text(48, 'y')));
    std::memset(sut->data + capacity - 8, 0x5a, 8); // whatever the slack holds
    ring_reader in{sut->view(), 40};
    REQUIRE(in.next() == ring_reader::status::record);
    CHECK(in.data() == sut->data);
  }

  TEST_CASE("a full ring refuses a record until the reader releases space") {
    auto sut = std::make_unique<heap_ring>();
    int put_count = 0;
    while (put(*sut, text(120, 'f')))
      ++put_count;
    CHECK(put_count == static_cast<int>(capacity / 120));
    CHECK_FALSE(ring_writer{sut->view()}.has_space(128));
    {
      ring_reader in{sut->view(), 8};
      REQUIRE(in.next() == ring_reader::status::record);
      in.consume(120);
      CHECK(in.unreleased() == 120);
      // Consumed but not released: the writer cannot have the space yet.
      CHECK_FALSE(put(*sut, text(120, 'g')));
      in.release();
    }
    CHECK(put(*sut, text(120, 'g')));
  }

  TEST_CASE(
    "a record reserved but never published is invisible, and the next writer reuses its space") {
    auto sut = std::make_unique<heap_ring>();
    auto* first = ring_writer{sut->view()}.reserve(64);
    REQUIRE(first != nullptr);
    std::memset(first, 'h', 64); // a writer killed before it published
    ring_reader in{sut->view(), 8};
    CHECK(in.next() == ring_reader::status::empty);
    CHECK_FALSE(ring_reader::has_input(sut->view()));
    ring_writer next{sut->view()};
    CHECK(next.reserve(64) == first);
    REQUIRE(put(*sut, text(64, 'i')));
    CHECK(take_all(*sut, 64) == std::vector<std::string>{text(64, 'i')});
  }

  TEST_CASE("cursors further apart than the ring is large are corrupt") {
    auto sut = std::make_unique<heap_ring>();
    sut->hdr.tail.store(capacity + 8);
    ring_reader in{sut->view(), 8};
    CHECK(in.next() == ring_reader::status::corrupt);
    CHECK(std::string{in.why()} == "the ring's cursors are inconsistent");
    in.drop_all();
    in.release();
    CHECK(sut->hdr.head.load() == capacity + 8);
  }

  TEST_CASE("a pad that runs past the published data is corrupt") {
    auto sut = std::make_unique<heap_ring>();
    sut->start_at(capacity - 64);
    std::memcpy(sut->data + capacity - 64, &pad_magic, sizeof(pad_magic));
    sut->hdr.tail.store(capacity - 32); // the pad claims 64 bytes, 32 are published
    ring_reader in{sut->view(), 8};
    CHECK(in.next() == ring_reader::status::corrupt);
    CHECK(std::string{in.why()} == "a record crosses the ring's end");
  }

  TEST_CASE("releasing space tells a writer that waits for it") {
    auto sut = std::make_unique<heap_ring>();
    REQUIRE(put(*sut, text(64, 'w')));
    sut->hdr.space_waiting.store(1);
    auto seq = sut->hdr.space_seq.load();
    take_all(*sut, 64);
    CHECK(sut->hdr.space_waiting.load() == 0);
    CHECK(sut->hdr.space_seq.load() == seq + 1);
  }
}
