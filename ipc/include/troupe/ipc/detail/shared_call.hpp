#pragma once

/// @file
/// Internal (for templates; not part of the API): blocking calls on the owner actor of a shared
/// container or primitive, and helpers of the owners.

// What the managed containers' handles and owners have in common: the blocking
// call, Python-style index arithmetic and the texts of their errors. Not for
// users: the containers' headers include it.

#include "troupe/error.hpp"
#include "troupe/owner_handle.hpp"
#include "troupe/timeout.hpp"

#include <caf/all.hpp>

#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace troupe::ipc::detail {

/// Timer message an owner sends itself when a waiting call's time is up.
using shared_expire_atom = caf::atom_constant<caf::atom("sh_expire")>;

/// The callers a node lends to blocking calls (defined in the ipc sources).
struct caller_pool;

/// After `self` sent a request to `dest`: if `dest` is an actor of another
/// process, reads the node's rings on this thread until something is in
/// `self`'s mailbox, for at most `group_options::spin` (or `timeout`, if
/// shorter), so that the answer needs no other thread of this process to
/// wake up. Then `self` receives as usual. Does nothing for a local `dest`.
void await_answer(caf::scoped_actor& self, const caf::actor& dest, caf::timespan timeout);

/// Makes the threads that read this process's rings always run `owner`
/// themselves when a message from another process makes it ready: first,
/// even while more input waits, and also on a blocking caller that reads
/// the rings. (Any other actor runs there only when no input waits, one per
/// turn, and goes to the scheduler once it proves slow.) Only for actors
/// whose handlers are short and never block: the owners of shared
/// containers and sync primitives.
void serve_on_readers(const caf::actor& owner);

/// `serve_on_readers(owner)`, returning `owner`.
inline caf::actor served_on_readers(caf::actor owner) {
  serve_on_readers(owner);
  return owner;
}

/// The `caf::scoped_actor` one blocking call is made from. For an owner in
/// another process of the group, callers are borrowed from a pool of the
/// local node and given back after an answered call: the owner's process
/// then knows the caller already, which saves a proxy and its lifetime
/// bookkeeping on both sides per call (most of a call's cost). A caller
/// whose call was not answered, or that waited with a finite timeout (CAF
/// then leaves a timer message behind), is not given back. For a local
/// owner a fresh `scoped_actor` is as cheap as a borrowed one.
class caller {
public:
  /// A caller for a call to `dest`; `reusable` is false for a call with a
  /// finite timeout.
  caller(const caf::actor& dest, bool reusable);
  ~caller();

  caller(const caller&) = delete;
  caller& operator=(const caller&) = delete;

  /// The actor to make the call from.
  caf::scoped_actor& operator*() noexcept {
    return *self_;
  }

  /// The call was not answered: a late answer may still come, so the actor
  /// is not reused.
  void spoil() noexcept {
    reusable_ = false;
  }

private:
  std::shared_ptr<caller_pool> pool_;
  std::unique_ptr<caf::scoped_actor> self_;
  bool reusable_;
  /// A call that ends by an exception may leave its answer to come.
  int uncaught_ = std::uncaught_exceptions();
};

/// Sends `xs...` to `owner` from a `caller` and waits up to `timeout` for
/// the answer, which goes to `on_reply`. Returns the error instead:
/// troupe's own (`errc::key_error`...), `errc::timeout`, `errc::owner_down`
/// (a local owner terminated) or `errc::peer_lost` (the owner's process
/// died).
template <class OnReply, class... Ts>
caf::error shared_call(const caf::actor& owner, caf::timespan timeout, OnReply on_reply,
                       Ts&&... xs) {
  if (!owner)
    return troupe::detail::empty_handle_error();
  caller self{owner, troupe::detail::is_forever(timeout)};
  caf::error result;
  auto answer =
    (*self)->request(owner, troupe::detail::to_duration(timeout), std::forward<Ts>(xs)...);
  await_answer(*self, owner, timeout);
  answer.receive(on_reply, [&](caf::error& err) {
    if (err == caf::sec::request_timeout)
      self.spoil();
    result = troupe::detail::normalize_request_error(std::move(err));
  });
  return result;
}

