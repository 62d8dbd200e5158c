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

/// Error codes of troupe's actors layer. They travel as ordinary `caf::error`
/// values with category `troupe::error_category`; compare with `troupe::is`.
/// troupe::ipc adds its own codes (`troupe::ipc::errc`, from 64 on) in the
/// same category, so `troupe::describe` and CAF print both alike.
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
  /// on it fail with it. The one code of troupe::ipc that this layer knows:
  /// a supervisor turns it into `child_down`, a pool into `worker_crashed`.
  peer_lost,
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

namespace troupe::detail {

/// Names a code of the troupe category that another layer defines, or returns
/// null for a code it does not know.
using code_namer = const char* (*)(uint8_t code);

/// Lets `describe` and CAF's renderer name the codes from 64 on, which
/// troupe::ipc defines; set once, by troupe::ipc's static initialisation.
void set_layer_code_namer(code_namer namer) noexcept;

} // namespace troupe::detail
