#pragma once

/// @file
/// `troupe::generator<T>`: a producer actor pulled with credit, iterated like a range (Python's
/// async iterators).

#include "troupe/error.hpp"
#include "troupe/timeout.hpp"

#include <caf/all.hpp>

#include <atomic>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <utility>

namespace troupe {

/// A stream of values produced on demand by an actor and pulled by the
/// consumer with credit: an async iterator (`async for`).
///
/// The producer is a function called on the generator's own thread (a
/// detached actor, so it may block): each call returns the next value, or
/// `std::nullopt` at the end. The consumer keeps at most `credit` pulls
/// outstanding, so the producer never runs more than `credit` values ahead
/// and memory stays bounded. The stream ends cleanly (the iteration stops)
/// at the end; if the producer throws, the stream ends with
/// `errc::task_failed`, which `error()` reports after the iteration.
///
/// `next` and iteration are for one consumer thread at a time. The
/// generator's actor ends when the generator is destroyed.
template <class T>
class generator {
public:
  /// Makes the next value; `std::nullopt` ends the stream. Runs in the
  /// generator's actor (a thread of its own), one call at a time.
  using producer = std::function<std::optional<T>()>;

  /// Spawns the producer actor; `credit` of 0 is treated as 1.
  generator(caf::actor_system& sys, producer next, std::size_t credit = 1)
    : self_(std::make_unique<caf::scoped_actor>(sys)), credit_(credit == 0 ? 1 : credit),
      cancelled_(std::make_shared<std::atomic<bool>>(false)) {
    impl_ = sys.spawn<caf::detached>(
      [next = std::move(next), cancelled = cancelled_]() mutable -> caf::behavior {
        auto ended = std::make_shared<caf::error>();
        return {[next, ended, cancelled](caf::get_atom) mutable -> caf::result<T> {
          if (*cancelled)
            *ended = make_error(errc::cancelled, "the generator was destroyed");
          // Once ended, the producer is not called again.
          if (*ended)
            return *ended;
          std::optional<T> x;
          try {
            x = next();
          } catch (const std::exception& ex) {
            *ended = make_error(errc::task_failed, ex.what());
          } catch (...) {
            *ended = make_error(errc::task_failed, "non-standard exception");
          }
          if (!*ended && !x)
            *ended = make_error(errc::closed, "end of the stream");
          if (*ended)
            return *ended;
          return std::move(*x);
        }};
      });
  }

  /// Moves the generator; the moved-from object must not be used.
  generator(generator&&) noexcept = default;
  generator& operator=(generator&&) = delete;

  /// Stops the producer and waits until it is gone: pulls still queued no
  /// longer call it, and a call in progress finishes first, so the producer
  /// never outlives what it captured. (A producer call that never returns
  /// blocks this destructor.)
  ~generator() {
    if (!impl_)
      return;
    *cancelled_ = true;
    (*self_)->monitor(impl_);
    (*self_)->send_exit(impl_, caf::exit_reason::user_shutdown);
    (*self_)->receive([](const caf::down_msg&) {});
  }

  /// The next value (blocks until the producer made it); `std::nullopt` at
  /// the end of the stream, and after an error (see `error()`).
  std::optional<T> next() {
    if (done_)
      return std::nullopt;
    // Keep `credit` pulls outstanding: the producer runs at most that far
    // ahead of the consumer.
    while (pending_.size() < credit_)
      pending_.push_back((*self_)->request(impl_, caf::infinite, caf::get_atom::value));
    auto pull = pending_.front();
    pending_.pop_front();
    std::optional<T> value;
    caf::error err;
    pull.receive([&](T& x) { value = std::move(x); }, [&](caf::error& e) { err = std::move(e); });
    if (err) {
      done_ = true;
      if (!is(err, errc::closed))
        error_ = detail::normalize_request_error(std::move(err));
      return std::nullopt;
    }
    return value;
  }

  /// How the stream ended: none for a clean end, else the producer's error.
  [[nodiscard]] const caf::error& error() const noexcept {
    return error_;
  }

  /// Input iterator: blocks for each value; ends at the end of the stream.
  class iterator {
  public:
    using iterator_category = std::input_iterator_tag; ///< Single pass.
    using value_type = T;                              ///< A value of the stream.
    using difference_type = std::ptrdiff_t;            ///< Unused; iterators need one.
    using pointer = const T*;                          ///< A pointer to the current value.
    using reference = const T&;                        ///< What `operator*` returns.

    /// The end iterator.
    iterator() = default;
    /// Pulls the first value of `parent` (blocks).
    explicit iterator(generator* parent) : parent_(parent) {
      advance();
    }
    /// The current value.
    reference operator*() const {
      return *current_;
    }
    /// Pulls the next value (blocks); at the end of the stream this becomes
    /// the end iterator.
    iterator& operator++() {
      advance();
      return *this;
    }
    /// Whether both are the end, or iterate the same generator.
    bool operator==(const iterator& other) const {
      return parent_ == other.parent_;
    }
    /// The opposite of `==`.
    bool operator!=(const iterator& other) const {
      return !(*this == other);
    }

  private:
    void advance() {
      current_ = parent_->next();
      if (!current_) {
        parent_ = nullptr;
      }
    }
    generator* parent_ = nullptr;
    std::optional<T> current_;
  };

  /// Starts the iteration: pulls the first value (blocks).
  iterator begin() {
    return iterator{this};
  }
  /// The end of the stream.
  iterator end() {
    return iterator{};
  }

private:
  using handle_type = decltype(std::declval<caf::scoped_actor&>()->request(
    std::declval<caf::actor&>(), caf::infinite, caf::get_atom::value));

  std::unique_ptr<caf::scoped_actor> self_;
  caf::actor impl_;
  std::size_t credit_;
  std::shared_ptr<std::atomic<bool>> cancelled_;
  std::deque<handle_type> pending_;
  bool done_ = false;
  caf::error error_;
};

} // namespace troupe
