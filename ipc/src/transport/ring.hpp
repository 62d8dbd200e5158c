#pragma once

// One single-writer, single-reader ring of records in shared memory: the
// writer's side (reserve, wrap, publish) and the reader's side (walk, skip
// pads, release). No CAF and no frames in here: a record is bytes whose first
// four are never `pad_magic`; what they mean is `inbound`'s business.
//
// A record starts on an 8-byte boundary and never crosses the ring's end: a
// writer that reaches the end with a record that does not fit puts a pad
// there (`pad_magic`, or less than a word of slack) and starts again at 0.
// The reader sees a record only once the writer publishes `tail` after
// writing it whole, so a writer killed between reserving and publishing
// leaves nothing visible. Within its process, writers of one ring take turns
// with a lock of their own (the rings have none).

#include "../layout.hpp"

#include <cstddef>
#include <cstdint>

namespace troupe::ipc::detail {

/// The writer's side of a ring. Cheap to make (it caches nothing the other
/// side changes); one thread at a time.
class ring_writer {
public:
  explicit ring_writer(ring_view ring) noexcept : ring_(ring) {}

  /// The largest record the ring takes (a quarter of it: a frame never waits
  /// for more than that much space).
  uint64_t max_record() const noexcept {
    return ring_.capacity / 4;
  }

  /// Bytes that putting a record of `n` bytes takes at the current tail: the
  /// record rounded up to 8, plus the pad before it where it would wrap.
  uint64_t bytes_needed(size_t n) const noexcept;

  /// Whether `need` bytes are free now.
  bool has_space(uint64_t need) const noexcept;

  /// Space for a record of `n` bytes (at most `max_record`) at the current
  /// tail, pad written where it wraps, or null if it does not fit now. Not
  /// visible to the reader until `publish`.
  unsigned char* reserve(size_t n) noexcept;

  /// Makes the reserved record visible to the reader.
  void publish() noexcept;

  /// `reserve`, copy `a` then `b` into it, `publish`; false (and nothing
  /// written) if the record does not fit now.
  bool try_put(const void* a, size_t an, const void* b, size_t bn) noexcept;

private:
  ring_view ring_;
  uint64_t reserved_tail_ = 0; // the tail `publish` stores
};

/// The reader's side of a ring: walks the published records from `head`,
/// and hands their space back to the writer with `release`.
class ring_reader {
public:
  /// Reads `ring` from its current head to its current tail. Slack at the
  /// ring's end shorter than `min_record` is a pad whatever it holds (a
  /// writer puts no magic into less than a word).
  ring_reader(ring_view ring, uint64_t min_record) noexcept;

  /// What `next` found.
  enum class status {
    /// A record: `data()` and `available()` (every byte up to the ring's end
    /// or the tail, whichever is first; the record's own length is in it).
    record,
    /// Nothing more is published.
    empty,
    /// The cursors or a pad are inconsistent: `why()` says how. The reader
    /// should drop the rest (`drop_all`).
    corrupt,
  };

  /// Moves to the next record (skipping pads).
  status next() noexcept;

  /// The current record's first byte.
  const unsigned char* data() const noexcept {
    return ring_.data + (head_ & (ring_.capacity - 1));
  }

  /// Bytes readable at `data()` without wrapping or passing the tail.
  uint64_t available() const noexcept {
    return available_;
  }

  /// Why `next` said `corrupt`.
  const char* why() const noexcept {
    return why_;
  }

  /// Done with the current record, which took `bytes` (rounded up to 8).
  void consume(uint64_t bytes) noexcept {
    head_ += (bytes + 7) & ~uint64_t{7};
  }

  /// Skips everything published so far.
  void drop_all() noexcept {
    head_ = tail_;
  }

  /// Bytes consumed since the last `release`.
  uint64_t unreleased() const noexcept {
    return head_ - released_;
  }

  /// Hands what was consumed back to the writer, and wakes a writer that
  /// waits for space (`ring_header::space_waiting`).
  void release() noexcept;

  /// Whether the writer published anything past `head` (a cheap look).
  static bool has_input(const ring_view& ring) noexcept {
    return ring.hdr->tail.load(std::memory_order_acquire)
           != ring.hdr->head.load(std::memory_order_relaxed);
  }

private:
  ring_view ring_;
  uint64_t head_;
  uint64_t tail_;
  uint64_t released_;
  uint64_t min_record_;
  uint64_t available_ = 0;
  const char* why_ = "";
};

} // namespace troupe::ipc::detail
