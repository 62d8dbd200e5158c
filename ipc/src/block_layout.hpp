#pragma once

// The layout of a shared value's or array's block (`shared_value`,
// `shared_array`): one shared-memory object per value,
// `/dev/shm/troupe.<group>.v.<name>`. Internal: nothing here is installed.
// shared_memory.cpp makes and opens blocks; inspect.cpp reads them for
// `troupe ls` and `troupe clean`.

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace troupe::ipc::detail {

/// "$trupSv1" as a little-endian word.
constexpr uint64_t block_magic = 0x3176537075727424ull;
constexpr uint32_t block_version = 1;
constexpr size_t type_name_bytes = 64;

/// What separates the group's segment name from the value's name:
/// `troupe.<group>` + `.v.` + `<name>`.
constexpr const char* block_infix = ".v.";

/// The start of every block. Written once by the creator before `ready`;
/// only `mutex` changes afterwards.
struct block_header {
  uint64_t magic;
  uint32_t version;
  uint32_t kind;
  uint64_t elem_size;
  uint64_t elem_align;
  uint64_t type_tag;
  uint64_t count;
  uint64_t data_offset;
  uint64_t total_bytes;
  /// The process that made the block; the block is its, and is swept once
  /// that process (pid and start time) is gone.
  int32_t creator_pid;
  uint32_t reserved;
  uint64_t creator_start_ticks;
  char type_name[type_name_bytes];
  std::atomic<uint32_t> ready;
  pthread_mutex_t mutex;
};

static_assert(std::atomic<uint32_t>::is_always_lock_free);

} // namespace troupe::ipc::detail
