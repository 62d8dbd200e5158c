#pragma once

/// @file
/// `troupe::ipc::child_process` and `spawn_process`: child processes started with `posix_spawn`,
/// killed and reaped by their handle.

#include "troupe/ipc/error.hpp"
#include "troupe/timeout.hpp"

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/timespan.hpp>

#include <sys/types.h>

#include <string>
#include <vector>

namespace troupe::ipc {

/// How a child process ended.
struct exit_status {
  /// Whether it returned from `main` or called `exit` (then `code` is the
  /// status); otherwise a signal ended it (then `signal` is its number).
  bool exited = false;
  /// The exit status, if `exited`.
  int code = 0;
  /// The number of the signal that ended it, if not `exited`.
  int signal = 0;

  /// Whether it exited with status 0.
  bool success() const noexcept {
    return exited && code == 0;
  }
};

/// Renders `x` for people: `exited with status 3`, `killed by signal 9 (Killed)`.
std::string to_string(const exit_status& x);

/// A child process started with `posix_spawn` (never a bare `fork`, which is
/// unsafe once CAF's threads run), or forked for this process by its fork
/// server (the hosts of `spawn_isolated`), a process that runs no thread.
///
/// Owns the process: destroying a `child_process` whose process still runs
/// kills it with SIGKILL and reaps it, so no child outlives its handle by
/// accident; call `detach` to let it run on. Not thread-safe: one thread
/// owns a handle.
class child_process {
public:
  /// An empty handle (no process).
  child_process() = default;
  /// Takes ownership of `pid`, a child of this process not reaped yet.
  explicit child_process(pid_t pid) noexcept : pid_(pid) {}
  /// Takes over `other`'s process; `other` is then empty.
  child_process(child_process&& other) noexcept;
  /// Kills (SIGKILL) and reaps this handle's process if it still runs,
  /// then takes over `other`'s.
  child_process& operator=(child_process&& other) noexcept;
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;
  ~child_process();

  /// The process id, or 0 for an empty handle.
  pid_t pid() const noexcept {
    return pid_;
  }

  /// Waits until the process ends, at most `timeout`; fails with
  /// `troupe::errc::timeout` if it is still running then (and leaves it running).
  caf::expected<exit_status> wait(caf::timespan timeout = forever);

  /// Sends `signal` to the process (default SIGKILL).
  caf::error kill(int signal = 9);

  /// Whether the process has not been reaped yet.
  bool running() const noexcept {
    return pid_ > 0 && !reaped_;
  }

  /// Gives up ownership: the process runs on and is no longer reaped here.
  pid_t detach() noexcept;

private:
  pid_t pid_ = 0;
  bool reaped_ = false;
};

/// Starts `program` with `args` (argv[1..]) and the current environment plus
/// `env` (`NAME=value` entries, which override). `program` is searched on
/// PATH when it holds no slash. Fails with `errc::resource_limit` when this
/// user may start no more processes now (`ulimit -u`), and with
/// `errc::spawn_failed` and the reason when the program cannot be started.
caf::expected<child_process> spawn_process(const std::string& program,
                                           const std::vector<std::string>& args = {},
                                           const std::vector<std::string>& env = {});

} // namespace troupe::ipc
