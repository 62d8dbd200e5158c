#pragma once

#include "troupe/ipc/node.hpp"

#include <caf/actor.hpp>
#include <caf/error.hpp>
#include <caf/fwd.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace troupe::ipc::testing {

/// Test and fuzzing hook: a node's frame reader, driven by hand from a byte
/// buffer.
///
/// The harness makes a group of two slots in this process's heap (no shared
/// memory, nothing in /dev/shm, no reader or watcher thread): slot 0 is a
/// node of `sys` run by the same engine a `node` runs, slot 1 a made-up peer
/// with a node id of its own. `feed` puts bytes into the ring from the peer
/// and runs the node's own reader code on the calling thread: the frame walk
/// with its bounds checks, the frame handlers with CAF's deserializer, chunk
/// reassembly, rejection and its counters. A fuzzer or a test thus exercises
/// exactly what a node does with what another process wrote, without a
/// second process or a wake-up.
///
/// What frames do stays real but contained: a message to `receiver_id`
/// reaches a sink actor (it answers a request with the request's content,
/// drops everything else and traps exits); control frames and answers that
/// the node writes back to the peer land in its ring to the peer, which
/// `take_output` empties. Every `feed` starts and ends by forgetting what the
/// node holds of the peer (proxies, half-assembled chunks), so one input
/// does not change how the next is read.
///
/// The real writer fills the other ring (`peer_actor`, `send_control`,
/// `take_output`): that is how valid frames of every kind are made.
///
/// Thread safety: one thread at a time. Destroy it before `sys`.
class decoder_harness {
public:
  /// The actor id that names the sink in frames (the same in every process).
  static constexpr uint64_t receiver_id = uint64_t{1} << 40;

  /// The capacity of each ring: a fed input longer than this is cut off.
  static constexpr uint64_t ring_bytes = 8192;

  /// The control frames a node writes.
  enum class control { announce, kill, link, unlink, corrupt };

  /// Makes the heap group and joins `sys` to it. Throws `std::runtime_error`
  /// if `sys` has no node id (see `troupe::ipc::configure`).
  explicit decoder_harness(caf::actor_system& sys, uint64_t max_message_bytes = uint64_t{1} << 20);
  ~decoder_harness();
  decoder_harness(const decoder_harness&) = delete;
  decoder_harness& operator=(const decoder_harness&) = delete;

  /// Puts `size` bytes (at most `ring_bytes`) into the ring from the peer,
  /// from ring offset `at` on (rounded down to 8, wrapping at the end), and
  /// has the node read them. Returns what the node's counters moved by:
  /// `frames_received` (frames read, rejected ones included) and
  /// `frames_rejected`.
  node_stats feed(const unsigned char* bytes, size_t size, uint64_t at = 0);

  /// `feed` for the bytes of a vector.
  node_stats feed(const std::vector<unsigned char>& bytes, uint64_t at = 0) {
    return feed(bytes.data(), bytes.size(), at);
  }

  /// Feeds a fuzzer input: two bytes (little endian) give the ring offset in
  /// units of 8, the rest are the ring's bytes.
  node_stats feed_input(const unsigned char* data, size_t size);

  /// A proxy of actor `aid` of the peer: what is sent to it, the node writes
  /// into its ring to the peer. Dies at the next `feed`.
  caf::actor peer_actor(uint64_t aid);

  /// Has the node write a control frame to the peer (`reason` goes with
  /// `control::kill`).
  void send_control(control kind, uint64_t receiver, uint64_t sender = 0,
                    const caf::error& reason = caf::error{});

  /// What the node wrote to the peer since the last call: the ring's bytes
  /// from offset `*at` on (set when not null), a pad included where the
  /// writer wrapped at the ring's end. Empties that ring.
  std::vector<unsigned char> take_output(uint64_t* at = nullptr);

  /// `take_output` as a fuzzer input (see `feed_input`).
  std::vector<unsigned char> take_output_as_input();

  /// The node's counters.
  node_stats stats() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace troupe::ipc::testing