/// `shared_call` for a call answered with one value of type `T`.
template <class T, class... Ts>
caf::expected<T> shared_ask(const caf::actor& owner, caf::timespan timeout, Ts&&... xs) {
  std::optional<T> value;
  auto err = shared_call(
    owner, timeout, [&](T& x) { value = std::move(x); }, std::forward<Ts>(xs)...);
  if (err)
    return err;
  return std::move(*value);
}

/// `shared_call` for a call answered with `caf::ok_atom`.
template <class... Ts>
caf::error shared_do(const caf::actor& owner, caf::timespan timeout, Ts&&... xs) {
  return shared_call(
    owner, timeout, [](caf::ok_atom) {}, std::forward<Ts>(xs)...);
}

/// `x`'s value through `convert`, or `fallback` where `x` failed with
/// `missing` (a missing key: Python's `d.get(k, default)`); other errors
/// stay errors.
template <class R, class T, class Convert>
caf::expected<R> or_missing(caf::expected<T> x, errc missing, R fallback, Convert convert) {
  if (x)
    return convert(std::move(*x));
  if (is(x.error(), missing))
    return fallback;
  return std::move(x.error());
}

/// Renders a key or value for an error message, Python-style: strings in
/// single quotes, everything else as CAF prints it.
template <class T>
std::string repr(const T& x) {
  if constexpr (std::is_convertible_v<const T&, std::string>)
    return "'" + std::string{x} + "'";
  else
    return caf::deep_to_string(x);
}

/// The position of Python index `i` (negative counts from the end) in a
/// sequence of `n` items, or nothing if it is outside.
inline std::optional<size_t> python_index(int64_t i, size_t n) noexcept {
  auto size = static_cast<int64_t>(n);
  if (i < 0)
    i += size;
  if (i < 0 || i >= size)
    return std::nullopt;
  return static_cast<size_t>(i);
}

/// Clamps Python slice bound `i` to `[0, n]`, as `list[i:j]` and
/// `list.insert(i, x)` do.
inline size_t python_bound(int64_t i, size_t n) noexcept {
  auto size = static_cast<int64_t>(n);
  if (i < 0)
    i = std::max<int64_t>(0, i + size);
  return static_cast<size_t>(std::min(i, size));
}

/// The positions `l[start:stop:step]` takes from a sequence of `n` items,
/// in order, as Python computes them (`slice.indices`); `open_end` stands
/// for an omitted bound. `step` must not be 0.
inline std::vector<size_t> python_slice(int64_t start, int64_t stop, int64_t step, size_t n,
                                        int64_t open_end) {
  auto size = static_cast<int64_t>(n);
  // Bounds past either end clamp to just outside the walk (-1 when going
  // backwards, so that index 0 is still taken).
  auto adjust = [&](int64_t i, int64_t if_open) {
    if (i == open_end)
      return if_open;
    if (i < 0) {
      i += size;
      if (i < 0)
        return step < 0 ? int64_t{-1} : int64_t{0};
    } else if (i >= size) {
      return step < 0 ? size - 1 : size;
    }
    return i;
  };
  auto first = adjust(start, step < 0 ? size - 1 : 0);
  auto last = adjust(stop, step < 0 ? -1 : size);
  std::vector<size_t> res;
  for (auto i = first; step > 0 ? i < last : i > last; i += step)
    res.push_back(static_cast<size_t>(i));
  return res;
}

/// Makes `self` answer a message it has no handler for with
/// `errc::type_error` (usually a handle of other element types than the
/// owner's), instead of CAF's `unexpected_message`.
template <class Self>
void answer_unexpected_with_type_error(Self* self, const char* what) {
  self->set_default_handler(
    [what](caf::scheduled_actor*, caf::message_view& x) -> caf::result<caf::message> {
      return make_error(errc::type_error, std::string{what} + " cannot handle "
                                            + caf::to_string(x.content())
                                            + " (do both sides use the same element types?)");
    });
}

} // namespace troupe::ipc::detail
