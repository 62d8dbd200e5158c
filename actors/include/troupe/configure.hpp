#pragma once

/// @file
/// `troupe::configure`: prepares an actor system configuration for troupe.

#include <caf/actor_system_config.hpp>

/// troupe's actor layer (`troupe::actors`): the classic concurrency patterns (locks, events,
/// semaphores, pools, futures, queues) rebuilt as CAF actors behind small C++ handles. Link
/// `troupe::actors`. Each object here lives in one process (one actor system; `troupe::ipc` reaches
/// across processes), and every actor behind a handle can be sent to, requested, monitored and
/// linked like any CAF actor.
namespace troupe {

/// Prepares an actor system configuration for troupe: registers troupe's
/// error category, so that `actor_system::render` and CAF's logs print troupe
/// errors by name. Call it once on the config before the actor system is
/// constructed; calling it twice is harmless.
///
/// ```cpp
/// caf::actor_system_config cfg;
/// troupe::configure(cfg);
/// caf::actor_system sys{cfg};
/// ```
void configure(caf::actor_system_config& cfg);

} // namespace troupe
