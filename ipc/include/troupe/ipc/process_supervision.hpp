#pragma once

/// @file
/// `troupe::ipc::process_child`: a process as a child of a `troupe::supervisor`.

#include "troupe/ipc/node.hpp"
#include "troupe/supervisor.hpp"

#include <caf/timespan.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace troupe::ipc {

/// What `process_child` starts: a process of this program (or another) that
/// joins the group and publishes one actor.
struct process_spec {
  /// The child's name in its supervisor (names the stable handle).
  std::string name;
  /// The role the process is started in (`node::spawn_role`): one that
  /// `troupe::ipc::program::serve` defined, which publishes its actor under
  /// `published_as` by itself. Empty to start the process without a role.
  std::string role;
  /// Arguments for the process; it is started with `node::spawn_self`, or
  /// `program` when that is set.
  std::vector<std::string> args;
  /// The program to start with `node::spawn`; empty for this very program
  /// (`node::spawn_self`).
  std::string program;
  /// The name the process publishes its actor under once it is ready
  /// (`name` if empty). Each incarnation publishes it again; the
  /// supervisor's stable handle follows.
  std::string published_as;
  /// How long a start waits for the process to publish.
  caf::timespan start_timeout = std::chrono::seconds(10);
  /// When the process is restarted (a kill -9 is a crash).
  restart_policy restart = restart_policy::permanent;
  /// How long an orderly stop waits for the process's actor to exit, and
  /// then (up to 5 s) for the process to leave the group, before SIGKILL.
  /// When the supervisor has stopped, every child process has exited.
  caf::timespan shutdown_timeout = std::chrono::seconds(5);
};

/// A child spec for `troupe::supervisor` whose child is a process: every
/// start spawns the process and waits until it published `published_as`;
/// the supervised actor is that published actor, reached across processes.
///
/// So a process is supervised exactly like an actor, with the same
/// strategies and restart intensity: kill -9 of the process is a crash (the
/// actor's monitors see `troupe::errc::peer_lost`), the supervisor starts a new
/// process, and the stable handle and the published name point to the new
/// incarnation. A start that fails (the program cannot be started, or does
/// not publish in time) counts as a failed start.
///
/// The spec owns its processes: the previous incarnation is reaped when the
/// next one starts, and the last one is killed (if it still runs) and reaped
/// when the spec is destroyed with its supervisor. The node must outlive the
/// supervisor. With a `role` defined by `program::serve`, the process does
/// all it must by itself; otherwise it must join with
/// `node::join_from_env`, publish its actor, and exit once that actor has
/// terminated. Either way it ends with the process that supervises it.
[[nodiscard]] child_spec process_child(node& group, process_spec spec);

/// Waits until `proc` publishes `name` in `group` and returns that actor.
/// Throws `std::runtime_error` (which a supervisor or pool counts as a
/// failed start) when the process exits first or `timeout` passes (then it
/// kills the process).
caf::actor await_published(node& group, child_process& proc, const std::string& name,
                           caf::timespan timeout);

} // namespace troupe::ipc
