#pragma once

/// @file
/// `troupe::ipc::managed_dict<K, V>`: a dict owned by one actor and reachable from every process of
/// a group (Python's `Manager().dict()`).

#include "troupe/ipc/detail/shared_call.hpp"
#include "troupe/ipc/error.hpp"
#include "troupe/ipc/managed_atoms.hpp"
#include "troupe/owner_handle.hpp"
#include "troupe/timeout.hpp"

#include <caf/all.hpp>

#include <cstdint>
#include <list>
#include <map>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

namespace troupe::ipc {

namespace detail {

/// The state of a `managed_dict<K, V>`'s owner actor: the items in the order
/// their keys were first inserted (as Python's dict keeps them), and an
/// index by key.
template <class K, class V>
struct managed_dict_state {
  using item_list = std::list<std::pair<K, V>>;
  /// The items, oldest key first.
  item_list items;
  /// Where each key's item is in `items`.
  std::map<K, typename item_list::iterator> index;
  /// The owner's actor name.
  static constexpr const char* name = "troupe.managed_dict";

  /// The item of `k`, or null.
  std::pair<K, V>* find(const K& k) {
    auto i = index.find(k);
    return i == index.end() ? nullptr : &*i->second;
  }

  /// `d[k] = v`: a new key goes last, an existing one keeps its place.
  void assign(K k, V v) {
    if (auto* item = find(k)) {
      item->second = std::move(v);
      return;
    }
    items.emplace_back(k, std::move(v));
    index.emplace(std::move(k), std::prev(items.end()));
  }

