#pragma once

/// @file
/// `troupe::guarded<T>`: state owned by one actor and changed atomically through it (Python's
/// `Lock` and `RLock` around shared data).

#include "troupe/error.hpp"
#include "troupe/owner_handle.hpp"
#include "troupe/timeout.hpp"

#include <caf/all.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

namespace troupe::detail {

/// The owners whose operations are running further up a chain of blocking
/// calls, on other threads (A's operation blocks on B, which runs on another
/// thread: B's frame inherits A).
using owner_chain = std::vector<const caf::abstract_actor*>;

/// The state an owner is applying an operation to on this thread. Frames form
/// a stack through `prev`, one per (possibly nested) operation.
struct guarded_frame {
  /// The owner whose operation runs.
  const caf::abstract_actor* owner;
  /// The state it works on (a copy while a copying operation runs).
  void* state;
  /// The chain of the caller that is waiting for this operation.
  const owner_chain* inherited;
  /// The frame this one is nested in, or null.
  guarded_frame* prev;
};

/// Where a blocking call to `owner` made on this thread would go.
struct guarded_call_site {
  /// The innermost frame of `owner` on this thread: the call re-enters it.
  guarded_frame* frame = nullptr;
  /// `owner` waits further up the chain for this thread: the call would
  /// wait for itself.
  bool cycle = false;
};

/// Locates a call to `owner` from the calling thread.
guarded_call_site locate_guarded_call(const caf::abstract_actor* owner) noexcept;

/// Every owner the calling thread is working for, directly or up the chain.
owner_chain current_owner_chain();

/// One type-erased operation on a guarded state, shared by the caller and the
/// owner. Its status decides, once, whether the operation runs: the owner
/// claims it (`try_start`) or the caller gives it up (`abandon`), so an
/// operation never starts after its caller was told it timed out, and its
/// function never outlives what it captured from the caller.
class guarded_op_base {
public:
  /// The clock of deadlines.
  using clock_type = std::chrono::steady_clock;

  virtual ~guarded_op_base() = default;

  /// Applies the operation to `*frame.state`. May throw what the user's
  /// function throws; `apply_guarded` catches it.
  virtual void apply(guarded_frame& frame) = 0;

  /// Sets the latest time the owner may start the operation.
  void deadline(caf::timespan timeout) noexcept;

  /// Records who is waiting up the chain (for cycle detection).
  void callers(owner_chain chain) noexcept {
    callers_ = std::move(chain);
  }

  /// Who is waiting up the chain.
  [[nodiscard]] const owner_chain& callers() const noexcept {
    return callers_;
  }

  /// Owner side: claims the operation. False if the caller gave up or the
  /// deadline passed; the operation must then not run.
  bool try_start() noexcept;

  /// Owner side: the operation ran, with `err` as outcome.
  void finish(caf::error err);

  /// Caller side: gives the operation up unless the owner already claimed
  /// it. True if it will never run.
  bool abandon() noexcept;

  /// Caller side: waits until a claimed operation finished; returns its
  /// outcome.
  caf::error await_finish();

private:
  enum status : int { queued, running, finished, abandoned };
  std::atomic<int> status_{queued};
  clock_type::time_point deadline_ = clock_type::time_point::max();
  owner_chain callers_;
  std::mutex mtx_;
  std::condition_variable cv_;
  caf::error outcome_;
};

/// An operation as it travels to the owner (a pointer: it never leaves the
/// process).
using guarded_op_ptr = std::shared_ptr<guarded_op_base>;

/// Runs `op` on `state` as operation of `owner`, with a frame pushed for the
/// duration, and turns an exception into `errc::update_failed`.
caf::error apply_guarded(const caf::abstract_actor* owner, void* state, guarded_op_base& op,
                         const owner_chain* inherited) noexcept;

/// Spawns the actor that owns `state` and applies operations to it.
caf::actor spawn_guarded_owner(caf::actor_system& sys, std::shared_ptr<void> state);

/// The result slot of an operation; `void` results hold nothing.
template <class R>
class op_result {
public:
  /// Calls `fn(xs...)` and keeps what it returns.
  template <class F, class... Ts>
  void run(F& fn, Ts&... xs) {
    value_.emplace(fn(xs...));
  }
  /// Hands the kept value out (once; precondition: `run` returned).
  caf::expected<R> take() {
    return std::move(*value_);
  }

private:
  std::optional<R> value_;
};

/// The result slot of an operation that returns nothing.
template <>
class op_result<void> {
public:
  /// Calls `fn(xs...)`.
  template <class F, class... Ts>
  void run(F& fn, Ts&... xs) {
    fn(xs...);
  }
  /// Nothing to hand out.
  caf::expected<void> take() {
    return {};
  }
};

/// An operation `fn(T&)`. With `Copy`, `fn` runs on a copy of the state that
/// replaces the state only when `fn` returns normally (strong guarantee).
template <class T, class F, bool Copy>
class guarded_op final : public guarded_op_base {
public:
  /// What `fn` returns.
  using result_type = std::decay_t<std::invoke_result_t<F&, T&>>;

