#pragma once

/// @file
/// `troupe::ipc::host_pool`: a fixed set of supervised host processes that isolated actors are
/// placed on, round robin or on the least loaded.

#include "troupe/ipc/isolated.hpp"
#include "troupe/ipc/node.hpp"
#include "troupe/owner_handle.hpp"
#include "troupe/supervisor.hpp"

#include <caf/expected.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace troupe::ipc {

namespace detail {
struct placement_state;
} // namespace detail

/// Which host process of a `host_pool` an actor is placed on.
enum class placement {
  /// Each actor, and each restart of one, on the next process in turn.
  round_robin,
  /// On the process with the fewest live actors of the pool.
  least_loaded,
};

/// How a `host_pool` runs.
struct host_pool_options {
  /// How many host processes (1 to 64).
  size_t hosts = 2;
  /// How actors are placed on them.
  placement place = placement::round_robin;
  /// The restart rules of the host processes, and of each placed actor.
  supervisor_flags flags;
  /// How long starting a host process, or placing an actor, may take.
  caf::timespan start_timeout = std::chrono::seconds(10);
};

/// A fixed set of processes of this program (started again in a role that
/// `troupe::ipc::program` serves by itself) under one supervisor, and the
/// actors placed on them. Where `spawn_isolated` gives each actor a process
/// of its own, a pool shares a few among many actors: a crash of a host
/// process takes the actors on it, and nothing else. The host processes are
/// forked as `isolated_child` says.
///
/// Each placed actor runs under a supervisor of its own with the pool's
/// restart rules, as an isolated actor does: its stable handle reaches the
/// next incarnation, which is placed again (on a live host; a crashed host
/// is restarted by the pool's supervisor meanwhile), and requests the dead
/// one had not answered fail with `errc::child_down`. When no host runs at
/// that moment (all restarting), the placement fails and the actor's
/// supervisor tries again after its backoff, within its restart intensity.
///
/// The handle owns the hosts' supervisor: `stop` ends it and the host
/// processes, and so does the last copy going away. Placed actors are then
/// gone with their hosts; their supervisors give up. The node must outlive
/// the pool and the actors placed on it.
class host_pool : public owner_handle {
public:
  host_pool() = default;

  /// Starts `opts.hosts` host processes and waits until each runs. Fails
  /// with `errc::invalid_argument` for a count out of range, or with the
  /// supervisor's error if a host does not start.
  [[nodiscard]] static caf::expected<host_pool> make(node& group, host_pool_options opts = {});

  /// Places an actor of the type registered as `type` (`cfg.add_actor_type`,
  /// in `program::configure`) made from `args` on a host process, by the
  /// pool's `placement`. Fails with `sec::unknown_type` if this process has
  /// no such type registered, and with `errc::start_failed` if the first
  /// placement fails (its context says why: `spawn_in`'s error, such as
  /// arguments the type does not take, or no host process running).
  template <class... Ts>
  [[nodiscard]] caf::expected<isolated_actor> spawn(std::string type, Ts&&... args) {
    return spawn_message(std::move(type), caf::make_message(std::forward<Ts>(args)...));
  }

  /// `spawn` with the arguments as a message.
  [[nodiscard]] caf::expected<isolated_actor> spawn_message(std::string type, caf::message args);

  /// The pids of the host processes that run now, in the pool's order (a
  /// restarted one has a new pid; one that is down is left out).
  [[nodiscard]] std::vector<pid_t> pids() const;

private:
  host_pool(caf::actor supervisor, std::shared_ptr<detail::placement_state> state)
    : owner_handle(std::move(supervisor)), state_(std::move(state)) {}

  std::shared_ptr<detail::placement_state> state_;
  /// The restart rules of each placed actor's supervisor.
  supervisor_flags flags_;
};

} // namespace troupe::ipc
