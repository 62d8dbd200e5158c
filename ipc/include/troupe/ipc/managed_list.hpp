#pragma once

/// @file
/// `troupe::ipc::managed_list<T>`: a list owned by one actor and reachable from every process of a
/// group (Python's `Manager().list()`).

#include "troupe/ipc/detail/shared_call.hpp"
#include "troupe/ipc/error.hpp"
#include "troupe/ipc/managed_atoms.hpp"
#include "troupe/owner_handle.hpp"
#include "troupe/timeout.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

namespace troupe::ipc {

/// An omitted bound of `managed_list::slice`: `l.slice(open_end, open_end, -1)`
/// is `l[::-1]`.
inline constexpr int64_t open_end = std::numeric_limits<int64_t>::min();

namespace detail {

/// Whether `T`s can be ordered with `<` (what `managed_list::sort` needs).
template <class T, class = void>
constexpr bool is_sortable = false;
template <class T>
constexpr bool
  is_sortable<T, std::void_t<decltype(std::declval<const T&>() < std::declval<const T&>())>> = true;

/// The state of a `managed_list<T>`'s owner actor.
template <class T>
struct managed_list_state {
  /// The items.
  std::vector<T> data;
  /// The owner's actor name.
  static constexpr const char* name = "troupe.managed_list";
};

/// `errc::index_error` for index `i` of a list of `n` items, in `what`.
inline caf::error list_index_error(const char* what, int64_t i, size_t n) {
  return make_error(errc::index_error, std::string{what} + ": index " + std::to_string(i)
                                         + " out of range for a list of " + std::to_string(n));
}

/// `errc::value_error` for a value `x` that is not in the list, in `what`.
template <class T>
caf::error not_in_list(const char* what, const T& x) {
  return make_error(errc::value_error, std::string{what} + ": " + repr(x) + " is not in list");
}

/// The owner of a `managed_list<T>`.
template <class T>
caf::behavior managed_list_owner(caf::stateful_actor<managed_list_state<T>>* self,
                                 std::vector<T> init) {
  answer_unexpected_with_type_error(self, "managed_list");
  self->state.data = std::move(init);
  return {
    [self](append_atom, T& x) {
      self->state.data.push_back(std::move(x));
      return caf::ok_atom::value;
    },
    [self](extend_atom, std::vector<T>& xs) {
      auto& d = self->state.data;
      d.insert(d.end(), std::make_move_iterator(xs.begin()), std::make_move_iterator(xs.end()));
      return caf::ok_atom::value;
    },
    [self](caf::get_atom, int64_t i) -> caf::result<T> {
      auto& d = self->state.data;
      auto pos = python_index(i, d.size());
      if (!pos)
        return list_index_error("get", i, d.size());
      return d[*pos];
    },
    [self](set_atom, int64_t i, T& x) -> caf::result<caf::ok_atom> {
      auto& d = self->state.data;
      auto pos = python_index(i, d.size());
      if (!pos)
        return list_index_error("set", i, d.size());
      d[*pos] = std::move(x);
      return caf::ok_atom::value;
    },
    [self](insert_atom, int64_t i, T& x) {
      auto& d = self->state.data;
      d.insert(d.begin() + static_cast<std::ptrdiff_t>(python_bound(i, d.size())), std::move(x));
      return caf::ok_atom::value;
    },
    [self](pop_atom, int64_t i) -> caf::result<T> {
      auto& d = self->state.data;
      if (d.empty())
        return make_error(errc::index_error, "pop from empty list");
      auto pos = python_index(i, d.size());
      if (!pos)
        return list_index_error("pop", i, d.size());
      auto x = std::move(d[*pos]);
      d.erase(d.begin() + static_cast<std::ptrdiff_t>(*pos));
      return x;
    },
    [self](remove_atom, const T& x) -> caf::result<caf::ok_atom> {
      auto& d = self->state.data;
      auto i = std::find(d.begin(), d.end(), x);
      if (i == d.end())
        return not_in_list("remove", x);
      d.erase(i);
      return caf::ok_atom::value;
    },
    [self](index_atom, const T& x) -> caf::result<int64_t> {
      auto& d = self->state.data;
      auto i = std::find(d.begin(), d.end(), x);
      if (i == d.end())
        return not_in_list("index", x);
      return static_cast<int64_t>(i - d.begin());
    },
    [self](caf::delete_atom, int64_t i) -> caf::result<caf::ok_atom> {
      auto& d = self->state.data;
      auto pos = python_index(i, d.size());
      if (!pos)
        return list_index_error("del", i, d.size());
      d.erase(d.begin() + static_cast<std::ptrdiff_t>(*pos));
      return caf::ok_atom::value;
    },
    [self](count_atom, const T& x) {
      auto& d = self->state.data;
      return static_cast<int64_t>(std::count(d.begin(), d.end(), x));
    },
    [self](contains_atom, const T& x) {
      auto& d = self->state.data;
      return std::find(d.begin(), d.end(), x) != d.end();
    },
    [self](reverse_atom) {
      std::reverse(self->state.data.begin(), self->state.data.end());
      return caf::ok_atom::value;
    },
    [self](len_atom) { return static_cast<int64_t>(self->state.data.size()); },
    [self](slice_atom, int64_t start, int64_t stop, int64_t step) -> caf::result<std::vector<T>> {
      if (step == 0)
        return make_error(errc::value_error, "slice step cannot be zero");
      auto& d = self->state.data;
      std::vector<T> res;
      for (auto i : python_slice(start, stop, step, d.size(), open_end))
        res.push_back(d[i]);
      return res;
    },
    [self](sort_atom) -> caf::result<caf::ok_atom> {
      if constexpr (is_sortable<T>) {
        // Stable, as Python's sort.
        std::stable_sort(self->state.data.begin(), self->state.data.end());
        return caf::ok_atom::value;
      } else {
        return make_error(errc::type_error, "managed_list: its items have no < to sort by");
      }
    },
    [self](snapshot_atom) { return self->state.data; },
  };
}

} // namespace detail

/// A list shared by the processes of a group (Python's `Manager().list()`):
/// a `std::vector<T>` owned by one actor, reached through this handle from
/// any thread of any process.
///
/// **Atomicity.** Every member function is one message to the owner and
/// runs there as one step, in mailbox order: `pop`, `remove`, `insert` and
/// `extend` are atomic, and no two calls interleave. Calls made from one
/// thread keep their order. (A `get` followed by a `set` is two steps; make
/// a compound change one call, or use a `managed_value`.)
///
/// **As in Python**, name for name, with Python's indices (negative ones
/// count from the end; `insert` and `slice` clamp their bounds as
/// `list.insert` and `l[i:j:k]` do). C++ spellings: `get`/`set` are `l[i]`,
/// `erase` is `del l[i]`, `contains` is `x in l`, `snapshot` is `list(l)`;
/// `sort` takes no key (sort a snapshot for that).
///
/// **Processes.** `make` spawns the owner in the calling process; publish
/// `handle()` with `node::publish`, and other processes build a
/// `managed_list` from `node::lookup`. `T` and `std::vector<T>` must be CAF
/// message types registered under the same names in every process
/// (`add_managed_types` does it for the common ones). The owner lives
/// until `stop()` (or, if it never was published nor reached from another
/// process, until the last handle is gone).
/// If the owner's process dies, calls fail with `troupe::errc::peer_lost`.
///
/// **Errors.** An index out of range, or a pop from an empty list, gives
/// `errc::index_error` (`IndexError`); `remove`/`index` of a missing value
/// give `errc::value_error` (`ValueError`); other element types than the
/// owner's give `errc::type_error`; no answer within `timeout`,
/// `troupe::errc::timeout`.
///
/// **Protocol**, for event-based actors: `(append_atom, T) -> ok_atom`,
/// `(extend_atom, std::vector<T>) -> ok_atom`, `(get_atom, int64_t) -> T`,
/// `(set_atom, int64_t, T) -> ok_atom`, `(insert_atom, int64_t, T) -> ok_atom`,
/// `(pop_atom, int64_t) -> T`, `(remove_atom, T) -> ok_atom`,
/// `(index_atom, T) -> int64_t`, `(len_atom) -> int64_t`,
/// `(slice_atom, int64_t start, int64_t stop, int64_t step) -> std::vector<T>`
/// (`open_end` for an omitted bound), `(delete_atom, int64_t) -> ok_atom`,
/// `(count_atom, T) -> int64_t`, `(contains_atom, T) -> bool`,
/// `(reverse_atom) -> ok_atom`, `(sort_atom) -> ok_atom`,
/// `(snapshot_atom) -> std::vector<T>`.
///
/// **Shared memory.** None of its own: the items live in the owner's
/// process, and calls from other processes travel as messages through
/// the group's segment, which the group's nodes create and remove (see
/// `node`).
///
/// The handle is a value: copies talk to the same owner, and any thread may
/// use one concurrently.
template <class T>
class managed_list : public owner_handle {
public:
  /// The element type.
  using value_type = T;

