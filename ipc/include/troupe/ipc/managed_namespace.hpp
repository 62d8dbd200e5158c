#pragma once

/// @file
/// `troupe::ipc::managed_namespace`: named fields of any CAF message type, owned by one actor and
/// reachable from every process of a group (Python's `Manager().Namespace()`).

#include "troupe/ipc/detail/shared_call.hpp"
#include "troupe/ipc/error.hpp"
#include "troupe/ipc/managed_atoms.hpp"
#include "troupe/owner_handle.hpp"
#include "troupe/timeout.hpp"

#include <caf/all.hpp>

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace troupe::ipc {

namespace detail {

/// The state of a `managed_namespace`'s owner actor.
struct managed_namespace_state {
  /// The fields, by name, each value as a one-element message.
  std::map<std::string, caf::message> fields;
  /// The owner's actor name.
  static constexpr const char* name = "troupe.managed_namespace";
};

/// `errc::key_error` for the field `name`.
inline caf::error missing_field(const std::string& name) {
  return make_error(errc::key_error, "namespace has no field '" + name + "'");
}

/// The owner of a `managed_namespace`.
inline caf::behavior managed_namespace_owner(caf::stateful_actor<managed_namespace_state>* self) {
  answer_unexpected_with_type_error(self, "managed_namespace");
  return {
    [self](caf::get_atom, const std::string& name) -> caf::result<caf::message> {
      auto& fs = self->state.fields;
      auto i = fs.find(name);
      if (i == fs.end())
        return missing_field(name);
      return caf::make_message(caf::ok_atom::value, i->second);
    },
    [self](set_atom, std::string& name, caf::message& value) {
      self->state.fields.insert_or_assign(std::move(name), std::move(value));
      return caf::ok_atom::value;
    },
    [self](caf::delete_atom, const std::string& name) -> caf::result<caf::ok_atom> {
      if (self->state.fields.erase(name) == 0)
        return missing_field(name);
      return caf::ok_atom::value;
    },
    [self](contains_atom, const std::string& name) { return self->state.fields.count(name) > 0; },
    [self](keys_atom) {
      std::vector<std::string> names;
      for (auto& kv : self->state.fields)
        names.push_back(kv.first);
      return names;
    },
  };
}

} // namespace detail

/// A namespace shared by the processes of a group (Python's
/// `Manager().Namespace()`): named fields, each holding a value of any CAF
/// message type, owned by one actor and reached through this handle from
/// any thread of any process.
///
/// **Fields** are stored as a `caf::message` holding one value (or several:
/// `set_message` takes any message). `get<T>(name)` returns the value if
/// the field holds exactly one `T`, and `errc::type_error` (naming what it
/// holds) otherwise; a field that does not exist gives `errc::key_error`
/// (Python's `AttributeError`). The owner never looks inside a value, so
/// fields of different types mix freely; every type used must be a CAF
/// message type registered under the same name in every process that
/// reads, writes or hosts the namespace.
///
/// **Atomicity.** Every call is one step on the owner, in mailbox order;
/// there is no read-modify-write across calls (use a `managed_value` for a
/// counter).
///
/// **Processes.** `make` spawns the owner in the calling process; publish
/// `handle()` with `node::publish`, and other processes build a
/// `managed_namespace` from `node::lookup`. The owner lives until `stop()` (or, if
/// it never was published nor reached from another process, until the last
/// handle is gone). If the owner's process dies, calls fail with `troupe::errc::peer_lost`.
///
/// **Protocol**, for event-based actors:
/// `(set_atom, std::string, caf::message) -> ok_atom`,
/// `(get_atom, std::string) -> (ok_atom, caf::message)`,
/// `(delete_atom, std::string) -> ok_atom`,
/// `(contains_atom, std::string) -> bool`,
/// `(keys_atom) -> std::vector<std::string>` (sorted).
///
/// **Shared memory.** None of its own: the fields live in the owner's
/// process, and calls from other processes travel as messages through
/// the group's segment, which the group's nodes create and remove (see
/// `node`).
///
/// The handle is a value: copies talk to the same owner, and any thread may
/// use one concurrently.
class managed_namespace : public owner_handle {
public:
  /// Spawns an empty namespace's owner in `sys` (this process).
  static managed_namespace make(caf::actor_system& sys) {
    return managed_namespace{
      detail::served_on_readers(caf::actor{sys.spawn(detail::managed_namespace_owner)})};
  }

  /// An empty handle: every call fails with `troupe::errc::invalid_argument`.
  managed_namespace() = default;

  /// A handle to the owner `owner`, e.g. what `node::lookup` returned.
  explicit managed_namespace(caf::actor owner) : owner_handle(std::move(owner)) {}

  /// `ns.name = x`: the field `name` now holds `x` (of any type).
  template <class T>
  caf::error set(const std::string& name, T x, caf::timespan timeout = forever) const {
    return set_message(name, caf::make_message(std::move(x)), timeout);
  }

  /// Sets the field `name` to the message `value` as it is.
  caf::error set_message(const std::string& name, caf::message value,
                         caf::timespan timeout = forever) const {
    return troupe::detail::call_ok(owner_, timeout, set_atom::value, name, std::move(value));
  }

  /// `ns.name`, as a `T`: `errc::key_error` if there is no such field,
  /// `errc::type_error` if it holds something else.
  template <class T>
  [[nodiscard]] caf::expected<T> get(const std::string& name,
                                     caf::timespan timeout = forever) const {
    auto msg = get_message(name, timeout);
    if (!msg)
      return std::move(msg.error());
    if (!msg->match_elements<T>())
      return make_error(errc::type_error, "field '" + name + "' holds " + caf::to_string(*msg)
                                            + ", not the type asked for");
    return msg->get_as<T>(0);
  }

  /// The message the field `name` holds, or `errc::key_error`.
  [[nodiscard]] caf::expected<caf::message> get_message(const std::string& name,
                                                        caf::timespan timeout = forever) const {
    std::optional<caf::message> res;
    auto err = troupe::detail::call(
      owner_, timeout, [&](caf::ok_atom, caf::message& m) { res = std::move(m); },
      caf::get_atom::value, name);
    if (err)
      return err;
    return std::move(*res);
  }

  /// `del ns.name`, or `errc::key_error` if there is no such field.
  caf::error erase(const std::string& name, caf::timespan timeout = forever) const {
    return troupe::detail::call_ok(owner_, timeout, caf::delete_atom::value, name);
  }

  /// Whether the field `name` exists.
  [[nodiscard]] caf::expected<bool> contains(const std::string& name,
                                             caf::timespan timeout = forever) const {
    return troupe::detail::ask<bool>(owner_, timeout, contains_atom::value, name);
  }

  /// The names of all fields, sorted.
  [[nodiscard]] caf::expected<std::vector<std::string>>
  names(caf::timespan timeout = forever) const {
    return troupe::detail::ask<std::vector<std::string>>(owner_, timeout, keys_atom::value);
  }
};

} // namespace troupe::ipc
