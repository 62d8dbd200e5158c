#pragma once

/// @file
/// troupe's error codes (`troupe::errc`) and the helpers that make, test and print them.

#include <caf/atom.hpp>
#include <caf/error.hpp>

#include <cstdint>
#include <string>

namespace troupe {

/// The category of every error that troupe itself raises, as seen in
/// `caf::error::category()`.
constexpr caf::atom_value error_category = caf::atom("troupe");

/// Error codes of troupe. They travel as ordinary `caf::error` values with
/// category `troupe::error_category`; compare with `troupe::is`.
enum class errc : uint8_t {
  /// A wait, acquire or request ran out of time.
  timeout = 1,
  /// The actor that owned a state or primitive terminated before answering.
  owner_down,
  /// A function passed to `guarded<T>::update` threw; the error's context
  /// holds the exception's message and the state was left as it was.
  update_failed,
  /// A permit was released by an actor that does not hold one.
  not_held,
  /// An argument was outside what the call accepts.
  invalid_argument,
  /// A blocking call would wait for an owner that is itself waiting for the
  /// caller further up the chain (A waits on B, B calls A).
  would_deadlock,
  /// A supervised child terminated before answering a request sent through
  /// its stable handle, or is gone for good.
  child_down,
  /// A supervisor's children terminated more often than its restart
  /// intensity allows; the supervisor stopped them and exited.
  restart_intensity,
  /// A supervised child's start function failed or returned no actor.
  start_failed,
  /// The worker running a task crashed (and the task had no retries left).
  worker_crashed,
  /// A task was cancelled before it ran (its pool or executor shut down).
  cancelled,
  /// A task submitted to an executor threw; the context holds the message.
  task_failed,
  /// A queue is closed: no more puts; gets end once it is drained.
  closed,
  /// A queue or ring is full and its policy is to fail instead of waiting
  /// (or the wait ran out).
  full,
  /// The node (process) hosting an actor died or left its group: monitors
  /// of its actors see this as the `down_msg` reason, and requests pending
  /// on it fail with it.
  peer_lost,
  /// A message is larger than the group's `max_message_bytes`.
  message_too_large,
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
};

/// Returns the name of `x`, e.g. `"timeout"`.
std::string to_string(errc x);

/// Makes a `caf::error` of category `troupe` for `x` (found by ADL, so an
/// `errc` converts to `caf::error` implicitly).
caf::error make_error(errc x);

/// Makes a `caf::error` of category `troupe` with a message as context.
caf::error make_error(errc x, std::string what);

/// Returns whether `err` is the troupe error `x`.
bool is(const caf::error& err, errc x) noexcept;

/// Renders any error for people: troupe errors as `troupe.NAME: what`, CAF's
/// system errors and exit reasons by name, others as CAF renders them. Needs no
/// actor system, so it works after the system is gone.
std::string describe(const caf::error& err);

} // namespace troupe