  /// Spawns the owner of a list holding `init` in `sys` (this process).
  static managed_list make(caf::actor_system& sys, std::vector<T> init = {}) {
    return managed_list{detail::served_on_readers(
      caf::actor{sys.spawn(detail::managed_list_owner<T>, std::move(init))})};
  }

  /// An empty handle: every call fails with `troupe::errc::invalid_argument`.
  managed_list() = default;

  /// A handle to the owner `owner`, e.g. what `node::lookup` returned.
  explicit managed_list(caf::actor owner) : owner_handle(std::move(owner)) {}

  /// `l.append(x)`.
  caf::error append(const T& x, caf::timespan timeout = forever) const {
    return troupe::detail::call_ok(owner_, timeout, append_atom::value, x);
  }

  /// `l.extend(xs)`: appends all of `xs` in one step.
  caf::error extend(const std::vector<T>& xs, caf::timespan timeout = forever) const {
    return troupe::detail::call_ok(owner_, timeout, extend_atom::value, xs);
  }

  /// `l[i]`, or `errc::index_error`.
  [[nodiscard]] caf::expected<T> get(int64_t i, caf::timespan timeout = forever) const {
    return troupe::detail::ask<T>(owner_, timeout, caf::get_atom::value, i);
  }

  /// `l[i] = x`, or `errc::index_error`.
  caf::error set(int64_t i, const T& x, caf::timespan timeout = forever) const {
    return troupe::detail::call_ok(owner_, timeout, set_atom::value, i, x);
  }

