#include "troupe/ipc/process_supervision.hpp"

#include "roles.hpp"
#include "troupe/ipc/error.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <utility>

namespace troupe::ipc {

namespace {

/// The process of one child spec's current incarnation; the next start
/// reaps it, and so does the holder's destructor (when the supervisor
/// ends): after an orderly stop its actor is gone and the process is on its
/// way out, so it gets `grace` to leave the group cleanly before SIGKILL.
struct process_holder {
  std::mutex mtx;
  child_process current;
  caf::timespan grace;

  ~process_holder() {
    if (current.running() && !current.wait(grace))
      current.kill(9); // and child_process's destructor reaps it
  }
};

caf::expected<child_process> start_process(node& group, const process_spec& spec) {
  std::vector<std::string> env{std::string{detail::publish_as_env} + "=" + spec.published_as};
  if (!spec.role.empty())
    env.push_back(std::string{detail::role_env} + "=" + spec.role);
  if (spec.program.empty())
    return group.spawn_self(spec.args, std::move(env));
  return group.spawn(spec.program, spec.args, std::move(env));
}

} // namespace

caf::actor await_published(node& group, child_process& proc, const std::string& name,
                           caf::timespan timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    // This process's actor, never a stale entry of the one before.
    auto actor = group.lookup_in(proc.pid(), name, std::chrono::milliseconds(20));
    if (actor)
      return *actor;
    auto status = proc.wait(caf::timespan{0});
    if (status)
      throw std::runtime_error("process " + std::to_string(proc.pid()) + " " + to_string(*status)
                               + " before it published '" + name + "'");
    if (std::chrono::steady_clock::now() >= deadline) {
      proc.kill(9);
      proc.wait(std::chrono::seconds(5));
      throw std::runtime_error("process " + std::to_string(proc.pid()) + " did not publish '" + name
                               + "' in time");
    }
  }
}

child_spec process_child(node& group, process_spec spec) {
  auto holder = std::make_shared<process_holder>();
  holder->grace = std::min<caf::timespan>(spec.shutdown_timeout, std::chrono::seconds(5));
  child_spec res;
  res.name = spec.name;
  res.restart = spec.restart;
  res.shutdown_timeout = spec.shutdown_timeout;
  auto* n = &group;
  if (spec.published_as.empty())
    spec.published_as = spec.name;
  res.start = [n, holder, spec](caf::actor_system&) -> caf::actor {
    std::lock_guard<std::mutex> guard{holder->mtx};
    // The previous incarnation is gone (or going): reap it before the next.
    if (holder->current.running()) {
      holder->current.kill(9);
      holder->current.wait(std::chrono::seconds(5));
    }
    auto proc = start_process(*n, spec);
    if (!proc)
      throw std::runtime_error(describe(proc.error()));
    holder->current = std::move(*proc);
    return await_published(*n, holder->current, spec.published_as, spec.start_timeout);
  };
  return res;
}

} // namespace troupe::ipc
