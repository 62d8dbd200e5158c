#pragma once

#include <caf/actor_system_config.hpp>

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
