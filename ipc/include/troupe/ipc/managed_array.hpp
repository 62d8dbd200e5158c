#pragma once

/// @file
/// `troupe::ipc::managed_array<T>`: a fixed-size array owned by one actor and reachable from every
/// process of a group (Python's `Manager().Array`).

#include "troupe/ipc/detail/shared_call.hpp"
#include "troupe/ipc/error.hpp"
#include "troupe/ipc/managed_atoms.hpp"
#include "troupe/owner_handle.hpp"
#include "troupe/timeout.hpp"

#include <caf/all.hpp>

#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace troupe::ipc {

namespace detail {

/// The state of a `managed_array<T>`'s owner actor.
template <class T>
struct managed_array_state {
  /// The cells.
  std::vector<T> data;
  /// The owner's actor name.
  static constexpr const char* name = "troupe.managed_array";
};

/// `errc::index_error` for index `i` of an array of `n` cells, in `what`.
inline caf::error array_index_error(const char* what, int64_t i, size_t n) {
  return make_error(errc::index_error, std::string{what} + ": index " + std::to_string(i)
                                         + " out of range for an array of " + std::to_string(n));
}

/// Whether a `managed_array<T>` has `add`: arithmetic `T` but `bool`.
template <class T>
constexpr bool managed_array_adds = std::is_arithmetic_v<T> && !std::is_same_v<T, bool>;

/// The owner of a `managed_array<T>`.
template <class T>
caf::behavior managed_array_owner(caf::stateful_actor<managed_array_state<T>>* self,
                                  std::vector<T> init) {
  answer_unexpected_with_type_error(self, "managed_array");
  self->state.data = std::move(init);
  auto len = [self](len_atom) { return static_cast<int64_t>(self->state.data.size()); };
  auto get = [self](caf::get_atom, int64_t i) -> caf::result<T> {
    auto& d = self->state.data;
    auto pos = python_index(i, d.size());
    if (!pos)
      return array_index_error("get", i, d.size());
    return d[*pos];
  };
  auto set = [self](set_atom, int64_t i, T& x) -> caf::result<caf::ok_atom> {
    auto& d = self->state.data;
    auto pos = python_index(i, d.size());
    if (!pos)
      return array_index_error("set", i, d.size());
    d[*pos] = std::move(x);
    return caf::ok_atom::value;
  };
  auto slice = [self](slice_atom, int64_t first, int64_t last) {
    auto& d = self->state.data;
    auto b = python_bound(first, d.size());
    auto e = python_bound(last, d.size());
    if (e <= b)
      return std::vector<T>{};
    return std::vector<T>(d.begin() + static_cast<std::ptrdiff_t>(b),
                          d.begin() + static_cast<std::ptrdiff_t>(e));
  };
  auto snapshot = [self](snapshot_atom) { return self->state.data; };
  if constexpr (managed_array_adds<T>) {
    auto add = [self](caf::add_atom, int64_t i, T delta) -> caf::result<T> {
      auto& d = self->state.data;
      auto pos = python_index(i, d.size());
      if (!pos)
        return array_index_error("add", i, d.size());
      d[*pos] += delta;
      return d[*pos];
    };
    return {len, get, set, slice, snapshot, add};
  } else {
    return {len, get, set, slice, snapshot};
  }
}

} // namespace detail

