#pragma once

/// @file
/// `troupe::future<T>`, the result of a submitted task, and `troupe::as_completed`, futures in
/// completion order.

#include "troupe/error.hpp"
#include "troupe/timeout.hpp"

#include <caf/expected.hpp>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <iostream>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

namespace troupe {

namespace detail {

/// The shared state of a future: set once, read by any number of threads.
template <class T>
class future_state {
public:
  /// Stores the outcome (the first one wins) and runs the callbacks.
  void set(caf::expected<T> outcome) {
    std::vector<std::function<void()>> callbacks;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (outcome_)
        return;
      outcome_.emplace(std::move(outcome));
      callbacks.swap(callbacks_);
    }
    cv_.notify_all();
    for (auto& f : callbacks)
      run(f);
  }

  /// Waits for the outcome up to `timeout` and returns a copy of it.
  caf::expected<T> get(caf::timespan timeout) {
    std::unique_lock<std::mutex> guard{mtx_};
    auto done = [this] { return outcome_.has_value(); };
    if (is_forever(timeout))
      cv_.wait(guard, done);
    else if (!cv_.wait_for(guard, timeout, done))
      return make_error(errc::timeout, "the result was not ready in time");
    return *outcome_;
  }

  /// Whether the outcome is set.
  [[nodiscard]] bool ready() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return outcome_.has_value();
  }

  /// Runs `f` once the outcome is set (at once if it is).
  void on_ready(std::function<void()> f) {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (!outcome_) {
        callbacks_.push_back(std::move(f));
        return;
      }
    }
    run(f);
  }

private:
  /// Runs one callback; a throwing callback is reported and does not keep
  /// the others from running.
  static void run(const std::function<void()>& f) noexcept {
    try {
      f();
    } catch (const std::exception& ex) {
      std::cerr << "[troupe] future: an on_ready callback threw: " << ex.what() << '\n';
    } catch (...) {
      std::cerr << "[troupe] future: an on_ready callback threw\n";
    }
  }

  mutable std::mutex mtx_;
  std::condition_variable cv_;
  std::optional<caf::expected<T>> outcome_;
  std::vector<std::function<void()>> callbacks_;
};

} // namespace detail

/// The result of a task that runs elsewhere: `concurrent.futures.Future`.
/// Copies share one result. `get` blocks until the task finished and returns
/// its value, or the error it ended with (a task's exception becomes
/// `errc::task_failed` with its message), never swallowing it: every copy
/// sees the same outcome, as often as it asks.
template <class T>
class future {
public:
  /// An invalid future (`valid()` is false).
  future() = default;

  /// A future of `state` (made by `executor` and `process_pool`).
  explicit future(std::shared_ptr<detail::future_state<T>> state) : state_(std::move(state)) {}

  /// Waits up to `timeout` and returns a copy of the outcome;
  /// `errc::timeout` if it is not there by then.
  [[nodiscard]] caf::expected<T> get(caf::timespan timeout = forever) const {
    if (!state_)
      return make_error(errc::invalid_argument, "an invalid future");
    return state_->get(timeout);
  }

  /// Whether the outcome is there (`get` would not block).
  [[nodiscard]] bool ready() const {
    return state_ && state_->ready();
  }

  /// Whether this future belongs to a task.
  [[nodiscard]] bool valid() const noexcept {
    return state_ != nullptr;
  }

  /// Runs `f` once the outcome is there (at once, on this thread, if it is
  /// already; else on the thread that finishes the task).
  void on_ready(std::function<void()> f) const {
    if (state_)
      state_->on_ready(std::move(f));
  }

private:
  std::shared_ptr<detail::future_state<T>> state_;
};

/// Yields futures in the order they complete: `concurrent.futures.as_completed`.
///
/// ```cpp
/// for (auto f : troupe::as_completed<int>{futures})
///   std::cout << *f.get() << '\n';
/// ```
///
/// Each future is yielded exactly once. Iterating blocks until the next one
/// completes; `next(timeout)` bounds the wait.
template <class T>
class as_completed {
public:
  /// Watches `futures`; an invalid one counts as completed at once.
  explicit as_completed(std::vector<future<T>> futures)
    : futures_(std::move(futures)), queue_(std::make_shared<queue>()) {
    for (std::size_t i = 0; i < futures_.size(); ++i) {
      if (!futures_[i].valid()) {
        queue_->push(i); // an invalid future is "done" with its error
        continue;
      }
      futures_[i].on_ready([q = queue_, i] { q->push(i); });
    }
  }

  /// The number of futures not yielded yet.
  [[nodiscard]] std::size_t remaining() const noexcept {
    return futures_.size() - yielded_;
  }

  /// The next future to complete; `std::nullopt` once all were yielded.
  /// `errc::timeout` if none completes within `timeout`.
  caf::expected<std::optional<future<T>>> next(caf::timespan timeout = forever) {
    if (remaining() == 0)
      return std::optional<future<T>>{};
    auto index = queue_->pop(timeout);
    if (!index)
      return make_error(errc::timeout, "no future completed in time");
    ++yielded_;
    return std::optional<future<T>>{futures_[*index]};
  }

  /// Input iterator over the futures in completion order.
  class iterator {
  public:
    using iterator_category = std::input_iterator_tag; ///< Single pass.
    using value_type = future<T>;                      ///< A completed future.
    using difference_type = std::ptrdiff_t;            ///< Unused; iterators need one.
    using pointer = const future<T>*;                  ///< What `operator->` returns.
    using reference = const future<T>&;                ///< What `operator*` returns.

    /// The end iterator.
    iterator() = default;
    /// Waits for the first future of `parent` to complete.
    explicit iterator(as_completed* parent) : parent_(parent) {
      advance();
    }
    /// The current future (completed).
    reference operator*() const {
      return *current_;
    }
    /// The current future (completed).
    pointer operator->() const {
      return &*current_;
    }
    /// Waits for the next future to complete (blocks).
    iterator& operator++() {
      advance();
      return *this;
    }
    /// Whether both are the end, or iterate the same `as_completed`.
    bool operator==(const iterator& other) const {
      return parent_ == other.parent_;
    }
    /// The opposite of `==`.
    bool operator!=(const iterator& other) const {
      return !(*this == other);
    }

  private:
    void advance() {
      auto next = parent_->next();
      if (next && *next) {
        current_ = **next;
      } else {
        parent_ = nullptr;
        current_.reset();
      }
    }
    as_completed* parent_ = nullptr;
    std::optional<future<T>> current_;
  };

  /// Starts the iteration: waits for the first future to complete.
  iterator begin() {
    return iterator{this};
  }
  /// The end of the iteration.
  iterator end() {
    return iterator{};
  }

private:
  struct queue {
    std::mutex mtx;
    std::condition_variable cv;
    std::deque<std::size_t> done;

    void push(std::size_t i) {
      {
        std::lock_guard<std::mutex> guard{mtx};
        done.push_back(i);
      }
      cv.notify_one();
    }

    std::optional<std::size_t> pop(caf::timespan timeout) {
      std::unique_lock<std::mutex> guard{mtx};
      auto ready = [this] { return !done.empty(); };
      if (detail::is_forever(timeout))
        cv.wait(guard, ready);
      else if (!cv.wait_for(guard, timeout, ready))
        return std::nullopt;
      auto i = done.front();
      done.pop_front();
      return i;
    }
  };

  std::vector<future<T>> futures_;
  std::shared_ptr<queue> queue_;
  std::size_t yielded_ = 0;
};

} // namespace troupe
