#pragma once

/// @file
/// The error codes of troupe::ipc (`troupe::ipc::errc`): groups, segments,
/// names, frames and the Manager equivalents' Python errors.

#include "troupe/error.hpp"

#include <caf/error.hpp>

#include <cstdint>
#include <string>

namespace troupe::ipc {

/// Error codes of troupe::ipc. They share the category `troupe::error_category`
/// with the actors layer's `troupe::errc` and start at 64, so a `caf::error`
/// names one code of one layer; test them with `troupe::is` and print them
/// with `troupe::describe` like any troupe error. A process that dies is
/// `troupe::errc::peer_lost`, which the actors layer's supervisors know.
enum class errc : uint8_t {
  /// A message is larger than the group's `max_message_bytes`.
  message_too_large = 64,
  /// A group of that name is already running on this host.
  group_running,
  /// No group of that name runs on this host.
  no_such_group,
  /// The key given to join a group is not the group's key.
  bad_key,
  /// A shared-memory segment is not a troupe segment of a compatible version,
  /// is not owned by the caller, or has the wrong permissions.
  bad_segment,
  /// Every node slot of the group is taken.
  group_full,
  /// The name is already published by a live node.
  name_taken,
  /// No live node published that name.
  name_not_found,
  /// A process could not be started.
  spawn_failed,
  /// A frame read from shared memory was malformed and was rejected.
  bad_frame,
  /// A key is not in a shared dict or namespace (Python's `KeyError`); the
  /// context names the key.
  key_error,
  /// An index is outside a shared list, or the list is empty where an item
  /// was needed (Python's `IndexError`).
  index_error,
  /// A value is not in a shared list (Python's `ValueError` from
  /// `list.remove` and `list.index`).
  value_error,
  /// A value or message has another type than the call expects: a shared
  /// namespace field read as the wrong type, or a managed container's owner
  /// sent a message of element types it does not hold.
  type_error,
  /// A queue is empty and the call would not wait (or the wait ran out):
  /// Python's `queue.Empty`.
  empty,
  /// A barrier is broken: a waiting party terminated (its process died: the
  /// context says so), timed out, or the barrier was aborted or reset while
  /// parties waited (Python's `BrokenBarrierError`). Every wait fails with
  /// it until the barrier is reset.
  broken_barrier,
  /// `/dev/shm` has no room for the shared memory a group, a shared value or
  /// a ring between two nodes needs; the context names what was needed and
  /// what was free. Reserved when it comes into use, so running out is this
  /// error at that moment, never a SIGBUS later.
  no_shared_memory,
  /// A limit of this process stopped the call: too few file descriptors
  /// left below its `ulimit -n` for what joining a group needs, or no new
  /// process or thread for this user now (`ulimit -u`) when starting a
  /// process or a node's threads; the context names the limit, its value
  /// and what needed it.
  resource_limit,
};

/// Returns the name of `x`, e.g. `"bad_key"`.
std::string to_string(errc x);

/// Makes a `caf::error` of category `troupe` for `x` (found by ADL, so an
/// `ipc::errc` converts to `caf::error` implicitly).
caf::error make_error(errc x);

/// Makes a `caf::error` of category `troupe` with a message as context.
caf::error make_error(errc x, std::string what);

} // namespace troupe::ipc

namespace troupe {

/// Returns whether `err` is the troupe::ipc error `x`.
bool is(const caf::error& err, ipc::errc x) noexcept;

} // namespace troupe
