#pragma once

// The actor through which other processes of a group spawn actors in this
// one (`node::spawn_in`). Internal.

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

namespace troupe::ipc::detail {

/// Starts this node's spawn server. It answers `(spawn_in_atom, type, args,
/// interface, check)` with an actor of the type registered as `type`
/// (`actor_system_config::add_actor_type`), or with CAF's error for it
/// (`sec::unknown_type`, `sec::cannot_spawn_actor_from_arguments`,
/// `sec::unexpected_actor_messaging_interface`) naming the type and this
/// process. What it spawned ends with it (`exit_reason::user_shutdown`),
/// and the node ends it when it leaves.
caf::actor start_spawn_server(caf::actor_system& sys);

} // namespace troupe::ipc::detail
