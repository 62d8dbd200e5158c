#pragma once

/// @file
/// Internal (for templates; not part of the API): the blocking call every handle of both layers
/// makes on its owner, and the hooks through which a transport speeds up calls to owners in other
/// processes.

#include "troupe/error.hpp"
#include "troupe/owner_handle.hpp"
#include "troupe/timeout.hpp"

#include <caf/all.hpp>

#include <memory>
#include <optional>
#include <utility>

namespace troupe::detail {

/// A `scoped_actor` that a transport lends for one call to an owner of
/// another process, and takes back when destroyed unless `spoil`ed.
class lent_caller {
public:
  virtual ~lent_caller();

  /// The actor to make the call from.
  virtual caf::scoped_actor& self() noexcept = 0;

  /// The call was not answered: a late answer may still come, so the actor
  /// must not be lent again.
  virtual void spoil() noexcept = 0;
};

/// What a transport (troupe::ipc) installs so that blocking calls to owners
/// of other processes cost less: callers the owner's process knows already,
/// and a wait that reads the transport itself instead of waiting for
/// another thread to wake the caller.
struct remote_call_hooks {
  /// A caller for a call to `dest`, or null when `dest` is not the
  /// transport's (or, with `reusable` false, the caller would not come back).
  std::unique_ptr<lent_caller> (*lend)(const caf::actor& dest, bool reusable);
  /// Called after `self` sent a request to `dest`, before it receives.
  void (*await_answer)(caf::scoped_actor& self, const caf::actor& dest, caf::timespan timeout);
};

/// Installs `hooks` for every later call (once per process; the hooks must
/// live as long as the process).
void install_remote_call_hooks(const remote_call_hooks* hooks) noexcept;

/// The installed hooks, or null.
const remote_call_hooks* installed_remote_call_hooks() noexcept;

/// Sends `xs...` to `owner` through `self` and waits up to `timeout` (CAF's
/// request timeout; `forever` for none) for the answer, which goes to
/// `on_reply`. Returns CAF's error as it came.
template <class OnReply, class... Ts>
caf::error raw_call_through(caf::scoped_actor& self, const caf::actor& owner, caf::timespan timeout,
                            OnReply& on_reply, Ts&&... xs) {
  caf::error result;
  auto answer = self->request(owner, to_duration(timeout), std::forward<Ts>(xs)...);
  if (auto* hooks = installed_remote_call_hooks())
    hooks->await_answer(self, owner, timeout);
  answer.receive(on_reply, [&](caf::error& err) { result = std::move(err); });
  return result;
}

/// Sends `xs...` to `owner` through `self` and blocks until the answer,
/// which goes to `on_reply`; returns the error instead (normalized:
/// `errc::owner_down`, `errc::timeout`...), or `errc::invalid_argument` for
/// an empty owner. Calls with a deadline of their own carry it in their
/// message and pass `forever` here, so that the owner knows when the caller
/// gives up.
template <class OnReply, class... Ts>
caf::error call_through(caf::scoped_actor& self, const caf::actor& owner, caf::timespan timeout,
                        OnReply on_reply, Ts&&... xs) {
  if (!owner)
    return empty_handle_error();
  return normalize_request_error(
    raw_call_through(self, owner, timeout, on_reply, std::forward<Ts>(xs)...));
}

/// `call_through` from a caller of its own: one the transport lends for an
/// owner of another process, else a temporary `scoped_actor`.
template <class OnReply, class... Ts>
caf::error call(const caf::actor& owner, caf::timespan timeout, OnReply on_reply, Ts&&... xs) {
  if (!owner)
    return empty_handle_error();
  auto* hooks = installed_remote_call_hooks();
  if (auto lent = hooks != nullptr ? hooks->lend(owner, is_forever(timeout)) : nullptr) {
    auto err = raw_call_through(lent->self(), owner, timeout, on_reply, std::forward<Ts>(xs)...);
    if (err == caf::sec::request_timeout)
      lent->spoil();
    return normalize_request_error(std::move(err));
  }
  caf::scoped_actor self{owner->home_system()};
  return call_through(self, owner, timeout, std::move(on_reply), std::forward<Ts>(xs)...);
}

/// `call` for a call answered with `caf::ok_atom`.
template <class... Ts>
caf::error call_ok(const caf::actor& owner, caf::timespan timeout, Ts&&... xs) {
  return call(
    owner, timeout, [](caf::ok_atom) {}, std::forward<Ts>(xs)...);
}

/// `call_through` for a call answered with one value of type `T`.
template <class T, class... Ts>
caf::expected<T> ask_through(caf::scoped_actor& self, const caf::actor& owner,
                             caf::timespan timeout, Ts&&... xs) {
  std::optional<T> value;
  if (auto err = call_through(
        self, owner, timeout, [&](T& x) { value = std::move(x); }, std::forward<Ts>(xs)...))
    return err;
  return std::move(*value);
}

/// `call` for a call answered with one value of type `T`.
template <class T, class... Ts>
caf::expected<T> ask(const caf::actor& owner, caf::timespan timeout, Ts&&... xs) {
  std::optional<T> value;
  if (auto err = call(
        owner, timeout, [&](T& x) { value = std::move(x); }, std::forward<Ts>(xs)...))
    return err;
  return std::move(*value);
}

} // namespace troupe::detail