  /// `l.insert(i, x)`.
  caf::error insert(int64_t i, const T& x, caf::timespan timeout = forever) const {
    return troupe::detail::call_ok(owner_, timeout, insert_atom::value, i, x);
  }

  /// `l.pop(i)` (the last item by default): removes and returns it, or
  /// `errc::index_error`.
  [[nodiscard]] caf::expected<T> pop(int64_t i = -1, caf::timespan timeout = forever) const {
    return troupe::detail::ask<T>(owner_, timeout, pop_atom::value, i);
  }

  /// `l.remove(x)`: removes the first item equal to `x`, or
  /// `errc::value_error`.
  caf::error remove(const T& x, caf::timespan timeout = forever) const {
    return troupe::detail::call_ok(owner_, timeout, remove_atom::value, x);
  }

  /// `l.index(x)`: the position of the first item equal to `x`, or
  /// `errc::value_error`.
  [[nodiscard]] caf::expected<int64_t> index(const T& x, caf::timespan timeout = forever) const {
    return troupe::detail::ask<int64_t>(owner_, timeout, index_atom::value, x);
  }

  /// `len(l)`.
  [[nodiscard]] caf::expected<int64_t> len(caf::timespan timeout = forever) const {
    return troupe::detail::ask<int64_t>(owner_, timeout, len_atom::value);
  }

  /// `l[start:stop:step]`: a copy of those items, Python's bounds and all
  /// (negative ones count from the end, `open_end` is an omitted bound, a
  /// negative step walks backwards); `errc::value_error` for step 0.
  [[nodiscard]] caf::expected<std::vector<T>> slice(int64_t start, int64_t stop, int64_t step = 1,
                                                    caf::timespan timeout = forever) const {
    return troupe::detail::ask<std::vector<T>>(owner_, timeout, slice_atom::value, start, stop,
                                               step);
  }

  /// `del l[i]`, or `errc::index_error`.
  caf::error erase(int64_t i, caf::timespan timeout = forever) const {
    return troupe::detail::call_ok(owner_, timeout, caf::delete_atom::value, i);
  }

  /// `l.count(x)`: how many items equal `x`.
  [[nodiscard]] caf::expected<int64_t> count(const T& x, caf::timespan timeout = forever) const {
    return troupe::detail::ask<int64_t>(owner_, timeout, count_atom::value, x);
  }

  /// `x in l`.
  [[nodiscard]] caf::expected<bool> contains(const T& x, caf::timespan timeout = forever) const {
    return troupe::detail::ask<bool>(owner_, timeout, contains_atom::value, x);
  }

  /// `l.reverse()`, in place.
  caf::error reverse(caf::timespan timeout = forever) const {
    return troupe::detail::call_ok(owner_, timeout, reverse_atom::value);
  }

  /// `l.sort()`: in place, ascending, stable (for `T` with `<` only: for any
  /// other `T` the call does not compile).
  template <class U = T, class = std::enable_if_t<detail::is_sortable<U>>>
  caf::error sort(caf::timespan timeout = forever) const {
    return troupe::detail::call_ok(owner_, timeout, sort_atom::value);
  }

  /// `list(l)`: a consistent copy of every item.
  [[nodiscard]] caf::expected<std::vector<T>> snapshot(caf::timespan timeout = forever) const {
    return troupe::detail::ask<std::vector<T>>(owner_, timeout, snapshot_atom::value);
  }
};

} // namespace troupe::ipc
