#include "troupe/ipc/process.hpp"

#include "fork_server.hpp"
#include "troupe/ipc/error.hpp"

#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <utility>

extern char** environ;

namespace troupe::ipc {

std::string to_string(const exit_status& x) {
  if (x.exited)
    return "exited with status " + std::to_string(x.code);
  std::string res = "killed by signal " + std::to_string(x.signal);
  if (auto* name = strsignal(x.signal))
    res += std::string{" ("} + name + ")";
  return res;
}

child_process::child_process(child_process&& other) noexcept
  : pid_(std::exchange(other.pid_, 0)), reaped_(std::exchange(other.reaped_, false)) {}

child_process& child_process::operator=(child_process&& other) noexcept {
  if (this != &other) {
    if (running()) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    pid_ = std::exchange(other.pid_, 0);
    reaped_ = std::exchange(other.reaped_, false);
  }
  return *this;
}

child_process::~child_process() {
  if (running()) {
    ::kill(pid_, SIGKILL);
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
}

pid_t child_process::detach() noexcept {
  reaped_ = true;
  return pid_;
}

caf::error child_process::kill(int signal) {
  if (!running())
    return make_error(troupe::errc::invalid_argument, "the process was already reaped");
  if (::kill(pid_, signal) != 0)
    return make_error(troupe::errc::invalid_argument,
                      "kill(" + std::to_string(pid_) + "): " + std::strerror(errno));
  return caf::none;
}

caf::expected<exit_status> child_process::wait(caf::timespan timeout) {
  if (!running())
    return make_error(troupe::errc::invalid_argument, "no running process to wait for");
  auto decode = [this](int status) {
    reaped_ = true;
    exit_status res;
    if (WIFEXITED(status)) {
      res.exited = true;
      res.code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      res.signal = WTERMSIG(status);
    }
    return res;
  };
  int status = 0;
  if (troupe::detail::is_forever(timeout)) {
    for (;;) {
      auto rc = ::waitpid(pid_, &status, 0);
      if (rc == pid_)
        return decode(status);
      if (rc < 0 && errno != EINTR)
        return make_error(troupe::errc::invalid_argument,
                          std::string{"waitpid: "} + std::strerror(errno));
    }
  }
  // No portable way to wait on a child with a deadline before pidfd: poll
  // with a short, growing interval (this is a process lifetime, not a hot
  // path).
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::microseconds(100);
  for (;;) {
    auto rc = ::waitpid(pid_, &status, WNOHANG);
    if (rc == pid_)
      return decode(status);
    if (rc < 0 && errno != EINTR)
      return make_error(troupe::errc::invalid_argument,
                        std::string{"waitpid: "} + std::strerror(errno));
    if (std::chrono::steady_clock::now() >= deadline)
      return make_error(troupe::errc::timeout, "process " + std::to_string(pid_) + " still runs");
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(10'000));
  }
}

caf::expected<child_process> spawn_process(const std::string& program,
                                           const std::vector<std::string>& args,
                                           const std::vector<std::string>& env) {
  return detail::spawn_process_keeping(program, args, env, -1);
}

caf::expected<child_process> detail::spawn_process_keeping(const std::string& program,
                                                           const std::vector<std::string>& args,
                                                           const std::vector<std::string>& env,
                                                           int fd) {
  if (program.empty())
    return make_error(errc::spawn_failed, "no program given");
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(program.c_str()));
  for (auto& arg : args)
    argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  // The environment: ours, minus the names `env` overrides, plus `env`.
  std::vector<char*> envp;
  auto overridden = [&env](const char* entry) {
    for (auto& e : env) {
      auto eq = e.find('=');
      if (eq != std::string::npos && std::strncmp(entry, e.c_str(), eq + 1) == 0)
        return true;
    }
    return false;
  };
  for (char** e = environ; e != nullptr && *e != nullptr; ++e)
    if (!overridden(*e))
      envp.push_back(*e);
  for (auto& e : env)
    envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  // Duplicating a descriptor onto itself clears its close-on-exec flag in
  // the child (glibc 2.29 and later).
  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  if (fd >= 0)
    ::posix_spawn_file_actions_adddup2(&actions, fd, fd);
  pid_t pid = 0;
  auto rc = program.find('/') == std::string::npos
              ? ::posix_spawnp(&pid, program.c_str(), &actions, nullptr, argv.data(), envp.data())
              : ::posix_spawn(&pid, program.c_str(), &actions, nullptr, argv.data(), envp.data());
  ::posix_spawn_file_actions_destroy(&actions);
  if (rc != 0)
    return start_failed("cannot start '" + program + "'", rc);
  return child_process{pid};
}

caf::error detail::start_failed(const std::string& what, int err) {
  if (err != EAGAIN)
    return make_error(errc::spawn_failed, what + ": " + std::strerror(err));
  rlimit lim{};
  ::getrlimit(RLIMIT_NPROC, &lim);
  auto limit =
    lim.rlim_cur == RLIM_INFINITY ? std::string{"unlimited"} : std::to_string(lim.rlim_cur);
  return make_error(errc::resource_limit,
                    what + ": no new process now: this user's process limit (ulimit -u is " + limit
                      + ") or the system's (kernel.threads-max, kernel.pid_max) is reached");
}

} // namespace troupe::ipc
