#pragma once

// Test support for multi-process tests: a unique group per test, a guard that
// leaves nothing in /dev/shm (also when a test fails), and helpers to start
// and reach child processes.

#include "messages.hpp"
#include "troupe/ipc/error.hpp"
#include "troupe/ipc/node.hpp"
#include "troupe/ipc/process_supervision.hpp"

#include <caf/all.hpp>
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#ifndef TROUPE_IPC_CHILD
#error "TROUPE_IPC_CHILD must name the child program"
#endif

namespace troupe::test::ipc {

constexpr auto deadline = std::chrono::seconds(10);

/// A group name no other test (or test run) uses.
inline std::string unique_group(const char* tag) {
  static std::atomic<int> counter{0};
  return std::string{"t-"} + tag + "-" + std::to_string(::getpid()) + "-"
         + std::to_string(counter++);
}

inline std::string shm_path(const std::string& group) {
  return "/dev/shm/troupe." + group;
}

inline bool shm_exists(const std::string& group) {
  struct stat st {};
  return ::stat(shm_path(group).c_str(), &st) == 0;
}

/// Removes the group's segment when the test ends, however it ends.
struct shm_guard {
  std::string group;
  ~shm_guard() {
    std::remove(shm_path(group).c_str());
  }
};

/// The state letter of a process (`R`, `S`, `T` for stopped...), or 0.
inline char process_state(pid_t pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/stat"};
  std::string line;
  if (!std::getline(in, line))
    return 0;
  auto close = line.rfind(')');
  return close == std::string::npos || close + 2 >= line.size() ? 0 : line[close + 2];
}

/// How a program run by `run_program` ended.
struct program_result {
  int status = -1;
  std::string output; // stdout and stderr
};

/// Runs `program ARGS` (a shell command line) to its end and collects its
/// exit status (-1 if a signal ended it) and output.
inline program_result run_program(const std::string& program, const std::string& args) {
  auto cmd = program + " " + args + " 2>&1";
  program_result res;
  auto* pipe = ::popen(cmd.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0)
    res.output.append(buf, n);
  auto st = ::pclose(pipe);
  res.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return res;
}

/// Whether `haystack` has `needle` in it (program output, say).
inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

/// Polls `pred` until it holds or the deadline passed.
template <class Pred>
bool eventually(Pred pred, std::chrono::steady_clock::duration limit = deadline) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (pred())
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return pred();
}

/// Makes a request on behalf of the test and reports the outcome to `report`
/// as a string: the answer, or the error's description.
inline caf::behavior asker(caf::event_based_actor* self, caf::actor report) {
  return {
    [=](const caf::actor& dest, hold_atom) {
      self->request(dest, caf::infinite, hold_atom::value)
        .then([=](int32_t) { self->send(report, std::string{"answered"}); },
              [=](caf::error& err) { self->send(report, troupe::describe(err)); });
    },
  };
}

/// A supervised `troupe-ipc-child serve NAME` process: an echo actor
/// published as `name` (the supervisor's child of that name too).
inline troupe::ipc::process_spec echo_process(const std::string& name) {
  troupe::ipc::process_spec spec;
  spec.name = name;
  spec.program = TROUPE_IPC_CHILD;
  spec.args = {"serve", name};
  return spec;
}

/// A process in a group with a scoped actor to ask from.
struct ipc_fixture {
  std::string group;
  shm_guard guard{group};
  config cfg{true};
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};

  /// Actors the test spawned; killed when the test ends, however it ends, so
  /// the actor system can shut down.
  std::vector<caf::actor> spawned;

  explicit ipc_fixture(const char* tag) : group(unique_group(tag)) {}

  ~ipc_fixture() {
    for (auto& a : spawned)
      caf::anon_send_exit(a, caf::exit_reason::kill);
  }

  template <class... Ts>
  caf::actor spawn(Ts&&... xs) {
    auto res = caf::actor{sys.spawn(std::forward<Ts>(xs)...)};
    spawned.push_back(res);
    return res;
  }

  /// Starts a child that serves an echo actor under `name` (and `name.ctl`).
  troupe::ipc::child_process serve(troupe::ipc::node& n, const std::string& name) {
    auto child = n.spawn(TROUPE_IPC_CHILD, {"serve", name});
    REQUIRE_MESSAGE(child, troupe::describe(child.error()));
    return std::move(*child);
  }

  /// Finds `name`, waiting for it to be published.
  caf::actor find(troupe::ipc::node& n, const std::string& name) {
    auto x = n.lookup(name, deadline);
    REQUIRE_MESSAGE(x, troupe::describe(x.error()));
    return *x;
  }

  /// Asks `dest` and returns the answer of type T, or the error.
  template <class T, class... Ts>
  caf::expected<T> ask(const caf::actor& dest, Ts&&... xs) {
    caf::expected<T> res = caf::make_error(caf::sec::request_timeout);
    self->request(dest, deadline, std::forward<Ts>(xs)...)
      .receive([&](T& x) { res = std::move(x); }, [&](caf::error& err) { res = std::move(err); });
    return res;
  }
};

} // namespace troupe::test::ipc
