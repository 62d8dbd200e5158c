#pragma once

#include <caf/actor_system.hpp>
#include <caf/spawn_options.hpp>

#include <utility>

namespace troupe {

/// Spawns `fun(xs...)` as a daemon: a background actor that does not keep the
/// program alive, the actor version of `threading.Thread(daemon=True)`.
///
/// An `actor_system` waits for all its actors before it is destroyed; a
/// daemon is spawned hidden, so that wait ignores it. When `main` is done and
/// the system goes down, a daemon that is still ticking is terminated (its
/// exit reason is `unreachable` once no handle to it is left, or the
/// system's shutdown otherwise) and cleanup attached with `attach_functor`
/// runs. What a daemon must not do is block a thread forever: a handler that
/// never returns holds up shutdown like any other.
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
