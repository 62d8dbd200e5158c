#pragma once

// futex(2) on a 32-bit word in shared memory (never FUTEX_PRIVATE: the
// waiter and the waker are in different processes). Defined in segment.cpp.

#include <atomic>
#include <chrono>
#include <cstdint>

namespace troupe::ipc::detail {

/// Sleeps while `*word == expected`, for at most `timeout`.
void futex_wait(std::atomic<uint32_t>* word, uint32_t expected, std::chrono::nanoseconds timeout);

/// Wakes up to `count` threads sleeping on `word`.
void futex_wake(std::atomic<uint32_t>* word, int count);

} // namespace troupe::ipc::detail
