#pragma once

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
    using iterator_category = std::input_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    using pointer = const T*;
    using reference = const T&;

    iterator() = default;
    explicit iterator(generator* parent) : parent_(parent) {
      advance();
    }
    reference operator*() const {
      return *current_;
    }
    iterator& operator++() {
      advance();
      return *this;
    }
    bool operator==(const iterator& other) const {
      return parent_ == other.parent_;
    }
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

  iterator begin() {
    return iterator{this};
  }
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
