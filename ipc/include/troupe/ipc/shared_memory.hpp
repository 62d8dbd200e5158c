#pragma once

/// @file
/// `troupe::ipc::shared_value<T>` and `shared_array<T>`, sharedctypes for troupe: a value or an
/// array of a trivially copyable type whose data live in shared memory, with a lock that survives
/// the death of its holder and a lock-free fast path for integers (Python's
/// `multiprocessing.Value` and `Array`).

#include "troupe/ipc/error.hpp"
#include "troupe/ipc/node.hpp"
#include "troupe/timeout.hpp"

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/span.hpp>
#include <caf/timespan.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace troupe::ipc {

namespace detail {

/// What a block holds, as checked by `open`.
struct shm_type {
  /// `sizeof` the type.
  uint64_t size;
  /// `alignof` the type.
  uint64_t align;
  /// A hash of the type's (mangled) name, so that an `int64_t` is not opened
  /// as a `uint64_t` or a struct of the same size.
  uint64_t tag;
  /// The type's mangled name (for error messages).
  const char* name;
};

/// FNV-1a of a string.
constexpr uint64_t fnv1a(const char* s) noexcept {
  uint64_t h = 0xcbf29ce484222325ull;
  for (; *s != '\0'; ++s) {
    h ^= static_cast<unsigned char>(*s);
    h *= 0x100000001b3ull;
  }
  return h;
}

/// Whether `T` gets the lock-free fast path: a non-bool integer whose
/// `std::atomic` is always lock-free (hence address-free, so it works across
/// processes) and laid out as a plain `T`.
template <class T>
constexpr bool has_fast_path_v =
  std::is_integral_v<T> && !std::is_same_v<T, bool> && std::atomic<T>::is_always_lock_free
  && sizeof(std::atomic<T>) == sizeof(T) && alignof(std::atomic<T>) == alignof(T);

/// What a block of `T` holds.
template <class T>
shm_type shm_type_of() {
  return {sizeof(T), alignof(T), fnv1a(typeid(T).name()), typeid(T).name()};
}

/// The kind of block, so that a value is not opened as an array.
enum class shm_kind : uint32_t {
  value = 1, ///< a `shared_value`
  array = 2, ///< a `shared_array`
};

/// One shared-memory object `/dev/shm/troupe.<group>.v.<name>`: a header (magic,
/// type, creator, a robust process-shared mutex) followed by `count` elements.
/// The non-template part of `shared_value` and `shared_array`. Move-only; the
/// creator's block removes the name when destroyed (see `shared_value`).
class shm_block {
public:
  /// No block.
  shm_block() noexcept;
  /// Takes over `other`'s mapping (and its duty to remove the name).
  shm_block(shm_block&&) noexcept;
  /// Removes the name if this block created it (as the destructor does),
  /// then takes over `other`'s.
  shm_block& operator=(shm_block&&) noexcept;
  shm_block(const shm_block&) = delete;
  shm_block& operator=(const shm_block&) = delete;
  ~shm_block();

  /// Creates the object (create_only, mode 0600), runs `init` on its data
  /// (zeroed, `count * type.size` bytes) and then marks it ready. A leftover
  /// of a creator that died is swept first.
  [[nodiscard]] static caf::expected<shm_block> create(const node& n, const std::string& name,
                                                       shm_kind kind, const shm_type& type,
                                                       uint64_t count,
                                                       const std::function<void(void*)>& init);

  /// Opens an existing object and checks owner, mode, magic, kind and type.
  [[nodiscard]] static caf::expected<shm_block> open(const node& n, const std::string& name,
                                                     shm_kind kind, const shm_type& type);

  /// Removes the name of `troupe.<group>.v.<name>`, whoever created it.
  [[nodiscard]] static caf::error remove(const node& n, const std::string& name);

  /// The first element, in this process's mapping.
  void* data() const noexcept;
  /// The number of elements.
  uint64_t count() const noexcept;
  /// Whether this block created the object (and so removes its name).
  bool creator() const noexcept;
  /// The value's name (without the group).
  const std::string& name() const noexcept;

