#pragma once

/// @file
/// `troupe::ipc::shared_dict<K, V>`: a dict owned by one actor and reachable from every process of
/// a group (Python's `Manager().dict()`).

#include "troupe/error.hpp"
#include "troupe/ipc/detail/shared_call.hpp"
#include "troupe/ipc/shared_atoms.hpp"
#include "troupe/timeout.hpp"

#include <caf/all.hpp>

#include <cstdint>
#include <map>
#include <tuple>
#include <utility>
#include <vector>

namespace troupe::ipc {

namespace detail {

/// The state of a `shared_dict<K, V>`'s owner actor.
template <class K, class V>
struct shared_dict_state {
  /// The items, by key.
  std::map<K, V> data;
  /// The owner's actor name.
  static constexpr const char* name = "troupe.shared_dict";
};

/// `errc::key_error` for the key `k`.
template <class K>
caf::error missing_key(const K& k) {
  return make_error(errc::key_error, "key " + repr(k) + " is not in the dict");
}

/// The owner of a `shared_dict<K, V>`.
template <class K, class V>
caf::behavior shared_dict_owner(caf::stateful_actor<shared_dict_state<K, V>>* self) {
  answer_unexpected_with_type_error(self, "shared_dict");
  return {
    [self](caf::get_atom, const K& k) -> caf::result<V> {
      auto& d = self->state.data;
      auto i = d.find(k);
      if (i == d.end())
        return missing_key(k);
      return i->second;
    },
    [self](set_atom, K& k, V& v) {
      self->state.data.insert_or_assign(std::move(k), std::move(v));
      return caf::ok_atom::value;
    },
    [self](setdefault_atom, K& k, V& v) -> V {
      return self->state.data.try_emplace(std::move(k), std::move(v)).first->second;
    },
    [self](pop_atom, const K& k) -> caf::result<V> {
      auto& d = self->state.data;
      auto i = d.find(k);
      if (i == d.end())
        return missing_key(k);
      auto v = std::move(i->second);
      d.erase(i);
      return v;
    },
    [self](caf::update_atom, std::vector<K>& ks, std::vector<V>& vs) -> caf::result<caf::ok_atom> {
      if (ks.size() != vs.size())
        return make_error(errc::invalid_argument, "update: as many keys as values, please");
      for (size_t i = 0; i < ks.size(); ++i)
        self->state.data.insert_or_assign(std::move(ks[i]), std::move(vs[i]));
      return caf::ok_atom::value;
    },
    [self](keys_atom) {
      std::vector<K> ks;
      ks.reserve(self->state.data.size());
      for (auto& kv : self->state.data)
        ks.push_back(kv.first);
      return ks;
    },
    [self](items_atom) {
      std::vector<K> ks;
      std::vector<V> vs;
      ks.reserve(self->state.data.size());
      vs.reserve(self->state.data.size());
      for (auto& kv : self->state.data) {
        ks.push_back(kv.first);
        vs.push_back(kv.second);
      }
      return std::make_tuple(std::move(ks), std::move(vs));
    },
    [self](len_atom) { return static_cast<int64_t>(self->state.data.size()); },
    [self](contains_atom, const K& k) { return self->state.data.count(k) > 0; },
    [self](clear_atom) {
      self->state.data.clear();
      return caf::ok_atom::value;
    },
  };
}

} // namespace detail

/// A dict shared by the processes of a group (Python's `Manager().dict()`):
/// a `std::map<K, V>` owned by one actor, reached through this handle from
/// any thread of any process.
///
/// **Atomicity.** Every member function is one message to the owner and
/// runs there as one step, in mailbox order: `setdefault`, `pop` and
/// `update` are atomic read-modify-writes, and no two calls interleave.
/// Calls made from one thread keep their order.
///
/// **Processes.** `make` spawns the owner in the calling process; publish
/// `handle()` with `node::publish`, and other processes build a
/// `shared_dict` from `node::lookup`. `K`, `V`, `std::vector<K>` and
/// `std::vector<V>` must be CAF message types, registered under the same
/// names in every process (`add_shared_types` does it for the common ones).
/// The owner lives until `stop()` (or, if it never was published nor
/// reached from another process, until the last handle is gone). If the owner's process dies, calls
/// fail with `errc::peer_lost`; if a local owner is gone, with `errc::owner_down`.
///
/// **Errors.** A missing key gives `errc::key_error` (like `KeyError`);
/// a handle of other element types than the owner's gets `errc::type_error`;
/// a call that is not answered within `timeout` gets `errc::timeout`.
///
/// **Protocol**, for event-based actors (`request(dict, ...).then(...)`):
/// `(get_atom, K) -> V`, `(set_atom, K, V) -> ok_atom`,
/// `(setdefault_atom, K, V) -> V`, `(pop_atom, K) -> V`,
/// `(update_atom, std::vector<K>, std::vector<V>) -> ok_atom`,
/// `(keys_atom) -> std::vector<K>`,
/// `(items_atom) -> (std::vector<K>, std::vector<V>)`,
/// `(len_atom) -> int64_t`, `(contains_atom, K) -> bool`,
/// `(clear_atom) -> ok_atom`. Keys come in sorted order.
///
/// **Shared memory.** None of its own: the items live in the owner's
/// process, and calls from other processes travel as messages through
/// the group's segment, which the group's nodes create and remove (see
/// `node`).
///
/// The handle is a value: copies talk to the same owner, and any thread may
/// use one concurrently (each blocking call uses a caller actor of its own, see `detail::caller`).
template <class K, class V>
class shared_dict {
public:
  /// The key type.
  using key_type = K;
  /// The value type.
  using mapped_type = V;

