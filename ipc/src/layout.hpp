#pragma once

// The layout of a group's shared-memory segment and the lock-free rings in it.
// Internal: nothing here is installed.
//
// segment = [header][slots x max_nodes][names x max_names]
//           [ring headers x max_nodes^2][ring data x max_nodes^2]
//
// The part up to the ring data is small (a 64-node group: about 1.1 MiB) and
// reserved (fallocate) by the creator. The data of ring (w, r), and of
// (r, w) with it, is reserved when either node first writes to the other,
// and given back (a hole punched) when one of them is lost: what a group
// holds in /dev/shm grows with the pairs of nodes that talk, and running out
// is an error at the send that needed the memory, never a SIGBUS later.
//
// A slot's rings outlive its node: nobody resets them when the slot is
// claimed anew, because a node that has not yet seen the old node go may
// still write to it or read from it. Every frame names the incarnation that
// wrote it and the one it is for (`frame_header::from_epoch`, `to_epoch`),
// so a reader skips frames meant for an earlier node in its own slot and
// stops at frames of a later node in the writer's slot; a new node starts
// reading its rings at their tails. Only the hole punching needs the slot
// to stay unclaimed meanwhile (`node_slot::releasing`).
//
// Every field that two processes touch concurrently is an address-free
// `std::atomic` of 32 or 64 bits. No lock lives in the segment, so a process
// killed at any instruction leaves nothing that another process waits on.
// Ring (w, r) carries frames from the node in slot w to the node in slot r:
// one writer process, one reader process. Inside the writer process, threads
// take turns with a process-local mutex; a frame becomes visible only when
// the writer publishes `tail` after writing it whole, so a writer that dies
// half-way through a frame leaves nothing half-visible behind.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace troupe::ipc::detail {

static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::atomic<int32_t>::is_always_lock_free);

/// "TROUPE01" as a little-endian word.
constexpr uint64_t segment_magic = 0x313045'50554f5254ull;
constexpr uint32_t layout_version = 5;

constexpr size_t group_name_max = 48;
constexpr size_t actor_name_max = 64;
constexpr size_t node_id_max = 96;
constexpr size_t key_bytes = 16;

struct alignas(64) segment_header {
  uint64_t magic;
  uint32_t version;
  uint32_t max_nodes;
  uint64_t ring_bytes;
  uint32_t max_names;
  uint32_t reserved0;
  uint64_t total_bytes;
  /// The group's limit on one message (serialized), set by the creator.
  uint64_t max_message_bytes;
  uint8_t key[key_bytes];
  int32_t creator_pid;
  uint32_t reserved1;
  uint64_t created_unix_ms;
  char group[group_name_max + 1];
  /// Set to 1 (release) once everything above is written.
  std::atomic<uint32_t> ready;
  /// Bumped (and woken) whenever a name is published or removed.
  std::atomic<uint32_t> names_seq;
  /// Bumped whenever a node joins, leaves or is found dead: readers look at
  /// the slot table again when it moved.
  std::atomic<uint32_t> members_seq;
};

/// Slot states. A slot goes free -> claiming -> alive -> (free | dead), and
/// from free or dead to claiming once it has rested for a grace period; the
/// claim bumps the epoch.
enum slot_state : uint32_t {
  slot_free = 0,
  slot_claiming = 1,
  slot_alive = 2,
  slot_dead = 3,
};