  /// Takes the robust lock, waiting at most `timeout`. Returns whether the
  /// previous holder died holding it (the lock is then made consistent).
  /// Fails with `troupe::errc::timeout`, or `troupe::errc::would_deadlock` if this thread
  /// holds it already.
  [[nodiscard]] caf::expected<bool> lock(caf::timespan timeout) const;
  /// Releases the robust lock (held by this thread).
  void unlock() const noexcept;

  /// Removes the name now (the creator's destructor does it too).
  [[nodiscard]] caf::error remove();

  /// Defined in shared_memory.cpp.
  struct impl;

private:
  /// What the destructor does: `remove` if this handle created the block.
  void remove_if_creator() noexcept;

  std::unique_ptr<impl> impl_;
};

/// Unlocks a `shm_block` when it goes out of scope.
class shm_unlock {
public:
  /// Unlocks `b` at the end of the scope; `b` must be locked.
  explicit shm_unlock(const shm_block& b) noexcept : block_(b) {}
  shm_unlock(const shm_unlock&) = delete;
  shm_unlock& operator=(const shm_unlock&) = delete;
  ~shm_unlock() {
    block_.unlock();
  }

private:
  const shm_block& block_;
};

/// `troupe::errc::invalid_argument` for `index` of the array `name` of `size` elements.
caf::error out_of_range(const std::string& name, uint64_t index, uint64_t size);

} // namespace detail

/// A value of type `T` in shared memory that every process of a group can
/// read and write: Python's `multiprocessing.Value`.
///
/// **Memory.** The value lives in its own shared-memory object,
/// `/dev/shm/troupe.<group>.v.<name>` (mode 0600), apart from the group's
/// segment. One process makes it with `create`; others of the same group
/// find it with `open` (which checks the owner, the mode, and that it holds a
/// value of the very same `T`: a different type is an error, not a
/// reinterpretation).
///
/// **Who removes it.** The creator: its `shared_value` removes the name when
/// destroyed (or at `remove()`). Processes that opened it keep their mapping
/// and can go on using it, but nobody can `open` it any more. If the creator
/// is killed, the name stays until `create` of the same name sweeps it (the
/// header records the creator's pid and start time) or someone calls
/// `remove(node, name)`. There is deliberately no reference count of users:
/// a process killed with SIGKILL never decrements it, so it would leak or
/// lie.
///
/// **Concurrency.** For a non-bool integer `T` (see `fast_path`), `get`,
/// `set`, `add`, `fetch_add` and `compare_and_set` are lock-free atomic
/// operations (sequentially consistent) across threads and processes, and
/// never wait for the lock. For other types, `get` and `set` take the lock.
/// The lock is a robust, process-shared pthread mutex: if its holder dies
/// (even by SIGKILL), the next process to take it gets it, and `with_lock`
/// tells it that the previous holder died, so it knows the value may be
/// half-updated. A holder that is only stopped (SIGSTOP) still holds it.
///
/// One `shared_value` object may be used from several threads at once.
template <class T>
class shared_value {
public:
  static_assert(std::is_trivially_copyable_v<T>, "shared memory holds trivially copyable types");

  /// Whether `T` has the lock-free fast path (`add`, `fetch_add`,
  /// `compare_and_set`, and lock-free `get` and `set`).
  static constexpr bool fast_path = detail::has_fast_path_v<T>;

  /// Makes the value `name` of `n`'s group (1 to 64 characters of
  /// `[A-Za-z0-9_.-]`), initialized to `initial`. Fails with
  /// `troupe::errc::invalid_argument` for a bad name and `errc::name_taken` if a
  /// value of that name exists and its creator runs (one whose creator died
  /// is swept and made anew). This process then owns the name: see the class
  /// comment.
  [[nodiscard]] static caf::expected<shared_value> create(const node& n, const std::string& name,
                                                          const T& initial = T{}) {
    auto block =
      detail::shm_block::create(n, name, detail::shm_kind::value, detail::shm_type_of<T>(), 1,
                                [&](void* data) { std::memcpy(data, &initial, sizeof(T)); });
    if (!block)
      return std::move(block.error());
    return shared_value{std::move(*block)};
  }

