#pragma once

// The fork server: a process of this program, started once and never
// threaded, that forks the host processes of isolated actors and host pools
// (roles `isolated_role` and `pool_host_role`, which `program::run`
// serves). A host forked from it skips what an exec costs (loading and
// relocating CAF's libraries, static initialisation: about 10 ms of a
// 20 ms start on our machines) and builds its actor system from there.
//
// Each host is forked twice (server, then an intermediate that exits at
// once), and the process that asked is a child subreaper
// (PR_SET_CHILD_SUBREAPER) while it waits for the answer, so the host
// becomes that process's child: it waits for it (`child_process`) and
// learns how it ended, as for a host started with posix_spawn. The host
// joins its group only when the server says that has happened (until then
// its parent is the intermediate). Internal.

#include "troupe/ipc/process.hpp"

#include <caf/expected.hpp>

#include <optional>
#include <string>
#include <vector>

namespace troupe::ipc::detail {

/// The role of the fork server's process.
constexpr const char* fork_server_role = "troupe.fork-server";

/// Whether a child in `role` may be forked by the fork server rather than
/// started anew: only the roles `program::run` serves itself.
bool forkable_role(const std::string& role);

/// Starts this program with `args`, its environment changed by `env`
/// (`NAME=value` entries, as for `spawn_process`), forked by this process's
/// fork server (started on first use). Fails when there is no working fork
/// server or the request is too large for one; the caller then starts the
/// program anew, which is slower and otherwise the same.
caf::expected<child_process> fork_self(const std::vector<std::string>& args,
                                       const std::vector<std::string>& env);

/// In the fork server's process (role `fork_server_role`): serves requests
/// until the process that started it is gone, then ends this process.
/// Returns only in a forked host, once its environment and role are set:
/// the host's arguments. Not called in other processes.
std::vector<std::string> serve_forks();

/// In a host the fork server forked: waits until the host is the asker's
/// child (the server says so), and ends the process if the server died
/// before. No-op elsewhere. Before the host joins the group, which watches
/// its parent.
void await_adoption();

/// Starts `program` as `spawn_process` does, with `fd` (which may be
/// close-on-exec here) open in the child under the same number.
caf::expected<child_process> spawn_process_keeping(const std::string& program,
                                                   const std::vector<std::string>& args,
                                                   const std::vector<std::string>& env, int fd);

/// Why starting a process (`what`) failed with `err`: `errc::resource_limit`
/// naming `ulimit -u` for EAGAIN (no new process for this user now), else
/// `errc::spawn_failed`.
caf::error start_failed(const std::string& what, int err);

/// Replaces the role `this_process_role()` reports, read again from the
/// environment (and taken out of it). Only before any thread starts.
void reread_process_role();

} // namespace troupe::ipc::detail
