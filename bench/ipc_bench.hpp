#pragma once

// troupe-bench ipc: troupe's cross-process figures (round trip, one-way
// throughput, kill -9 to down_msg) beside the anchors of ipc_anchors.hpp,
// measured in the same run, and the ratios the issue sets goals for.

#include "ipc_anchors.hpp"

namespace troupe_bench {

/// The suite `troupe-bench ipc`. Returns the exit code.
int run_ipc(const anchor_options& opt);

/// The hidden mode `troupe-bench ipc-child NAME`: joins the bench's group and
/// serves a ponger as NAME. `argc`/`argv` start at NAME.
int run_ipc_child(int argc, char** argv);

/// The hidden mode `troupe-bench ipc-sender COUNTER COORD MESSAGES` of the
/// fan-in figures: joins the bench's group, looks up COUNTER and COORD, tells
/// COORD it is ready, then sends MESSAGES 64-byte strings to COUNTER on each
/// `go` until `leave`. `argc`/`argv` start at COUNTER.
int run_ipc_sender(int argc, char** argv);

/// The host process of an isolated actor (`isolated_start_ms`), started by
/// `spawn_isolated` as this program again.
int run_isolated_host(int argc, char** argv);

} // namespace troupe_bench
