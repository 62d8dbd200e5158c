#pragma once

// What the units of `core` share (core.cpp: membership, peers, liveness
// and names; outbound.cpp: sending, ring writing, backlogs, the proxy;
// inbound.cpp: the reader loop, frame handling, losses and where actors
// run): small helpers and the flags that say what a thread is.

#include "core.hpp"

#include <pthread.h>

#include <chrono>
#include <string>
#include <thread>

namespace troupe::ipc::detail {

using steady = std::chrono::steady_clock;

/// Set on a node's reader thread, which must never wait for ring space.
inline thread_local bool on_reader_thread = false;
/// This thread is a blocking caller reading the rings (`core::poll_until`):
/// it may hold locks of the user's, so what runs the user's code (functors
/// attached to remote actors, loss handling, deferred work) is left to the
/// reader thread.
inline thread_local bool polling_caller = false;
/// The polling caller met a frame it leaves to the reader thread (a kill,
/// whose proxy's functors are the user's): it stops reading, so that the
/// frames behind it keep their order.
inline thread_local bool caller_stopped = false;
/// This thread holds `drain_mtx_` (of some node): it must not wait for an
/// answer that only a reader of the rings can bring.
inline thread_local bool holds_rings = false;

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch())
    .count();
}

/// Names this thread as `ps -L`, `top -H` and gdb show it (15 characters
/// at most).
inline void name_this_thread(const char* name) {
  ::pthread_setname_np(::pthread_self(), name);
}

inline steady::time_point deadline_after(caf::timespan timeout) {
  if (troupe::detail::is_forever(timeout))
    return steady::time_point::max();
  return steady::now() + timeout;
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

inline frame_header make_header(frame_kind kind, uint32_t length, uint64_t receiver, uint64_t mid,
                                uint64_t sender) {
  frame_header h{};
  h.magic = frame_magic;
  h.version = frame_version;
  h.kind = static_cast<uint16_t>(kind);
  h.length = length;
  h.receiver = receiver;
  h.mid = mid;
  h.sender = sender;
  return h;
}

/// Why a message id and its content do not go together, or null. The
/// receiver's mailbox files a message by the category bits of its id, and
/// CAF 0.17 then takes the content of an upstream or downstream message for an
/// `upstream_msg` or `downstream_msg` unchecked: a forged id crashes the
/// receiving actor's thread (found by fuzzing).
inline const char* stream_mismatch(caf::message_id mid, const caf::message& msg) {
  switch (mid.category()) {
  case caf::message_id::upstream_message_category:
    if (msg.size() != 1 || !msg.match_element<caf::upstream_msg>(0))
      return "a stream message id (upstream) on a message that is no upstream_msg";
    break;
  case caf::message_id::downstream_message_category:
    if (msg.size() != 1 || !msg.match_element<caf::downstream_msg>(0))
      return "a stream message id (downstream) on a message that is no downstream_msg";
    break;
  default:
    break;
  }
  return nullptr;
}

inline bool is_stream_category(caf::message_id mid) {
  return mid.category() == caf::message_id::upstream_message_category
         || mid.category() == caf::message_id::downstream_message_category;
}

inline std::string describe_peer(const peer& p) {
  return "node in slot " + std::to_string(p.slot) + " (pid " + std::to_string(p.pid) + ")";
}

} // namespace troupe::ipc::detail
