#pragma once

/// @file
/// Internal (not part of the API): `task_gate`, the count of an executor's tasks that have no
/// outcome yet, which `stop` closes and waits on.

#include "troupe/timeout.hpp"

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <utility>

namespace troupe::detail {

/// Admits tasks until closed, and counts those without an outcome, so that
/// a shutdown can take no more and wait for the rest. Thread-safe.
class task_gate {
public:
  /// Registers a task; false once closed.
  bool admit() {
    std::lock_guard<std::mutex> guard{mtx_};
    if (closed_)
      return false;
    ++outstanding_;
    return true;
  }

  /// A registered task has its outcome.
  void finished() {
    std::lock_guard<std::mutex> guard{mtx_};
    if (--outstanding_ == 0)
      idle_.notify_all();
  }

  /// Takes no more tasks; false if it was closed already.
  bool close() {
    std::lock_guard<std::mutex> guard{mtx_};
    return !std::exchange(closed_, true);
  }

  /// Blocks until every registered task has its outcome or `timeout`
  /// passed; returns whether they all have.
  bool await_idle(caf::timespan timeout = forever) {
    std::unique_lock<std::mutex> guard{mtx_};
    auto idle = [this] { return outstanding_ == 0; };
    if (is_forever(timeout)) {
      idle_.wait(guard, idle);
      return true;
    }
    return idle_.wait_for(guard, timeout, idle);
  }

private:
  std::mutex mtx_;
  std::condition_variable idle_;
  std::size_t outstanding_ = 0;
  bool closed_ = false;
};

} // namespace troupe::detail