  /// Opens the value `name` that a process of `n`'s group created. Fails with
  /// `errc::name_not_found` if there is none, and `errc::bad_segment` if it is
  /// not the caller's, is readable by others, or holds another type or an
  /// array.
  [[nodiscard]] static caf::expected<shared_value> open(const node& n, const std::string& name) {
    auto block =
      detail::shm_block::open(n, name, detail::shm_kind::value, detail::shm_type_of<T>());
    if (!block)
      return std::move(block.error());
    return shared_value{std::move(*block)};
  }

  /// Removes the name of the value `name` of `n`'s group, whoever made it
  /// (for leftovers of a creator that was killed). Mappings stay valid.
  [[nodiscard]] static caf::error remove(const node& n, const std::string& name) {
    return detail::shm_block::remove(n, name);
  }

  /// Reads the value: an atomic load on the fast path, else a copy taken
  /// under the lock (which fails with `troupe::errc::would_deadlock` when called from
  /// inside `with_lock` on the same thread).
  [[nodiscard]] caf::expected<T> get() const {
    if constexpr (fast_path) {
      return slot()->load();
    } else {
      auto res = block_.lock(forever);
      if (!res)
        return std::move(res.error());
      detail::shm_unlock guard{block_};
      T x;
      std::memcpy(&x, block_.data(), sizeof(T));
      return x;
    }
  }

  /// Writes the value: an atomic store on the fast path, else under the lock.
  [[nodiscard]] caf::error set(const T& x) {
    if constexpr (fast_path) {
      slot()->store(x);
      return caf::none;
    } else {
      auto res = block_.lock(forever);
      if (!res)
        return std::move(res.error());
      detail::shm_unlock guard{block_};
      std::memcpy(block_.data(), &x, sizeof(T));
      return caf::none;
    }
  }

  /// Adds `delta` atomically, without the lock; returns the new value
  /// (integers wrap as `std::atomic` does).
  template <class U = T, class = std::enable_if_t<detail::has_fast_path_v<U>>>
  T add(T delta) {
    return static_cast<T>(slot()->fetch_add(delta) + delta);
  }

  /// Adds `delta` atomically, without the lock; returns the old value.
  template <class U = T, class = std::enable_if_t<detail::has_fast_path_v<U>>>
  T fetch_add(T delta) {
    return slot()->fetch_add(delta);
  }

  /// Sets the value to `desired` if it is `expected`, atomically, without the
  /// lock. Returns whether it did; if not, `expected` holds the current value.
  template <class U = T, class = std::enable_if_t<detail::has_fast_path_v<U>>>
  [[nodiscard]] bool compare_and_set(T& expected, T desired) {
    return slot()->compare_exchange_strong(expected, desired);
  }

  /// Runs `fn(T&)` holding the lock, which excludes every other `with_lock`
  /// (and, for types without the fast path, every `get` and `set`) in every
  /// process; waits at most `timeout` for it (`troupe::errc::timeout`). Returns
  /// whether the previous holder died holding the lock, in which case `fn`
  /// may see a half-made update. If `fn` throws, the lock is released and the
  /// exception propagates.
  ///
  /// On the fast path, lock-free operations do not wait for the lock, so
  /// `fn` works on a copy that is written back with a compare-and-swap; if a
  /// lock-free operation changed the value meanwhile, `fn` runs again on the
  /// new value (nothing is lost, but keep `fn` free of other side effects).
  /// Otherwise `fn` works on the shared value itself, once.
  template <class F>
  [[nodiscard]] caf::expected<bool> with_lock(F&& fn, caf::timespan timeout = forever) {
    auto died = block_.lock(timeout);
    if (!died)
      return died;
    detail::shm_unlock guard{block_};
    if constexpr (fast_path) {
      auto* s = slot();
      auto old = s->load();
      for (;;) {
        T x = old;
        fn(x);
        if (x == old || s->compare_exchange_strong(old, x))
          break;
      }
    } else {
      fn(*static_cast<T*>(block_.data()));
    }
    return died;
  }

  /// The value's name (without the group).
  const std::string& name() const noexcept {
    return block_.name();
  }

  /// Whether this object made the value (and so removes its name).
  bool creator() const noexcept {
    return block_.creator();
  }

