#pragma once

/// @file
/// `troupe::ipc::publish_groups_tcp`: the process groups of this host, reached from other hosts
/// through CAF's middleman.

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include <cstdint>
#include <string>

namespace troupe::ipc {

/// Publishes the process groups (the group module "troupe", see
/// `configure`) at TCP `port` (0: a free one), on the interface `in` (empty:
/// all), for processes of other hosts; returns the port. There, CAF's own
/// `sys.middleman().remote_group("news", host, port)` gives the group
/// "news" of this host's troupe group: its subscribers there join it, and
/// what they send reaches every subscriber here, in every process of the
/// troupe group, as a message sent here would. The other host's actor system
/// needs `troupe::ipc::configure` too (which adds the module that reads the
/// handle).
///
/// A group handle also travels on its own, in any message: read in a
/// process of the same troupe group on this host, it is the group by name;
/// read anywhere else, it reaches the group through the process that wrote
/// it (its *gateway*), which holds the other host's subscribers. The
/// messages of one sender keep their order for each subscriber. When the
/// gateway's process or the connection to it is gone, the subscribers there
/// get a `caf::group_down_msg`, as with CAF's remote groups. The sender of a
/// message from another host is known in the gateway's process; in the other
/// processes of the troupe group it arrives without one.
///
/// ```cpp
/// // host A, a process of the troupe group
/// auto port = troupe::ipc::publish_groups_tcp(sys, 4242);
/// // host B
/// auto news = sys.middleman().remote_group("news", "host-a", 4242);
/// self->join(*news);
/// ```
caf::expected<uint16_t> publish_groups_tcp(caf::actor_system& sys, uint16_t port,
                                           const std::string& in = "");

} // namespace troupe::ipc
