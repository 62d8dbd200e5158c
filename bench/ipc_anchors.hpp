#pragma once

// Anchors for troupe's inter-process figures: what the same round trip or
// one-way stream costs with other mechanisms, measured in the same run on the
// same machine. Each function measures one figure `repeat` times and returns
// the median run (an RTT run's figure is the median of its samples).
//
// Second processes are this program again (/proc/self/exe, started with
// posix_spawn in the hidden mode `anchor-child`), or python3. Shared memory
// and message queue names and ZeroMQ's socket files carry the pid and are
// removed as soon as both sides have opened them, and on every error path; children are killed and
// reaped when a figure fails. Failures throw std::runtime_error.

#include <cstdint>
#include <optional>

namespace troupe_bench {

/// Sizes of the anchor figures.
struct anchor_options {
  int repeat = 5;         ///< runs per figure; the median run is returned
  int samples = 20'000;   ///< round trips per run of an RTT figure
  int messages = 100'000; ///< one-way 64-byte messages per run of a throughput figure
  /// Run CAF's scheduler as troupe::ipc::configure does (idle workers sleep
  /// until woken instead of polling every 50 us), for like-for-like ratios.
  bool latency_scheduler = false;
  /// Seconds of each idle interval of the idle CPU figure (`troupe-bench ipc`).
  int idle_seconds = 10;
};

/// Raw futex ping-pong on a 32-bit word in shared memory between two
/// processes, no spinning: the floor for any cross-process wake-up.
double futex_rtt_us(const anchor_options& opt);

/// One cache line bounced between two processes, both spinning: the time
/// of one hop (a write seen by the other core), in ns. No message passing
/// between processes can cost less per hop.
double cacheline_hop_ns(const anchor_options& opt);

/// Boost.Interprocess message_queue: a 64-byte request and its 64-byte reply
/// between two processes (one queue each way).
double bip_mq_rtt_us(const anchor_options& opt);

/// Boost.Interprocess message_queue: 64-byte messages one way to a counting
/// process, from the first send until it confirms the last.
double bip_mq_msgs_per_s(const anchor_options& opt);

/// ZeroMQ REQ/REP over `ipc://` (a Unix socket under /tmp): a 64-byte
/// request and its 64-byte reply between two processes.
double zmq_rtt_us(const anchor_options& opt);

/// ZeroMQ PUSH/PULL over `ipc://`: 64-byte messages one way to a counting
/// process, from the first send until it confirms the last (through a second
/// PUSH/PULL pair back).
double zmq_msgs_per_s(const anchor_options& opt);

/// A blocking CAF request (`scoped_actor::request(...).receive`, no timeout)
/// to an actor in another process, reached through CAF's middleman on
/// 127.0.0.1.
double caf_tcp_rtt_us(const anchor_options& opt);

/// CAF's `remote_spawn` of an actor in another process, reached through CAF's
/// middleman on 127.0.0.1, until the actor answered a blocking request.
double caf_remote_spawn_us(const anchor_options& opt);

/// A blocking CAF request (no timeout) to an actor in the same process.
double caf_local_rtt_us(const anchor_options& opt);

/// 64-byte std::string messages from a scoped_actor to a counting actor in the
/// same process, from the first send until the counter answers after the last.
double caf_local_msgs_per_s(const anchor_options& opt);

/// A `multiprocessing.Manager().dict()` proxy set call in python3 (a round
/// trip to the manager's process). Empty when python3 is not on PATH.
std::optional<double> py_manager_rtt_us(const anchor_options& opt);

/// 64-byte bytes objects one way through a `multiprocessing.Queue` between two
/// python3 processes. Empty when python3 is not on PATH.
std::optional<double> py_queue_msgs_per_s(const anchor_options& opt);

/// Python: a `multiprocessing.Process` (the platform's start method) started
/// until it answered over a `Pipe`, ms (median of 10 per round); n/a
/// without python3.
std::optional<double> py_process_start_ms(const anchor_options& opt);

/// Measures one figure with `opt` and prints `<name> <value> <unit>`; when it
/// fails, prints `<name> n/a`, the reason on stderr, and sets `rc` to 1.
std::optional<double> measure_figure(const char* name, const char* unit,
                                     double (*figure)(const anchor_options&),
                                     const anchor_options& opt, int& rc);

/// The same for a python3 figure, which is `n/a` (never guessed, never a
/// failure) when python3 is missing or fails.
std::optional<double> measure_python_figure(const char* name, const char* unit,
                                            std::optional<double> (*figure)(const anchor_options&),
                                            const anchor_options& opt);

/// The suite `troupe-bench anchors`: prints every figure as
/// `<name> <value> <unit>`, or `<name> n/a` when it is unavailable. Returns the
/// exit code: 1 when a figure (other than an unavailable python one) failed.
int run_anchors(const anchor_options& opt);

/// The hidden mode `troupe-bench anchor-child KIND NAME PARENT_PID`: the
/// second process of an anchor figure. `argc`/`argv` start at KIND.
int run_anchor_child(int argc, char** argv);

} // namespace troupe_bench