  /// Removes `k`'s item and returns its value; `k` must be there.
  V take(const K& k) {
    auto i = index.find(k);
    auto v = std::move(i->second->second);
    items.erase(i->second);
    index.erase(i);
    return v;
  }
};

/// `errc::key_error` for the key `k`.
template <class K>
caf::error missing_key(const K& k) {
  return make_error(errc::key_error, "key " + repr(k) + " is not in the dict");
}

/// The owner of a `managed_dict<K, V>`.
template <class K, class V>
caf::behavior managed_dict_owner(caf::stateful_actor<managed_dict_state<K, V>>* self) {
  answer_unexpected_with_type_error(self, "managed_dict");
  auto& st = self->state;
  return {
    [&st](caf::get_atom, const K& k) -> caf::result<V> {
      if (auto* item = st.find(k))
        return item->second;
      return missing_key(k);
    },
    [&st](set_atom, K& k, V& v) {
      st.assign(std::move(k), std::move(v));
      return caf::ok_atom::value;
    },
    [&st](setdefault_atom, K& k, V& v) -> V {
      if (auto* item = st.find(k))
        return item->second;
      st.assign(k, v);
      return v;
    },
    [&st](pop_atom, const K& k) -> caf::result<V> {
      if (!st.find(k))
        return missing_key(k);
      return st.take(k);
    },
    [&st](caf::delete_atom, const K& k) -> caf::result<caf::ok_atom> {
      if (!st.find(k))
        return missing_key(k);
      st.take(k);
      return caf::ok_atom::value;
    },
    [&st](popitem_atom) -> caf::result<K, V> {
      if (st.items.empty())
        return make_error(errc::key_error, "popitem(): dictionary is empty");
      auto k = st.items.back().first;
      auto v = st.take(k);
      return {std::move(k), std::move(v)};
    },
    [&st](caf::update_atom, std::vector<K>& ks, std::vector<V>& vs) -> caf::result<caf::ok_atom> {
      if (ks.size() != vs.size())
        return make_error(troupe::errc::invalid_argument, "update: as many keys as values, please");
      for (size_t i = 0; i < ks.size(); ++i)
        st.assign(std::move(ks[i]), std::move(vs[i]));
      return caf::ok_atom::value;
    },
    [&st](keys_atom) {
      std::vector<K> ks;
      ks.reserve(st.items.size());
      for (auto& kv : st.items)
        ks.push_back(kv.first);
      return ks;
    },
    [&st](values_atom) {
      std::vector<V> vs;
      vs.reserve(st.items.size());
      for (auto& kv : st.items)
        vs.push_back(kv.second);
      return vs;
    },
    [&st](items_atom) {
      std::vector<K> ks;
      std::vector<V> vs;
      ks.reserve(st.items.size());
      vs.reserve(st.items.size());
      for (auto& kv : st.items) {
        ks.push_back(kv.first);
        vs.push_back(kv.second);
      }
      return std::make_tuple(std::move(ks), std::move(vs));
    },
    [&st](len_atom) { return static_cast<int64_t>(st.items.size()); },
    [&st](contains_atom, const K& k) { return st.find(k) != nullptr; },
    [&st](clear_atom) {
      st.index.clear();
      st.items.clear();
      return caf::ok_atom::value;
    },
  };
}

} // namespace detail

/// A dict shared by the processes of a group (Python's `Manager().dict()`):
/// its items are owned by one actor and reached through this handle from
/// any thread of any process.
///
/// **As in Python**, name for name: `at` is `d[k]` (C++ has no `[]` that
/// can fail as a value), `get` is `d.get(k[, default])`, `erase` is
/// `del d[k]`; keys keep the order they were first inserted in (`keys`,
/// `values`, `items`, `popitem` from the end). Where it differs: `copy`
/// and `items` give a `std::vector` of pairs (a plain copy, as the
/// proxy's `copy()` gives a plain dict); keys and values have one C++ type
/// each.
///
/// **Atomicity.** Every member function is one message to the owner and
/// runs there as one step, in mailbox order: `setdefault`, `pop`, `popitem`
/// and `update` are atomic read-modify-writes, and no two calls interleave.
/// Calls made from one thread keep their order.
///
/// **Processes.** `make` spawns the owner in the calling process; publish
/// `handle()` with `node::publish`, and other processes build a
/// `managed_dict` from `node::lookup`. `K`, `V`, `std::vector<K>` and
/// `std::vector<V>` must be CAF message types, registered under the same
/// names in every process (`add_managed_types` does it for the common ones).
/// The owner lives until `stop()` (or, if it never was published nor
/// reached from another process, until the last handle is gone). If the owner's process dies, calls
/// fail with `troupe::errc::peer_lost`; if a local owner is gone, with `troupe::errc::owner_down`.
///
/// **Errors.** A missing key gives `errc::key_error` (like `KeyError`) from
/// `at`, `pop` without a default, `erase`, and `popitem` on an empty dict;
/// a handle of other element types than the owner's gets `errc::type_error`;
/// a call that is not answered within `timeout` gets `troupe::errc::timeout`.
///
/// **Protocol**, for event-based actors (`request(dict, ...).then(...)`):
/// `(get_atom, K) -> V` (`d[k]`), `(set_atom, K, V) -> ok_atom`,
/// `(setdefault_atom, K, V) -> V`, `(pop_atom, K) -> V`,
/// `(delete_atom, K) -> ok_atom`, `(popitem_atom) -> (K, V)`,
/// `(update_atom, std::vector<K>, std::vector<V>) -> ok_atom`,
/// `(keys_atom) -> std::vector<K>`, `(values_atom) -> std::vector<V>`,
/// `(items_atom) -> (std::vector<K>, std::vector<V>)`,
/// `(len_atom) -> int64_t`, `(contains_atom, K) -> bool`,
/// `(clear_atom) -> ok_atom`. Keys come in insertion order.
///
/// **Shared memory.** None of its own: the items live in the owner's
/// process, and calls from other processes travel as messages through
/// the group's segment, which the group's nodes create and remove (see
/// `node`).
///
/// The handle is a value: copies talk to the same owner, and any thread may
/// use one concurrently (each blocking call uses a caller actor of its own, see
/// `troupe::detail::call`).
template <class K, class V>
class managed_dict : public owner_handle {
public:
  /// The key type.
  using key_type = K;
  /// The value type.
  using mapped_type = V;

  /// Spawns an empty dict's owner in `sys` (this process).
  static managed_dict make(caf::actor_system& sys) {
    return managed_dict{
      detail::served_on_readers(caf::actor{sys.spawn(detail::managed_dict_owner<K, V>)})};
  }

  /// An empty handle: every call fails with `troupe::errc::invalid_argument`.
  managed_dict() = default;

  /// A handle to the owner `owner`, e.g. what `node::lookup` returned.
  explicit managed_dict(caf::actor owner) : owner_handle(std::move(owner)) {}

  /// `d[k]`: the value of `k`, or `errc::key_error`.
  [[nodiscard]] caf::expected<V> at(const K& k, caf::timespan timeout = forever) const {
    return troupe::detail::ask<V>(owner_, timeout, caf::get_atom::value, k);
  }

  /// `d.get(k)`: the value of `k`, or nothing (Python's `None`) if `k` is
  /// missing; never `errc::key_error`.
  [[nodiscard]] caf::expected<std::optional<V>> get(const K& k,
                                                    caf::timespan timeout = forever) const {
    return detail::or_missing(at(k, timeout), errc::key_error, std::optional<V>{},
                              [](V&& v) { return std::optional<V>{std::move(v)}; });
  }

  /// `d.get(k, fallback)`: the value of `k`, or `fallback` if `k` is missing.
  [[nodiscard]] caf::expected<V> get(const K& k, const V& fallback,
                                     caf::timespan timeout = forever) const {
    return detail::or_missing(at(k, timeout), errc::key_error, fallback,
                              [](V&& v) { return std::move(v); });
  }

