#pragma once

/// @file
/// `troupe::ipc::add_managed_types`: registers the message types of managed containers of common
/// element types.

#include <caf/actor_system_config.hpp>

#include <cstdint>
#include <vector>

namespace troupe::ipc {

/// Registers the message types that managed containers of the common element
/// types need beyond CAF's built-in ones: `std::vector<int32_t>`,
/// `std::vector<int64_t>` and `std::vector<double>`, under those names
/// (`std::string`, the integers, `double`, `bool` and
/// `std::vector<std::string>` are built into CAF). Call it on the config of
/// every process that uses such a container, before the actor system is
/// constructed; each process must register each type under the same name,
/// so do not register these vectors under other names as well.
///
/// ```cpp
/// caf::actor_system_config cfg;
/// troupe::ipc::configure(cfg);
/// troupe::ipc::add_managed_types(cfg);
/// ```
inline void add_managed_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<std::vector<int32_t>>("std::vector<int32_t>");
  cfg.add_message_type<std::vector<int64_t>>("std::vector<int64_t>");
  cfg.add_message_type<std::vector<double>>("std::vector<double>");
}

} // namespace troupe::ipc
