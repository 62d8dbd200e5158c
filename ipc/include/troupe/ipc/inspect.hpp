#pragma once

/// @file
/// What `troupe ls` and `troupe clean` see: troupe's shared-memory objects on this host, read
/// without joining their groups.

// Looking at the groups of this host from outside: what `troupe ls` prints
// and what `troupe clean` removes. Read-only: nothing here joins a group or
// writes to a segment.

#include "troupe/ipc/error.hpp"

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace troupe::ipc {

/// One node slot of a group's segment, as read at one moment.
struct slot_info {
  /// Index of the slot (0 to `max_nodes - 1`).
  uint32_t slot = 0;
  /// `free`, `claiming`, `alive` or `dead`, as the slot says.
  std::string state;
  /// Bumped by every node that claimed the slot.
  uint32_t epoch = 0;
  /// The pid of the slot's (last) node; while the slot is being claimed,
  /// the claimer's.
  int32_t pid = 0;
  /// Whether that process still runs (pid and start time both match) and the
  /// slot says `alive` or `claiming`: the same rule the library sweeps by.
  bool process_alive = false;
  /// Start time of the process in clock ticks since boot (/proc/PID/stat).
  uint64_t start_ticks = 0;
  /// The same as wall-clock milliseconds since the epoch (0 if unknown).
  uint64_t started_unix_ms = 0;
  /// When the node joined, wall-clock milliseconds since the epoch.
  uint64_t joined_unix_ms = 0;
  /// Frames this node wrote.
  uint64_t frames_sent = 0;
  /// Frames this node read.
  uint64_t frames_received = 0;
  /// Frames this node rejected as malformed.
  uint64_t frames_rejected = 0;
  /// The futex word the node's reader parks on.
  uint32_t doorbell = 0;
  /// Whether the node's reader is parked (waits for a doorbell).
  bool parked = false;
  /// The process's command line (arguments joined by spaces) while it runs,
  /// from /proc/PID/cmdline; empty otherwise.
  std::string command;
};

/// One name of a group's name table.
struct name_info {
  /// The published name, or the name of a process group (see `subscription`).
  std::string name;
  /// Whether the entry says that its node has subscribers to the process
  /// group `name` (the group module "troupe", see `configure`) rather than
  /// publishing an actor under `name`; `actor` is then the node's relay.
  bool subscription = false;
  /// The slot of the node that published it.
  uint32_t slot = 0;
  /// The epoch of that slot when the node published it.
  uint32_t epoch = 0;
  /// The actor's id on that node.
  uint64_t actor = 0;
  /// Whether that node (slot and epoch) still runs; a name of a dead node is
  /// stale until a node sweeps it.
  bool owner_alive = false;
};

/// How full the one-way ring from slot `writer` to slot `reader` is.
struct ring_info {
  /// The slot of the node that writes into the ring.
  uint32_t writer = 0;
  /// The slot of the node that reads it.
  uint32_t reader = 0;
  /// Bytes written and not read yet.
  uint64_t used = 0;
  /// The ring's size in bytes (the group's `ring_bytes`).
  uint64_t capacity = 0;
  /// Bytes ever written into it (frames and pads): the difference of two
  /// readings over time is the writer's rate toward the reader.
  uint64_t written = 0;
};

/// A group's segment, `/dev/shm/troupe.<group>`, read without joining.
struct group_info {
  /// The group's name.
  std::string group;
  /// The object's name under /dev/shm, e.g. `troupe.jobs`.
  std::string shm_name;
  /// The uid that owns the object.
  uid_t owner = 0;
  /// Permission bits of the object (0600 for troupe's own).
  uint32_t mode = 0;
  /// The object's size in bytes.
  uint64_t size_bytes = 0;
  /// False while the creator is still setting the header up (or died doing
  /// so); nothing below `creator_pid` is then filled in.
  bool ready = false;
  /// The pid of the process that created the group.
  int32_t creator_pid = 0;
  /// When the group was created, wall-clock milliseconds since the epoch.
  uint64_t created_unix_ms = 0;
  /// The group's geometry and limits, as its creator set them (see
  /// `group_options`): node slots,
  uint32_t max_nodes = 0;
  /// bytes of each one-way ring,
  uint64_t ring_bytes = 0;
  /// names that can be published at once,
  uint32_t max_names = 0;
  /// and the largest message a node sends.
  uint64_t max_message_bytes = 0;
  /// Bumped whenever a name is published or removed.
  uint32_t names_seq = 0;
  /// Every slot that ever held a node (state not `free` or epoch not 0).
  std::vector<slot_info> slots;
  /// The live entries of the name table.
  std::vector<name_info> names;
  /// The rings between slots that ever held a node, writer before reader.
  std::vector<ring_info> rings;
  /// Whether the group counts as running; see `remove_dead_group`.
  bool live = false;
  /// Why it counts as running or not, e.g. `pids 4711, 4712 alive` or `all
  /// 2 nodes dead`.
  std::string liveness;
  /// The pids that keep it running.
  std::vector<int32_t> live_pids;
};

/// A shared value or array (`shared_value`, `shared_array`),
/// `/dev/shm/troupe.<group>.v.<name>`, read without opening it for use.
struct block_info {
  /// The object's name under /dev/shm.
  std::string shm_name;
  /// The groups it may belong to: every split of the name at `.v.` (group
  /// names may themselves hold `.v.`).
  std::vector<std::string> groups;
  /// The value's name, after the first `.v.`.
  std::string name;
  /// `value` or `array`.
  std::string kind;
  /// The element type's name as the creator wrote it, demangled.
  std::string type_name;
  /// The size of one element in bytes.
  uint64_t elem_size = 0;
  /// The number of elements (1 for a value).
  uint64_t count = 0;
  /// The value, or the first 8 elements of an array (`[1, 2, 3, ...]`), as
  /// text, read at one moment when the element type is a built-in number
  /// (`bool`, a character, an integer or a floating-point type); empty for
  /// other types and for a block not finished yet.
  std::string values;
  /// The object's size in bytes, header included.
  uint64_t size_bytes = 0;
  /// False while the creator is still filling it in (or died doing so).
  bool ready = false;
  /// The pid of the process that created it (and removes it).
  int32_t creator_pid = 0;
  /// Whether the creator (pid and start time) still runs.
  bool creator_alive = false;
  /// Whether the block counts as in use; see `remove_dead_block`.
  bool live = false;
  /// Why it counts as in use or not.
  std::string liveness;
};

/// An object under /dev/shm named `troupe.*` that cannot be read as a group
/// or a block: another user's, a wrong magic or version, a torn geometry.
struct unreadable_info {
  /// The object's name under /dev/shm.
  std::string shm_name;
  /// What is wrong, e.g. `permission denied (owner uid 1000, mode 0600)`.
  std::string reason;
};

/// Everything troupe has in /dev/shm.
struct host_info {
  /// The groups' segments.
  std::vector<group_info> groups;
  /// The shared values and arrays.
  std::vector<block_info> blocks;
  /// The `troupe.*` objects that could not be read.
  std::vector<unreadable_info> unreadable;
};

/// Reads every `troupe.*` object under /dev/shm, sorted by name. Maps each
/// read-only (`PROT_READ`, `O_RDONLY`): never joins, writes or waits. Safe
/// from any thread and against groups that change meanwhile (the answer is
/// one moment's view). Fails only if /dev/shm cannot be listed.
caf::expected<host_info> inspect_host();

/// Reads the segment of `group`, as `inspect_host` does. Fails with
/// `errc::no_such_group` if there is none, `errc::bad_segment` if it is not a
/// troupe segment of this version or cannot be read (another user's:
/// permission denied), `troupe::errc::invalid_argument` for a bad group name.
caf::expected<group_info> inspect_group(const std::string& group);

/// Removes the segment of `group` if the group is not running, and fails
/// with `errc::group_running` (naming the live pids) if it is.
///
/// A group runs while one of its slots is `alive` or `claiming` with a
/// process whose pid and start time match (the rule `node::create` sweeps a
/// segment by), or while its creator still runs and no node has joined yet,
/// or while the creator is still setting the header up. A header never
/// finished by a creator that died (or not for 10 s) does not run.
///
/// Races: the decision is made on a read-only mapping, then made again on
/// the object found under the name just before it is unlinked, which must be
/// the same object (inode); a group created in between is not removed. A
/// process that opens the name in the last microseconds keeps its mapping
/// (the memory lives until it unmaps) but the name is gone, as with the
/// library's own sweep.
caf::error remove_dead_group(const std::string& group);

/// Removes the block `/dev/shm/<shm_name>` (a shared value or array) if it is
/// not in use, and fails with `errc::name_taken` if it is. A block is in use
/// while its creator (pid and start time) runs, or while any group it may
/// belong to runs (its creator died but other nodes may still hold it).
caf::error remove_dead_block(const std::string& shm_name);

} // namespace troupe::ipc
