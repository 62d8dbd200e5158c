#pragma once

/// @file
/// `troupe::ipc::managed_value<T>`: a value owned by one actor and reachable from every process of
/// a group (Python's `Manager().Value`).

#include "troupe/ipc/detail/shared_call.hpp"
#include "troupe/ipc/error.hpp"
#include "troupe/ipc/managed_atoms.hpp"
#include "troupe/owner_handle.hpp"
#include "troupe/timeout.hpp"

#include <caf/all.hpp>

#include <type_traits>
#include <utility>

namespace troupe::ipc {

namespace detail {

/// The state of a `managed_value<T>`'s owner actor.
template <class T>
struct managed_value_state {
  /// The value.
  T value;
  /// The owner's actor name.
  static constexpr const char* name = "troupe.managed_value";
};

/// The owner of a `managed_value<T>`.
template <class T>
caf::behavior managed_value_owner(caf::stateful_actor<managed_value_state<T>>* self, T init) {
  answer_unexpected_with_type_error(self, "managed_value");
  self->state.value = std::move(init);
  auto get = [self](caf::get_atom) { return self->state.value; };
  auto set = [self](set_atom, T& x) {
    self->state.value = std::move(x);
    return caf::ok_atom::value;
  };
  auto cas = [self](cas_atom, const T& expected, T& desired) {
    if (!(self->state.value == expected))
      return false;
    self->state.value = std::move(desired);
    return true;
  };
  if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
    auto add = [self](caf::add_atom, T delta) {
      self->state.value += delta;
      return self->state.value;
    };
    return {get, set, cas, add};
  } else {
    return {get, set, cas};
  }
}

} // namespace detail

/// One value shared by the processes of a group (Python's
/// `Manager().Value(...)`, without the lock: every operation is atomic on
/// its own), owned by one actor and reached through this handle from any
/// thread of any process. Unlike `shared_value` (shared_memory.hpp, the
/// `sharedctypes` kind, whose data live in a shared-memory object of their
/// own), its value may be
/// of any CAF message type, and every access is a message to the owner.
///
/// **Atomicity.** Every member function is one message to the owner and
/// runs there as one step, in mailbox order. `add` and `compare_and_set`
/// are atomic read-modify-writes: N processes adding 1 M times each end at
/// N * M. (`get` then `set` is two steps and can lose updates: use `add` or
/// a `compare_and_set` loop.)
///
/// **Processes.** `make` spawns the owner in the calling process; publish
/// `handle()` with `node::publish`, and other processes build a
/// `managed_value` from `node::lookup`. `T` must be a CAF message type
/// registered under the same name in every process. The owner lives
/// until `stop()` (or, if it never was published nor reached from another
/// process, until the last handle is gone).
/// If the owner's process dies, calls fail with `troupe::errc::peer_lost`.
///
/// **Protocol**, for event-based actors: `(get_atom) -> T`,
/// `(set_atom, T) -> ok_atom`, `(cas_atom, T expected, T desired) -> bool`,
/// and for arithmetic `T` (not `bool`) `(add_atom, T delta) -> T` (the new
/// value). Other types than the owner's give `errc::type_error`.
///
/// **Shared memory.** None of its own: the value lives in the owner's
/// process, and calls from other processes travel as messages through
/// the group's segment, which the group's nodes create and remove (see
/// `node`).
///
/// The handle is a value: copies talk to the same owner, and any thread may
/// use one concurrently.
template <class T>
class managed_value : public owner_handle {
public:
  /// The value's type.
  using value_type = T;

  /// Spawns the owner of a value holding `init` in `sys` (this process).
  static managed_value make(caf::actor_system& sys, T init = T{}) {
    return managed_value{detail::served_on_readers(
      caf::actor{sys.spawn(detail::managed_value_owner<T>, std::move(init))})};
  }

  /// An empty handle: every call fails with `troupe::errc::invalid_argument`.
  managed_value() = default;

  /// A handle to the owner `owner`, e.g. what `node::lookup` returned.
  explicit managed_value(caf::actor owner) : owner_handle(std::move(owner)) {}

  /// The current value.
  [[nodiscard]] caf::expected<T> get(caf::timespan timeout = forever) const {
    return troupe::detail::ask<T>(owner_, timeout, caf::get_atom::value);
  }

  /// Replaces the value.
  caf::error set(const T& x, caf::timespan timeout = forever) const {
    return troupe::detail::call_ok(owner_, timeout, set_atom::value, x);
  }

  /// Sets the value to `desired` if it equals `expected`, atomically;
  /// returns whether it did.
  [[nodiscard]] caf::expected<bool> compare_and_set(const T& expected, const T& desired,
                                                    caf::timespan timeout = forever) const {
    return troupe::detail::ask<bool>(owner_, timeout, cas_atom::value, expected, desired);
  }

  /// Adds `delta` atomically and returns the new value (arithmetic `T`
  /// other than `bool` only: for any other `T` the call does not compile).
  template <class U = T,
            class = std::enable_if_t<std::is_arithmetic_v<U> && !std::is_same_v<U, bool>>>
  [[nodiscard]] caf::expected<T> add(T delta, caf::timespan timeout = forever) const {
    return troupe::detail::ask<T>(owner_, timeout, caf::add_atom::value, delta);
  }
};

} // namespace troupe::ipc