  /// Spawns an empty dict's owner in `sys` (this process).
  static shared_dict make(caf::actor_system& sys) {
    return shared_dict{
      detail::served_on_readers(caf::actor{sys.spawn(detail::shared_dict_owner<K, V>)})};
  }

  /// An empty handle: every call fails with `errc::invalid_argument`.
  shared_dict() = default;

  /// A handle to the owner `owner`, e.g. what `node::lookup` returned.
  explicit shared_dict(caf::actor owner) : owner_(std::move(owner)) {}

  /// The owner, to publish or to talk to with the protocol.
  [[nodiscard]] const caf::actor& handle() const noexcept {
    return owner_;
  }

  /// Tells the owner to exit (from any thread or process); later calls fail
  /// with `errc::owner_down` (or `errc::peer_lost`). An owner that was
  /// published or reached from another process is kept by the actor
  /// system's registry, as every actor exported through CAF's network
  /// layer is, so it lives until it is stopped: stop it before the actor
  /// system shuts down, which waits for it.
  void stop() const {
    if (owner_)
      caf::anon_send_exit(owner_, caf::exit_reason::user_shutdown);
  }

  /// `d[k]`: the value of `k`, or `errc::key_error`.
  [[nodiscard]] caf::expected<V> get(const K& k, caf::timespan timeout = forever) const {
    return detail::shared_ask<V>(owner_, timeout, caf::get_atom::value, k);
  }

  /// `d[k] = v`.
  caf::error set(const K& k, const V& v, caf::timespan timeout = forever) const {
    return detail::shared_do(owner_, timeout, set_atom::value, k, v);
  }

  /// `d.setdefault(k, v)`: inserts `v` if `k` is missing; returns the value
  /// `k` has afterwards. Atomic.
  [[nodiscard]] caf::expected<V> setdefault(const K& k, const V& v,
                                            caf::timespan timeout = forever) const {
    return detail::shared_ask<V>(owner_, timeout, setdefault_atom::value, k, v);
  }

  /// `d.pop(k)`: removes `k` and returns its value, or `errc::key_error`.
  [[nodiscard]] caf::expected<V> pop(const K& k, caf::timespan timeout = forever) const {
    return detail::shared_ask<V>(owner_, timeout, pop_atom::value, k);
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
    return detail::shared_do(owner_, timeout, caf::update_atom::value, std::move(ks),
                             std::move(vs));
  }

  /// `list(d.keys())`, in sorted order.
  [[nodiscard]] caf::expected<std::vector<K>> keys(caf::timespan timeout = forever) const {
    return detail::shared_ask<std::vector<K>>(owner_, timeout, keys_atom::value);
  }

  /// `list(d.items())`, in sorted order of the keys: one consistent snapshot.
  [[nodiscard]] caf::expected<std::vector<std::pair<K, V>>>
  items(caf::timespan timeout = forever) const {
    std::vector<std::pair<K, V>> res;
    auto err = detail::shared_call(
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
    return detail::shared_ask<int64_t>(owner_, timeout, len_atom::value);
  }

  /// `k in d`.
  [[nodiscard]] caf::expected<bool> contains(const K& k, caf::timespan timeout = forever) const {
    return detail::shared_ask<bool>(owner_, timeout, contains_atom::value, k);
  }

  /// `d.clear()`.
  caf::error clear(caf::timespan timeout = forever) const {
    return detail::shared_do(owner_, timeout, clear_atom::value);
  }

private:
  caf::actor owner_;
};

} // namespace troupe::ipc
