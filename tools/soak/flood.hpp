// The flood: many messages from a child to this process through one pair of
// nodes, with both processes sampled for growth (tracker issue 18).
#pragma once

#include <cstdint>
#include <string>

namespace troupe_soak {

struct flood_options {
  int64_t messages = 10'000'000;
  double sample_every = 1;
  std::string samples; // where the samples go as CSV (none when empty)
};

/// The receiving end (this process): starts the sender and checks that every
/// message came, in order, and that neither process grew after the warm-up.
/// The exit status: 0 when all holds.
int run_flood(const flood_options& o);

/// The sending end, in the child started by `run_flood` (`--role flood`).
int run_flood_sender(const flood_options& o);

} // namespace troupe_soak