  /// `d[k] = v`.
  caf::error set(const K& k, const V& v, caf::timespan timeout = forever) const {
    return troupe::detail::call_ok(owner_, timeout, set_atom::value, k, v);
  }

  /// `d.setdefault(k, v)`: inserts `v` if `k` is missing; returns the value
  /// `k` has afterwards. Atomic.
  [[nodiscard]] caf::expected<V> setdefault(const K& k, const V& v,
                                            caf::timespan timeout = forever) const {
    return troupe::detail::ask<V>(owner_, timeout, setdefault_atom::value, k, v);
  }

  /// `d.pop(k)`: removes `k` and returns its value, or `errc::key_error`.
  [[nodiscard]] caf::expected<V> pop(const K& k, caf::timespan timeout = forever) const {
    return troupe::detail::ask<V>(owner_, timeout, pop_atom::value, k);
  }

  /// `d.pop(k, fallback)`: removes `k` and returns its value, or `fallback`
  /// if `k` is missing.
  [[nodiscard]] caf::expected<V> pop(const K& k, const V& fallback,
                                     caf::timespan timeout = forever) const {
    return detail::or_missing(pop(k, timeout), errc::key_error, fallback,
                              [](V&& v) { return std::move(v); });
  }

  /// `del d[k]`: removes `k`, or `errc::key_error`.
  caf::error erase(const K& k, caf::timespan timeout = forever) const {
    return troupe::detail::call_ok(owner_, timeout, caf::delete_atom::value, k);
  }

  /// `d.popitem()`: removes and returns the newest item, or
  /// `errc::key_error` if the dict is empty.
  [[nodiscard]] caf::expected<std::pair<K, V>> popitem(caf::timespan timeout = forever) const {
    std::pair<K, V> res;
    auto err = troupe::detail::call(
      owner_, timeout,
      [&](K& k, V& v) {
        res = {std::move(k), std::move(v)};
      },
      popitem_atom::value);
    if (err)
      return err;
    return res;
  }

  /// `d.update(items)`: sets every pair, all in one step (no call of another
  /// thread or process sees half of them).
  caf::error update(const std::vector<std::pair<K, V>>& items,
                    caf::timespan timeout = forever) const {
    std::vector<K> ks;
    std::vector<V> vs;
    ks.reserve(items.size());
    vs.reserve(items.size());
    for (auto& kv : items) {
      ks.push_back(kv.first);
      vs.push_back(kv.second);
    }
    return troupe::detail::call_ok(owner_, timeout, caf::update_atom::value, std::move(ks),
                                   std::move(vs));
  }

  /// `list(d.keys())`, in insertion order.
  [[nodiscard]] caf::expected<std::vector<K>> keys(caf::timespan timeout = forever) const {
    return troupe::detail::ask<std::vector<K>>(owner_, timeout, keys_atom::value);
  }

  /// `list(d.values())`, in the insertion order of their keys.
  [[nodiscard]] caf::expected<std::vector<V>> values(caf::timespan timeout = forever) const {
    return troupe::detail::ask<std::vector<V>>(owner_, timeout, values_atom::value);
  }

  /// `d.copy()`: a plain copy of the items, in insertion order (what
  /// `items` gives).
  [[nodiscard]] caf::expected<std::vector<std::pair<K, V>>>
  copy(caf::timespan timeout = forever) const {
    return items(timeout);
  }

  /// `list(d.items())`, in insertion order: one consistent snapshot.
  [[nodiscard]] caf::expected<std::vector<std::pair<K, V>>>
  items(caf::timespan timeout = forever) const {
    std::vector<std::pair<K, V>> res;
    auto err = troupe::detail::call(
      owner_, timeout,
      [&](std::vector<K>& ks, std::vector<V>& vs) {
        res.reserve(ks.size());
        for (size_t i = 0; i < ks.size() && i < vs.size(); ++i)
          res.emplace_back(std::move(ks[i]), std::move(vs[i]));
      },
      items_atom::value);
    if (err)
      return err;
    return res;
  }

  /// `len(d)`.
  [[nodiscard]] caf::expected<int64_t> len(caf::timespan timeout = forever) const {
    return troupe::detail::ask<int64_t>(owner_, timeout, len_atom::value);
  }

  /// `k in d`.
  [[nodiscard]] caf::expected<bool> contains(const K& k, caf::timespan timeout = forever) const {
    return troupe::detail::ask<bool>(owner_, timeout, contains_atom::value, k);
  }

  /// `d.clear()`.
  caf::error clear(caf::timespan timeout = forever) const {
    return troupe::detail::call_ok(owner_, timeout, clear_atom::value);
  }
};

} // namespace troupe::ipc
