#pragma once

/// @file
/// `troupe::ipc::configure`: prepares an actor system configuration for a process of a group.

#include <caf/actor_system_config.hpp>

/// troupe's process layer (`troupe::ipc`): groups of processes on one host that share a
/// shared-memory segment (`node`), so that their actors reach each other as if they were local;
/// process pools and supervised processes; managed containers, values and synchronisation
/// primitives for every process of a group; CAF's middleman for other hosts. Link `troupe::ipc`
/// (it brings `troupe::actors`).
namespace troupe::ipc {

/// Prepares an actor system configuration for a process that creates or
/// joins a group: everything `troupe::configure` does, plus CAF's middleman.
/// CAF 0.17 gives a process its node id (which tells one node's actors from
/// another's) only when the middleman is loaded; it also serves
/// `node::publish_tcp` and `node::remote_tcp`. It also tunes CAF's scheduler
/// for latency: idle workers sleep until a message wakes them instead of
/// first polling every 50 us for a while (`work-stealing.moderate-poll-attempts`
/// = 0), which is what messages coming from another process wait on. Call it once on the config
/// before the actor system is constructed, instead of (not as well as)
/// `cfg.load<caf::io::middleman>()`.
///
/// It also adds the group module "troupe": `sys.groups().get("troupe", "news")`
/// is a group whose subscribers may live in any process of the node's group
/// (CAF's `join`, `leave` and `send` as with a local group). A message sent to
/// it reaches the subscribers in this process and crosses the ring to each
/// other process with subscribers once, however many subscribers it has there;
/// the messages of one sender reach each subscriber in the order sent; a
/// process that leaves or dies takes its subscribers out of the group. A name
/// has 1 to 63 characters and no control characters. Each process with
/// subscribers to a group takes one entry of the group's name table (see
/// `group_options::max_names`); when none is free, `join` prints why to
/// stderr and the actor is not joined. Before this process joins a node, and
/// after it leaves, such a group reaches this process's subscribers only.
///
/// ```cpp
/// caf::actor_system_config cfg;
/// troupe::ipc::configure(cfg);
/// caf::actor_system sys{cfg};
/// auto group = troupe::ipc::node::create(sys, "bank");
/// ```
void configure(caf::actor_system_config& cfg);

} // namespace troupe::ipc
