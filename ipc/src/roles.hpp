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
