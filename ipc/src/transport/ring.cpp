#include "ring.hpp"

#include "futex.hpp"

#include <algorithm>
#include <climits>
#include <cstring>

namespace troupe::ipc::detail {

// -- writer ---------------------------------------------------------------------

uint64_t ring_writer::bytes_needed(size_t n) const noexcept {
  auto cap = ring_.capacity;
  auto tail = ring_.hdr->tail.load(std::memory_order_relaxed);
  auto contiguous = cap - (tail & (cap - 1));
  auto rec = align8(n);
  return rec + (contiguous < rec ? contiguous : 0);
}

bool ring_writer::has_space(uint64_t need) const noexcept {
  auto tail = ring_.hdr->tail.load(std::memory_order_relaxed);
  return ring_.capacity - (tail - ring_.hdr->head.load(std::memory_order_acquire)) >= need;
}

unsigned char* ring_writer::reserve(size_t n) noexcept {
  auto cap = ring_.capacity;
  auto tail = ring_.hdr->tail.load(std::memory_order_relaxed);
  auto head = ring_.hdr->head.load(std::memory_order_acquire);
  auto idx = tail & (cap - 1);
  auto contiguous = cap - idx;
  auto rec = align8(n);
  auto skip = contiguous < rec ? contiguous : 0;
  if (cap - (tail - head) < rec + skip)
    return nullptr;
  if (skip != 0) {
    // The reader skips to the start: a pad says so (less than a word of
    // slack says it by being shorter than any record).
    if (skip >= sizeof(uint32_t))
      std::memcpy(ring_.data + idx, &pad_magic, sizeof(uint32_t));
    tail += skip;
    idx = 0;
  }
  reserved_tail_ = tail + rec;
  return ring_.data + idx;
}

void ring_writer::publish() noexcept {
  ring_.hdr->tail.store(reserved_tail_, std::memory_order_release);
}

bool ring_writer::try_put(const void* a, size_t an, const void* b, size_t bn) noexcept {
  auto* at = reserve(an + bn);
  if (at == nullptr)
    return false;
  std::memcpy(at, a, an);
  if (bn != 0)
    std::memcpy(at + an, b, bn);
  publish();
  return true;
}

// -- reader ---------------------------------------------------------------------

ring_reader::ring_reader(ring_view ring, uint64_t min_record) noexcept
  : ring_(ring), head_(ring.hdr->head.load(std::memory_order_relaxed)),
    tail_(ring.hdr->tail.load(std::memory_order_acquire)), released_(head_),
    min_record_(std::max<uint64_t>(min_record, 8)) {}

ring_reader::status ring_reader::next() noexcept {
  auto cap = ring_.capacity;
  while (head_ != tail_) {
    auto avail = tail_ - head_;
    if (avail > cap) {
      why_ = "the ring's cursors are inconsistent";
      return status::corrupt;
    }
    auto idx = head_ & (cap - 1);
    auto contiguous = cap - idx;
    bool pad = contiguous < min_record_;
    if (!pad) {
      uint32_t magic = 0;
      std::memcpy(&magic, ring_.data + idx, sizeof(magic));
      pad = magic == pad_magic;
    }
    if (!pad) {
      available_ = std::min(avail, contiguous);
      return status::record;
    }
    if (avail < contiguous) {
      why_ = "a record crosses the ring's end";
      return status::corrupt;
    }
    head_ += contiguous;
  }
  return status::empty;
}

void ring_reader::release() noexcept {
  auto* hdr = ring_.hdr;
  hdr->head.store(head_, std::memory_order_release);
  released_ = head_;
  // Pairs with the fence of a writer between setting `space_waiting` and
  // looking at `head` again (`core::wait_for_space`).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (hdr->space_waiting.load(std::memory_order_relaxed) != 0) {
    hdr->space_waiting.store(0, std::memory_order_relaxed);
    hdr->space_seq.fetch_add(1, std::memory_order_release);
    futex_wake(&hdr->space_seq, INT_MAX);
  }
}

} // namespace troupe::ipc::detail