  /// Removes the name now if this object made it (idempotent); fails with
  /// `troupe::errc::invalid_argument` if it only opened it. Mappings stay valid.
  [[nodiscard]] caf::error remove() {
    return block_.remove();
  }

private:
  explicit shared_value(detail::shm_block block) : block_(std::move(block)) {}

  std::atomic<T>* slot() const noexcept {
    return static_cast<std::atomic<T>*>(block_.data());
  }

  detail::shm_block block_;
};

/// A fixed-size array of `T` in shared memory that every process of a group
/// can read and write: Python's `multiprocessing.Array`.
///
/// Memory, creation, opening and removal are as for `shared_value` (the
/// object is `/dev/shm/troupe.<group>.v.<name>`, one name space for values
/// and arrays; opening an array as a value, or with another `T`, fails).
///
/// **Concurrency.** For a non-bool integer `T`, `get`, `set`, `add`,
/// `fetch_add` and `compare_and_set` on one element are lock-free atomic
/// operations across threads and processes and never wait for the lock; for
/// other types they take the lock. `with_lock` holds the robust lock (see
/// `shared_value`) and excludes every other `with_lock` in every process.
/// On the fast path `fn` works on a snapshot of the whole array; afterwards
/// exactly the elements `fn` changed are stored, so a lock-free write to one
/// of those elements made while `fn` ran is overwritten (writes to elements
/// `fn` left alone are kept). Do not mix lock-free writes and `with_lock`
/// writes to the same element if that matters.
///
/// One `shared_array` object may be used from several threads at once.
template <class T>
class shared_array {
public:
  static_assert(std::is_trivially_copyable_v<T>, "shared memory holds trivially copyable types");

  /// Whether `T` has the lock-free fast path.
  static constexpr bool fast_path = detail::has_fast_path_v<T>;

  /// Makes the array `name` of `n`'s group with `size` elements (at least 1)
  /// set to `fill`. Fails as `shared_value::create` does.
  [[nodiscard]] static caf::expected<shared_array> create(const node& n, const std::string& name,
                                                          size_t size, const T& fill = T{}) {
    if (size == 0 || size > (uint64_t{1} << 40) / sizeof(T))
      return make_error(troupe::errc::invalid_argument, "an array has 1 to 2^40 bytes of elements");
    auto block = detail::shm_block::create(n, name, detail::shm_kind::array,
                                           detail::shm_type_of<T>(), size, [&](void* data) {
                                             auto* p = static_cast<unsigned char*>(data);
                                             for (size_t i = 0; i < size; ++i)
                                               std::memcpy(p + i * sizeof(T), &fill, sizeof(T));
                                           });
    if (!block)
      return std::move(block.error());
    return shared_array{std::move(*block)};
  }

  /// Makes the array `name` of `n`'s group holding `values` (not empty).
  [[nodiscard]] static caf::expected<shared_array> create(const node& n, const std::string& name,
                                                          const std::vector<T>& values) {
    if (values.empty())
      return make_error(troupe::errc::invalid_argument, "an array has at least one element");
    auto block = detail::shm_block::create(
      n, name, detail::shm_kind::array, detail::shm_type_of<T>(), values.size(),
      [&](void* data) { std::memcpy(data, values.data(), values.size() * sizeof(T)); });
    if (!block)
      return std::move(block.error());
    return shared_array{std::move(*block)};
  }

  /// Opens the array `name` that a process of `n`'s group created. Fails as
  /// `shared_value::open` does.
  [[nodiscard]] static caf::expected<shared_array> open(const node& n, const std::string& name) {
    auto block =
      detail::shm_block::open(n, name, detail::shm_kind::array, detail::shm_type_of<T>());
    if (!block)
      return std::move(block.error());
    return shared_array{std::move(*block)};
  }

  /// Removes the name `name` of `n`'s group, whoever made it.
  [[nodiscard]] static caf::error remove(const node& n, const std::string& name) {
    return detail::shm_block::remove(n, name);
  }

  /// The number of elements (fixed at creation).
  size_t size() const noexcept {
    return static_cast<size_t>(block_.count());
  }

