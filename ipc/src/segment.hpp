#pragma once

// Creating, opening, sweeping and removing a group's segment, and the system
// calls around it (futex, process liveness). Internal.

#include "layout.hpp"
#include "transport/futex.hpp"
#include "troupe/ipc/node.hpp"

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace troupe::ipc::detail {

using group_key = std::array<uint8_t, key_bytes>;

/// The name of a group's segment under /dev/shm (without the slash).
std::string shm_name_of(const std::string& group);

/// Checks a group name: 1 to 48 characters of [A-Za-z0-9_.-].
caf::error check_group_name(const std::string& group);

/// Checks a creator's options.
caf::error check_options(const group_options& opts);

/// `n` bytes as lower-case hex digits, and back (nothing for text that is
/// not an even number of hex digits).
std::string to_hex(const void* data, size_t n);
std::optional<std::vector<uint8_t>> from_hex(const std::string& hex);

std::string key_to_hex(const group_key& key);
caf::expected<group_key> key_from_hex(const std::string& hex);

/// A mapped segment. Unmaps on destruction; never removes the segment.
class mapped_segment {
public:
  virtual ~mapped_segment() = default;
  /// Backs bytes [offset, offset + len) with memory now (fallocate), so that
  /// a full /dev/shm is `errc::no_shared_memory` here, naming `what`, what
  /// was needed and what was free, and never a SIGBUS when the bytes are
  /// touched. Reserving reserved bytes again costs nothing.
  virtual caf::error reserve(size_t offset, size_t len, const std::string& what);
  /// Gives bytes [offset, offset + len) back to /dev/shm (punches a hole);
  /// they read as zeros afterwards. Only for bytes no process touches again
  /// before it reserves them anew.
  virtual void release(size_t offset, size_t len);
  /// Closes the segment's file; the mapping stays until this object goes.
  /// `reserve` fails and `release` does nothing from then on.
  virtual void close_file();
  segment_view view;
  std::string group;
  std::string shm_name;
};

/// Creates the segment of `group` (create_only, mode 0600) and initializes
/// its header. A segment of a group whose processes all died is removed first,
/// with a notice on stderr unless `opts.quiet`.
caf::expected<std::unique_ptr<mapped_segment>> create_segment(const std::string& group,
                                                              const group_options& opts);

/// Opens the segment of a running group: checks owner, mode, magic, version,
/// size and key.
caf::expected<std::unique_ptr<mapped_segment>>
open_segment(const std::string& group, const group_key& key, caf::timespan join_timeout);

/// `errc::no_shared_memory` for `need` bytes of `what` in the tmpfs that
/// holds /dev/shm, with what was free there.
caf::error no_shared_memory(size_t need, const std::string& what);

/// Reserves bytes [offset, offset + len) of the tmpfs object `fd` (see
/// `mapped_segment::reserve`). Where the file system cannot reserve
/// (EOPNOTSUPP), memory is taken as it is touched, as before.
caf::error reserve_bytes(int fd, size_t offset, size_t len, const std::string& what);

/// Removes the segment's name (the memory lives until the last unmap).
void remove_segment(const std::string& shm_name);

/// Removes the shared values and arrays of `group` whose creators are dead
/// (shared_memory.cpp); the group's last node out calls it.
void sweep_dead_blocks(const std::string& group);

/// The pid of the slot's node: the claimer's while it claims the slot.
int32_t slot_pid(const node_slot& s);

/// Whether the slot holds a node (alive or claiming) whose process still
/// runs: the liveness rule of a group, shared by the sweep in
/// `create_segment`, the last-one-out check and `troupe clean`.
bool slot_process_alive(const node_slot& s);

/// The pid of a live node of the segment (see `slot_process_alive`), or 0 if
/// none is alive: a segment with no live node is swept by `create_segment`.
int32_t live_pid(const segment_view& seg);

/// Start time of process `pid` in clock ticks since boot, 0 if it does not
/// exist or is a zombie.
uint64_t process_start_ticks(pid_t pid);

/// Whether process `pid` started at `start_ticks` still runs. When /proc
/// cannot be read for want of a file descriptor, as far as kill(2) says.
bool process_alive(pid_t pid, uint64_t start_ticks);

/// `errc::resource_limit` when fewer than `needed` file descriptors are free
/// below this process's `ulimit -n`; `what` says what needs them.
caf::error check_descriptor_room(size_t needed, const std::string& what);

/// This process's soft limit on open files (`ulimit -n`); 0 if unlimited.
uint64_t descriptor_limit();

/// The parent of process `pid` (/proc/PID/stat, field 4), or 0.
pid_t parent_pid_of(pid_t pid);

/// Wall-clock milliseconds since the epoch (what `troupe ls` prints).
uint64_t unix_ms();

/// Monotonic milliseconds (for grace periods between processes: CLOCK_MONOTONIC
/// is shared by all processes of a host).
uint64_t mono_ms();

/// pidfd_open(2); -1 where the kernel has none.
int pidfd_open(pid_t pid);

} // namespace troupe::ipc::detail