/// A slot's tenure, one word: the epoch (high 32 bits), the pid of the
/// node claiming it while its state is `slot_claiming` (else 0), and the
/// state (low 2 bits).
constexpr uint64_t tenure_of(uint32_t state, uint32_t epoch, int32_t claimer = 0) noexcept {
  return uint64_t{epoch} << 32 | uint64_t{static_cast<uint32_t>(claimer)} << 2 | state;
}
constexpr uint32_t state_of(uint64_t tenure) noexcept {
  return static_cast<uint32_t>(tenure & 3);
}
constexpr uint32_t epoch_of(uint64_t tenure) noexcept {
  return static_cast<uint32_t>(tenure >> 32);
}
constexpr int32_t claimer_of(uint64_t tenure) noexcept {
  return static_cast<int32_t>((tenure & 0xffff'ffff) >> 2);
}

struct alignas(64) node_slot {
  /// The state (`slot_state`), the epoch, which every claim bumps (a peer
  /// is (slot, epoch), never just the slot), and the claimer's pid: see
  /// `tenure_of`. One word, so that a node ends only the tenure it looked at
  /// (a node leaving, or one that found the slot's node dead): by the time
  /// it does, the slot may have rested and passed to a new node, alive
  /// again, and a state alone would let the old tenure's end free or kill
  /// the new node's. The claimer's pid is in it from the claim on, so that a
  /// claim is abandoned exactly when its claimer is gone.
  std::atomic<uint64_t> tenure;
  std::atomic<int32_t> pid;
  uint32_t node_id_len;
  /// Start time of `pid` in clock ticks since boot (/proc/PID/stat, field
  /// 22), so a recycled pid is never taken for the node.
  std::atomic<uint64_t> start_ticks;
  std::atomic<uint64_t> joined_unix_ms;
  std::atomic<uint64_t> dead_since_ms;
  /// CAF's node_id of the node, serialized.
  uint8_t node_id[node_id_max];
  std::atomic<uint64_t> frames_sent;
  std::atomic<uint64_t> frames_received;
  std::atomic<uint64_t> frames_rejected;
  /// The actor id of the node's spawn server (`node::spawn_in`), set
  /// before the slot is alive.
  std::atomic<uint64_t> spawn_server;
  /// How many nodes are giving back (punching) the rings they shared with
  /// this slot's node. A claim does not take the slot while it is not 0,
  /// and a node punches only while the slot is not being claimed (both
  /// sides look after they announce themselves, seq_cst).
  std::atomic<uint32_t> releasing;
  /// Futex word the node's reader parks on; writers bump it to wake it.
  alignas(64) std::atomic<uint32_t> doorbell;
  /// 1 while the reader is parked (or about to park) on `doorbell`.
  std::atomic<uint32_t> parked;

  uint32_t state() const noexcept {
    return state_of(tenure.load(std::memory_order_acquire));
  }
  uint32_t epoch() const noexcept {
    return epoch_of(tenure.load(std::memory_order_acquire));
  }
  /// Moves the slot from tenure `from` to `to`; false if it is no longer
  /// in `from`.
  bool change(uint64_t from, uint64_t to) noexcept {
    return tenure.compare_exchange_strong(from, to);
  }
};

enum name_state : uint32_t {
  name_free = 0,
  name_writing = 1,
  name_live = 2,
};

/// The first character of a name entry that says its node has subscribers
/// to a process group (see groups.hpp); no published name holds it.
constexpr char subscription_mark = '\x01';

struct alignas(64) name_entry {
  std::atomic<uint32_t> state;
  uint32_t slot;
  uint32_t epoch;
  uint32_t reserved;
  uint64_t actor;
  char name[actor_name_max + 1];
};

struct alignas(64) ring_header {
  /// Bytes ever written (monotonic); owned by the writer.
  alignas(64) std::atomic<uint64_t> tail;
  /// Bytes ever consumed (monotonic); owned by the reader.
  alignas(64) std::atomic<uint64_t> head;
  /// Futex word a writer waiting for space parks on.
  std::atomic<uint32_t> space_seq;
  /// 1 while a writer waits for space.
  std::atomic<uint32_t> space_waiting;
};

constexpr size_t ring_header_bytes = 256;
static_assert(sizeof(ring_header) <= ring_header_bytes);

// -- frames ------------------------------------------------------------------

/// "TRPF" as a little-endian word.
constexpr uint32_t frame_magic = 0x46505254u;
/// Marks the unused end of a ring before it wraps.
constexpr uint32_t pad_magic = 0x44415054u;
constexpr uint16_t frame_version = 2;

enum class frame_kind : uint16_t {
  /// A message: receiver, message id and sender id in the header; payload =
  /// CAF serialization of (sender, stages, message).
  message = 1,
  /// The writer holds a proxy of actor `receiver` (of the reader's node) and
  /// wants to hear when it terminates.
  announce = 2,
  /// Actor `receiver` of the writer's node terminated; payload = the reason.
  kill = 3,
  /// Link actor `receiver` (reader's node) with `sender` (writer's node).
  link = 4,
  /// Remove that link again.
  unlink = 5,
  /// A piece of a frame too large for one record: `receiver` holds the whole
  /// frame's size, `mid` the piece's offset.
  chunk = 6,
  /// The writer found the ring from the reader corrupted and dropped what
  /// was in it: requests the reader's node sent may be lost.
  corrupt = 7,
};

/// Frame flag of a message: the sender is actor `sender` of the writer's node,
/// and the payload holds only (stages, message).
constexpr uint32_t flag_local_sender = 1;

struct frame_header {
  uint32_t magic;
  uint16_t version;
  uint16_t kind;
  uint32_t length; // payload bytes after the header
  uint32_t flags;
  uint64_t receiver;
  uint64_t mid;
  uint64_t sender;
  /// The epochs of the writer's slot and of the reader's slot: the nodes
  /// the frame is from and for (the writer sets them as it puts the record).
  uint32_t from_epoch;
  uint32_t to_epoch;
};

static_assert(sizeof(frame_header) == 48);
static_assert(offsetof(frame_header, to_epoch) == offsetof(frame_header, from_epoch) + 4);
static_assert(std::is_trivially_copyable_v<frame_header>);

constexpr size_t align8(size_t n) noexcept {
  return (n + 7) & ~size_t{7};
}

// -- geometry ----------------------------------------------------------------

struct geometry {
  uint32_t max_nodes;
  uint64_t ring_bytes;
  uint32_t max_names;

  static constexpr size_t header_bytes() noexcept {
    return (sizeof(segment_header) + 63) & ~size_t{63};
  }
  size_t slots_offset() const noexcept {
    return header_bytes();
  }
  size_t names_offset() const noexcept {
    return slots_offset() + sizeof(node_slot) * max_nodes;
  }
  size_t ring_headers_offset() const noexcept {
    return page_up(names_offset() + sizeof(name_entry) * max_names);
  }
  /// Where the ring data begin; everything before is reserved at creation.
  size_t rings_offset() const noexcept {
    return page_up(ring_headers_offset() + ring_header_bytes * max_nodes * max_nodes);
  }
  /// Where the data of ring (writer, reader) begin (`ring_bytes` of them).
  size_t ring_data_offset(uint32_t writer, uint32_t reader) const noexcept {
    return rings_offset() + ring_bytes * (size_t{writer} * max_nodes + reader);
  }
  size_t total_bytes() const noexcept {
    return rings_offset() + ring_bytes * max_nodes * max_nodes;
  }

private:
  static constexpr size_t page_up(size_t n) noexcept {
    return (n + 4095) & ~size_t{4095};
  }
};

/// A view of one ring: header plus `capacity` bytes of data (a power of two).
struct ring_view {
  ring_header* hdr = nullptr;
  unsigned char* data = nullptr;
  uint64_t capacity = 0;

  explicit operator bool() const noexcept {
    return hdr != nullptr;
  }
};

/// A mapped segment: typed accessors over raw memory.
struct segment_view {
  unsigned char* base = nullptr;
  geometry geo{};

  segment_header* header() const noexcept {
    return reinterpret_cast<segment_header*>(base);
  }
  node_slot* slot(uint32_t i) const noexcept {
    return reinterpret_cast<node_slot*>(base + geo.slots_offset()) + i;
  }
  name_entry* name(uint32_t i) const noexcept {
    return reinterpret_cast<name_entry*>(base + geo.names_offset()) + i;
  }
  ring_view ring(uint32_t writer, uint32_t reader) const noexcept {
    auto index = size_t{writer} * geo.max_nodes + reader;
    auto* hdr = base + geo.ring_headers_offset() + ring_header_bytes * index;
    return ring_view{reinterpret_cast<ring_header*>(hdr),
                     base + geo.ring_data_offset(writer, reader), geo.ring_bytes};
  }
};

} // namespace troupe::ipc::detail
