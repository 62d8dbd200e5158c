#pragma once

// Publish/subscribe across the processes of a group with CAF's own group
// API: the group module "troupe" (`sys.groups().get("troupe", "news")`).
// Internal: users reach it through `troupe::ipc::configure`.
//
// Each process keeps, per group, the set of its own subscribers. A node
// with at least one subscriber to group G has an entry in the segment's name
// table: name `subscription_entry(G)`, actor = the node's group relay. A
// message sent to G goes to the local subscribers and, once per node that
// has an entry, to that node's relay (one frame per ring, not one per
// subscriber), which hands it to the subscribers there with the original
// sender. A node's entries go with it when it leaves or dies.

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <memory>
#include <string>

namespace troupe::ipc::detail {

class core;

/// The module's name, as `sys.groups().get` takes it.
constexpr const char* group_module_name = "troupe";

/// Registers the group module with `cfg`; `troupe::ipc::configure` calls it.
void add_group_module(caf::actor_system_config& cfg);

/// The name-table entry by which a node says that it has subscribers to
/// `group`: `subscription_mark` (a control character, which no published
/// name holds) and the group's name.
std::string subscription_entry(const std::string& group);

/// From now on `c` carries the groups of its actor system to the other
/// processes (the first node an actor system joins with; no-op otherwise):
/// groups that have subscribers here get their entries.
void attach_groups(caf::actor_system& sys, const std::shared_ptr<core>& c);

/// `c` leaves: the groups are this process's alone again (its entries are
/// swept with the rest of its names).
void detach_groups(caf::actor_system& sys, const core* c);

/// Starts the actor through which other nodes hand group messages to the
/// subscribers in this process.
caf::actor start_group_relay(caf::actor_system& sys);

} // namespace troupe::ipc::detail
