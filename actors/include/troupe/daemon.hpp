#pragma once

/// @file
/// `troupe::spawn_daemon`: background actors that do not keep the program alive.

#include <caf/actor_system.hpp>
#include <caf/spawn_options.hpp>

#include <utility>

namespace troupe {

/// Spawns `fun(xs...)` as a daemon: a background actor that does not keep the
/// program alive, the actor version of `threading.Thread(daemon=True)`.
///
/// An `actor_system` waits for all its actors before it is destroyed; a
/// daemon is spawned hidden, so that wait ignores it and the program ends
/// when `main` is done, however long the daemon would have ticked.
///
/// How a daemon ends: once no handle to it is left (the handle returned here,
/// or one in another actor's state), it terminates with exit reason
/// `unreachable` and cleanup attached with `attach_functor` runs. A daemon
/// that keeps a handle to itself (a strong `caf::actor` of itself in its own
/// behaviour) is not cleaned up: the system still shuts down, but its
/// cleanup never runs; capture `self`, not a handle. A daemon must also not
/// block a thread forever: a handler that never returns holds up shutdown
/// like any other.
///
/// ```cpp
/// auto ticker = troupe::spawn_daemon(sys, [](caf::event_based_actor* self) {
///   ...
/// });
/// ```
template <caf::spawn_options Os = caf::no_spawn_options, class F, class... Ts>
auto spawn_daemon(caf::actor_system& sys, F fun, Ts&&... xs) {
  return sys.spawn<Os + caf::hidden>(std::move(fun), std::forward<Ts>(xs)...);
}

} // namespace troupe
