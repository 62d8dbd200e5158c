// The stall: a peer that stops reading (SIGSTOP) for a long while, with a
// writer that keeps sending to it (tracker issue 18).
#pragma once

#include <string>

namespace troupe_soak {

/// Sends requests and asynchronous messages to a child's actor, stops the
/// child for `seconds`, then resumes it. Checks that every request was
/// answered (a value, or `errc::full` after the group's `full_timeout` while
/// the child was stopped), that no other error came, that requests succeed
/// again once the child runs, and that this process's memory did not grow
/// while the child was stopped. The samples go to `samples` as CSV (none when
/// empty). The exit status: 0 when all holds.
int run_stall(double seconds, double sample_every, const std::string& samples);

/// The child of the stall (`--role stall`).
int run_stall_node();

} // namespace troupe_soak