  /// An operation that will run `fn`.
  explicit guarded_op(F fn) : fn_(std::move(fn)) {}

  /// Runs `fn` on the frame's state (on a copy with `Copy`).
  void apply(guarded_frame& frame) override {
    auto& state = *static_cast<T*>(frame.state);
    if constexpr (Copy) {
      T work(state);
      // Nested operations of the same owner must see the work in progress.
      struct restore {
        guarded_frame& frame;
        void* state;
        ~restore() {
          frame.state = state;
        }
      } guard{frame, &state};
      frame.state = &work;
      result_.run(fn_, work);
      state = std::move(work);
    } else {
      result_.run(fn_, state);
    }
  }

  /// Hands out what `fn` returned (once, after `apply`).
  caf::expected<result_type> take() {
    return result_.take();
  }

private:
  F fn_;
  op_result<result_type> result_;
};

} // namespace troupe::detail

// Operations travel only within their process, as pointers, never serialized.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::detail::guarded_op_ptr)

namespace troupe {

/// State of type `T` owned by one actor and changed only through its mailbox:
/// troupe's answer to a `Lock` (or `RLock`) around shared data.
///
/// `update(fn)` sends `fn` to the owner, which applies it to the state; one
/// operation runs at a time, so a read-modify-write inside `fn` is atomic with
/// respect to every other operation. The guarantees:
///
/// - **Atomic and isolated.** Operations run one after another in mailbox
///   order; operations sent from one thread or actor keep their order.
/// - **Strong exception guarantee.** `update` runs `fn` on a copy of the state
///   and commits the copy only if `fn` returns; if `fn` throws, the caller gets
///   `errc::update_failed` with the exception's message and the state is as it
///   was. `update_in_place` skips the copy (for large states) and gives only
///   the basic guarantee: changes made before the throw stay.
/// - **Re-entrant (the `RLock` case).** If `fn` calls `update` on the same
///   `guarded` on the owner's thread (directly or through a helper), the
///   nested call runs at once, on the outer call's work in progress, instead
///   of queueing behind the outer call and deadlocking. A nested call that
///   throws fails alone; the outer call decides what to do with its error.
/// - **No waiting for oneself.** If `fn` of A blocks on `B.update`, and B's
///   function in turn calls `A.update`, that inner call fails at once with
///   `errc::would_deadlock` instead of hanging. (A blocking call to another
///   `guarded` inside `fn` holds a scheduler thread while it waits: with one
///   scheduler thread, it waits forever. Prefer composing plain functions.)
/// - **Timeouts are exact about what ran.** A call that ends in
///   `errc::timeout` never runs `fn`, now or later, so `fn` may capture the
///   caller's locals by reference. If the owner started `fn` before the
///   timeout, the blocking call waits for it to finish and returns its result.
///   A timeout of zero or less fails at once. An owner that is gone yields
///   `errc::owner_down`.
///
/// `guarded` is a cheap, copyable handle; all copies share one owner, which
/// terminates when the last copy is gone. Results are copied out (`fn` may
/// not hand out references into the state). A moved-from handle answers
/// every call with `errc::owner_down`.
///
/// Blocking calls (`update`, `get`) are for threads outside actors; from an
/// event-based actor use `update_then`, which does not block the scheduler.
template <class T>
class guarded : public owner_handle {
public:
  /// The result of `update(fn)`: what `fn(T&)` returns, or an error.
  template <class F>
  using result_t = caf::expected<std::decay_t<std::invoke_result_t<F&, T&>>>;

  /// Spawns the owner with a state built from `args`.
  template <class... Args>
  [[nodiscard]] static guarded make(caf::actor_system& sys, Args&&... args) {
    return guarded{
      detail::spawn_guarded_owner(sys, std::make_shared<T>(std::forward<Args>(args)...))};
  }

  /// An empty handle.
  guarded() = default;

  /// Applies `fn` atomically to the state and returns its result (strong
  /// exception guarantee). Blocks the calling thread; uses a temporary
  /// `scoped_actor` (prefer the overload taking one in loops).
  template <class F>
  [[nodiscard]] result_t<F> update(F&& fn, caf::timespan timeout = forever) const {
    return call<true>(nullptr, std::forward<F>(fn), timeout);
  }

  /// As `update(fn, timeout)`, asking through the caller's `self`.
  template <class F>
  [[nodiscard]] result_t<F> update(caf::scoped_actor& self, F&& fn,
                                   caf::timespan timeout = forever) const {
    return call<true>(&self, std::forward<F>(fn), timeout);
  }