/// A fixed-size array shared by the processes of a group (Python's
/// `Manager().Array(typecode, values)`, without the lock: every operation
/// is atomic on its own): a `std::vector<T>` owned by one actor, reached
/// through this handle from any thread of any process. Unlike
/// `shared_array` (shared_memory.hpp, the `sharedctypes` kind, whose cells
/// live in the segment), its elements may be of any CAF message type, and
/// every access is a message to the owner. Its length is fixed when it is
/// made: nothing appends or removes.
///
/// **Atomicity.** Every member function is one message to the owner and
/// runs there as one step, in mailbox order; calls made from one thread
/// keep their order. `add` is an atomic read-modify-write of one cell: N
/// processes adding 1 M times each to a cell end at N * M. (`get` then
/// `set` is two steps and can lose updates: use `add`.) `snapshot` and
/// `slice` are consistent copies: no call runs halfway through them.
///
/// **Indices** are Python's: negative ones count from the end; `slice`
/// clamps its bounds as `a[i:j]` does.
///
/// **Processes.** `make` spawns the owner in the calling process; publish
/// `handle()` with `node::publish`, and other processes build a
/// `managed_array` from `node::lookup`. `T` and `std::vector<T>` must be
/// CAF message types registered under the same names in every process
/// (`add_managed_types` does it for `int32_t`, `int64_t`, `double` and
/// `std::string`). The owner lives until `stop()` (or, if it never was
/// published nor reached from another process, until the last handle is
/// gone). If the owner's process dies, calls fail with `troupe::errc::peer_lost`.
///
/// **Errors.** An index out of range gives `errc::index_error`
/// (`IndexError`), e.g. "get: index 5 out of range for an array of 5";
/// a handle of another element type than the owner's gets
/// `errc::type_error` for `set` and `add`; no answer within `timeout`,
/// `troupe::errc::timeout`.
///
/// **Protocol**, for event-based actors: `(len_atom) -> int64_t`,
/// `(get_atom, int64_t) -> T`, `(set_atom, int64_t, T) -> ok_atom`,
/// `(slice_atom, int64_t, int64_t) -> std::vector<T>`,
/// `(snapshot_atom) -> std::vector<T>`, and for arithmetic `T` (not
/// `bool`) `(add_atom, int64_t, T delta) -> T` (the cell's new value).
///
/// **Shared memory.** None of its own: the cells live in the owner's
/// process, and calls from other processes travel as messages through
/// the group's segment, which the group's nodes create and remove (see
/// `node`).
///
/// The handle is a value: copies talk to the same owner, and any thread may
/// use one concurrently.
template <class T>
class managed_array : public owner_handle {
public:
  /// The element type.
  using value_type = T;

  /// Spawns, in `sys` (this process), the owner of an array of `size`
  /// copies of `fill` (`Array('q', size)` when `fill` is `T{}`). Beware
  /// that `make(sys, {5})` picks this overload, as `Array('q', 5)` does:
  /// five zeros, not one five.
  static managed_array make(caf::actor_system& sys, size_t size, const T& fill = T{}) {
    return make(sys, std::vector<T>(size, fill));
  }

  /// Spawns, in `sys` (this process), the owner of an array holding
  /// `values` (`Array('q', values)`); its length is `values.size()`.
  static managed_array make(caf::actor_system& sys, std::vector<T> values) {
    return managed_array{detail::served_on_readers(
      caf::actor{sys.spawn(detail::managed_array_owner<T>, std::move(values))})};
  }

  /// An empty handle: every call fails with `troupe::errc::invalid_argument`.
  managed_array() = default;

  /// A handle to the owner `owner`, e.g. what `node::lookup` returned.
  explicit managed_array(caf::actor owner) : owner_handle(std::move(owner)) {}

  /// `len(a)`: the fixed length.
  [[nodiscard]] caf::expected<int64_t> len(caf::timespan timeout = forever) const {
    return troupe::detail::ask<int64_t>(owner_, timeout, len_atom::value);
  }

  /// `a[i]`, or `errc::index_error`.
  [[nodiscard]] caf::expected<T> get(int64_t i, caf::timespan timeout = forever) const {
    return troupe::detail::ask<T>(owner_, timeout, caf::get_atom::value, i);
  }

  /// `a[i] = x`, or `errc::index_error`.
  caf::error set(int64_t i, const T& x, caf::timespan timeout = forever) const {
    return troupe::detail::call_ok(owner_, timeout, set_atom::value, i, x);
  }

  /// `a[i] += delta` as one atomic step on the owner; returns the cell's
  /// new value, or `errc::index_error` (arithmetic `T` but `bool` only).
  template <class U = T, class = std::enable_if_t<detail::managed_array_adds<U>>>
  [[nodiscard]] caf::expected<T> add(int64_t i, T delta, caf::timespan timeout = forever) const {
    return troupe::detail::ask<T>(owner_, timeout, caf::add_atom::value, i, delta);
  }

  /// `a[first:last]`: a consistent copy of that part.
  [[nodiscard]] caf::expected<std::vector<T>> slice(int64_t first, int64_t last,
                                                    caf::timespan timeout = forever) const {
    return troupe::detail::ask<std::vector<T>>(owner_, timeout, slice_atom::value, first, last);
  }

  /// `a[:]`: a consistent copy of every element.
  [[nodiscard]] caf::expected<std::vector<T>> snapshot(caf::timespan timeout = forever) const {
    return troupe::detail::ask<std::vector<T>>(owner_, timeout, snapshot_atom::value);
  }
};

} // namespace troupe::ipc
