#pragma once

// How a process learns the role it was started in: environment variables
// that `node::spawn` sets for each child (see `this_process_role`).

namespace troupe::ipc::detail {

/// The role (`node::spawn_role`); empty for none.
constexpr const char* role_env = "TROUPE_ROLE";

/// For a role that serves one actor (`program::serve`): the name to publish
/// it under, as the supervisor's `process_spec::published_as` asks.
constexpr const char* publish_as_env = "TROUPE_PUBLISH_AS";

/// The role of a process pool's workers; their arguments are the pool's
/// published name and the worker's own.
constexpr const char* pool_worker_role = "troupe.pool-worker";

} // namespace troupe::ipc::detail

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <string>
#include <vector>

namespace troupe::ipc::detail {

/// The role of the host processes of `spawn_isolated`; their arguments are
/// the actor's type and its arguments, serialized (`isolated_host_args`).
constexpr const char* isolated_role = "troupe.isolated";

/// The role of a `host_pool`'s processes: each serves an actor that says
/// its pid (`host_pid_atom`), and the actors placed on it (`spawn_in`).
constexpr const char* pool_host_role = "troupe.host";

/// The actor a pool's host process serves.
caf::actor spawn_pool_host(caf::actor_system& sys);

/// The arguments of a host process for an actor of `type` made from `args`.
std::vector<std::string> isolated_host_args(caf::actor_system& sys, const std::string& type,
                                            const caf::message& args);

/// `sec::unknown_type` unless `type` is registered (`add_actor_type`) here:
/// a type another process lacks is found at its first start.
caf::error check_actor_type(caf::actor_system& sys, const std::string& type);

/// In a host process: the actor its arguments name, or an exception that
/// says why there is none.
caf::actor spawn_isolated_actor(caf::actor_system& sys, const std::vector<std::string>& args);

} // namespace troupe::ipc::detail