  /// Applies `fn` atomically to the state itself, without a copy (basic
  /// exception guarantee only).
  template <class F>
  [[nodiscard]] result_t<F> update_in_place(F&& fn, caf::timespan timeout = forever) const {
    return call<false>(nullptr, std::forward<F>(fn), timeout);
  }

  /// As `update_in_place(fn, timeout)`, asking through the caller's `self`.
  template <class F>
  [[nodiscard]] result_t<F> update_in_place(caf::scoped_actor& self, F&& fn,
                                            caf::timespan timeout = forever) const {
    return call<false>(&self, std::forward<F>(fn), timeout);
  }

  /// Returns a copy of the state.
  [[nodiscard]] caf::expected<T> get(caf::timespan timeout = forever) const {
    return update_in_place([](const T& x) { return x; }, timeout);
  }

  /// Returns a copy of the state, asking through the caller's `self`.
  [[nodiscard]] caf::expected<T> get(caf::scoped_actor& self,
                                     caf::timespan timeout = forever) const {
    return update_in_place(
      self, [](const T& x) { return x; }, timeout);
  }

  /// Non-blocking `update` for event-based actors: applies `fn` (strong
  /// exception guarantee), then calls `on_value(result)` (or `on_value()` if
  /// `fn` returns void) or `on_error(caf::error)` in `self`'s context.
  ///
  /// `timeout` bounds how long the operation may wait in the owner's mailbox:
  /// if the owner has not started it by then, it never runs and `on_error`
  /// gets `errc::timeout` when the owner reaches it. Once started, the answer
  /// comes when `fn` returns. (No CAF request timeout is used: in CAF 0.17 it
  /// would keep `self` alive until it fired, even after the answer.) `fn`
  /// runs on the owner's thread: capture values, not `self`'s state.
  template <class Self, class F, class OnValue, class OnError>
  void update_then(Self* self, F fn, OnValue on_value, OnError on_error,
                   caf::timespan timeout = forever) const {
    using op_type = detail::guarded_op<T, F, true>;
    auto op = std::make_shared<op_type>(std::move(fn));
    op->deadline(timeout);
    op->callers(detail::current_owner_chain());
    self->request(owner_, caf::infinite, caf::update_atom::value, detail::guarded_op_ptr{op})
      .then(
        [op, on_value](caf::ok_atom) mutable {
          if constexpr (std::is_void_v<typename op_type::result_type>)
            on_value();
          else
            on_value(std::move(*op->take()));
        },
        [on_error](caf::error& err) mutable {
          on_error(detail::normalize_request_error(std::move(err)));
        });
  }

private:
  explicit guarded(caf::actor owner) noexcept : owner_handle(std::move(owner)) {}

  template <bool Copy, class F>
  result_t<F> call(caf::scoped_actor* self, F&& fn, caf::timespan timeout) const {
    if constexpr (Copy)
      static_assert(std::is_copy_constructible_v<T> && std::is_move_assignable_v<T>,
                    "guarded<T>::update copies the state; use update_in_place "
                    "for a T that cannot be copied");
    using op_type = detail::guarded_op<T, std::decay_t<F>, Copy>;
    if (!owner_)
      return empty_handle_error();
    auto owner = caf::actor_cast<caf::abstract_actor*>(owner_);
    auto op = std::make_shared<op_type>(std::forward<F>(fn));
    auto site = detail::locate_guarded_call(owner);
    if (site.frame != nullptr) {
      // Called from inside an operation of this same owner: run at once.
      if (auto err = detail::apply_guarded(owner, site.frame->state, *op, site.frame->inherited))
        return err;
      return op->take();
    }
    if (site.cycle)
      return make_error(errc::would_deadlock,
                        "the owner is waiting for this call further up the chain");
    if (timeout <= caf::timespan::zero())
      return make_error(errc::timeout, "a timeout of zero or less");
    op->deadline(timeout);
    op->callers(detail::current_owner_chain());
    std::optional<caf::scoped_actor> own;
    if (self == nullptr)
      self = &own.emplace(owner_->home_system());
    caf::error err;
    (*self)
      ->request(owner_, detail::to_duration(timeout), caf::update_atom::value,
                detail::guarded_op_ptr{op})
      .receive([](caf::ok_atom) {}, [&](caf::error& x) { err = std::move(x); });
    if (err && err == caf::sec::request_timeout) {
      if (op->abandon())
        return make_error(errc::timeout, "the owner did not start the operation in time");
      // The owner started `fn` before we gave up. It may use what the caller
      // captured, so wait for it and report what happened.
      err = op->await_finish();
    }
    if (err)
      return detail::normalize_request_error(std::move(err));
    return op->take();
  }
};

} // namespace troupe