  /// Reads element `i` (`troupe::errc::invalid_argument` if out of range): atomic on
  /// the fast path, else under the lock.
  [[nodiscard]] caf::expected<T> get(size_t i) const {
    if (i >= size())
      return detail::out_of_range(name(), i, size());
    if constexpr (fast_path) {
      return slots()[i].load();
    } else {
      auto res = block_.lock(forever);
      if (!res)
        return std::move(res.error());
      detail::shm_unlock guard{block_};
      T x;
      std::memcpy(&x, elems() + i, sizeof(T));
      return x;
    }
  }

  /// Writes element `i`: atomic on the fast path, else under the lock.
  [[nodiscard]] caf::error set(size_t i, const T& x) {
    if (i >= size())
      return detail::out_of_range(name(), i, size());
    if constexpr (fast_path) {
      slots()[i].store(x);
    } else {
      auto res = block_.lock(forever);
      if (!res)
        return std::move(res.error());
      detail::shm_unlock guard{block_};
      std::memcpy(elems() + i, &x, sizeof(T));
    }
    return caf::none;
  }

  /// Adds `delta` to element `i` atomically, without the lock; returns the
  /// new value.
  template <class U = T, class = std::enable_if_t<detail::has_fast_path_v<U>>>
  [[nodiscard]] caf::expected<T> add(size_t i, T delta) {
    if (i >= size())
      return detail::out_of_range(name(), i, size());
    return static_cast<T>(slots()[i].fetch_add(delta) + delta);
  }

  /// Adds `delta` to element `i` atomically, without the lock; returns the
  /// old value.
  template <class U = T, class = std::enable_if_t<detail::has_fast_path_v<U>>>
  [[nodiscard]] caf::expected<T> fetch_add(size_t i, T delta) {
    if (i >= size())
      return detail::out_of_range(name(), i, size());
    return slots()[i].fetch_add(delta);
  }

  /// Sets element `i` to `desired` if it is `expected`, atomically, without
  /// the lock. Returns whether it did; if not, `expected` holds the current
  /// value.
  template <class U = T, class = std::enable_if_t<detail::has_fast_path_v<U>>>
  [[nodiscard]] caf::expected<bool> compare_and_set(size_t i, T& expected, T desired) {
    if (i >= size())
      return detail::out_of_range(name(), i, size());
    return slots()[i].compare_exchange_strong(expected, desired);
  }

  /// Runs `fn(caf::span<T>)` over all elements holding the lock; waits at
  /// most `timeout` (`troupe::errc::timeout`). Returns whether the previous holder
  /// died holding the lock. See the class comment for the fast path. If `fn`
  /// throws, the lock is released, nothing is stored (fast path) and the
  /// exception propagates.
  template <class F>
  [[nodiscard]] caf::expected<bool> with_lock(F&& fn, caf::timespan timeout = forever) {
    auto died = block_.lock(timeout);
    if (!died)
      return died;
    detail::shm_unlock guard{block_};
    if constexpr (fast_path) {
      auto* s = slots();
      std::vector<T> before(size());
      for (size_t i = 0; i < before.size(); ++i)
        before[i] = s[i].load();
      auto after = before;
      fn(caf::span<T>{after.data(), after.size()});
      for (size_t i = 0; i < after.size(); ++i)
        if (after[i] != before[i])
          s[i].store(after[i]);
    } else {
      fn(caf::span<T>{elems(), size()});
    }
    return died;
  }

  /// The array's name (without the group).
  const std::string& name() const noexcept {
    return block_.name();
  }

  /// Whether this object made the array (and so removes its name).
  bool creator() const noexcept {
    return block_.creator();
  }

  /// Removes the name now if this object made it (idempotent); fails with
  /// `troupe::errc::invalid_argument` if it only opened it. Mappings stay valid.
  [[nodiscard]] caf::error remove() {
    return block_.remove();
  }

private:
  explicit shared_array(detail::shm_block block) : block_(std::move(block)) {}

  std::atomic<T>* slots() const noexcept {
    return static_cast<std::atomic<T>*>(block_.data());
  }

  T* elems() const noexcept {
    return static_cast<T*>(block_.data());
  }

  detail::shm_block block_;
};

} // namespace troupe::ipc
