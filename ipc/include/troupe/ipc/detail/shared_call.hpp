#pragma once

/// @file
/// Internal (for templates; not part of the API): what the owners of the managed containers and
/// their handles share: Python-style index arithmetic, the texts of their errors, and running on
/// the readers. Their blocking calls are `troupe::detail::call`'s
/// (`troupe/detail/blocking_call.hpp`).

#include "troupe/detail/blocking_call.hpp"
#include "troupe/ipc/error.hpp"
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
