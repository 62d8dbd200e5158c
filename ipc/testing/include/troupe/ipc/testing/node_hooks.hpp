#pragma once

/// @file
/// Hooks into a `troupe::ipc::node` for troupe's own tests: what a crashed,
/// buggy or hostile writer does to a ring. Part of the `troupe_ipc_testing`
/// target, which is neither installed nor exported.

#include "troupe/ipc/node.hpp"

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace troupe::ipc::testing {

/// The next message frame `n` writes stops (SIGSTOP) half written, before
/// it is published, as a writer killed mid-frame would.
void stall_next_frame(node& n);

/// Writes `bytes` into the ring from `n` to the node in `peer_slot` as they
/// are, as a buggy or hostile writer would.
caf::error write_raw(node& n, uint32_t peer_slot, const std::vector<unsigned char>& bytes);

/// The slot of the node that published `name`.
caf::expected<uint32_t> slot_of(node& n, const std::string& name);

/// Bytes written into the ring from the node in slot `from` to the node in
/// slot `to` and not yet read, as `n` sees the group's segment.
uint64_t unread_bytes(node& n, uint32_t from, uint32_t to);

/// Marks the node in `slot` dead in the group's slot table, as a node that
/// took it for dead would, whether or not it still runs; false if the slot
/// does not hold a live node.
bool take_for_dead(node& n, uint32_t slot);

/// Leaves `slot` as a node with pid `claimer` that stopped, or died, in the
/// middle of claiming it would; false unless the slot is free or dead.
bool claim_as(node& n, uint32_t slot, pid_t claimer);

/// While `hold` is true, `n` leaves the nodes it lost unhandled: their
/// pending requests, proxies and slots wait (as when it leaves the group
/// right after it saw them go).
void hold_losses(node& n, bool hold);

/// How many lost nodes `n` has not handled yet.
size_t unhandled_losses(node& n);

/// How many other nodes `n` has in its peer table (a node that left is
/// taken out of it when `n` sees the slot free, before its loss is handled).
size_t known_peers(node& n);

/// How many kill notices (what tells a peer that a local actor it made a
/// proxy of has ended) this process's nodes have attached to local actors
/// and not yet run or detached.
int64_t kill_notices();

} // namespace troupe::ipc::testing
