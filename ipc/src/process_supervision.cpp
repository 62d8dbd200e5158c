#include "troupe/ipc/process_supervision.hpp"

#include "troupe/error.hpp"

#include <caf/all.hpp>

#include <memory>
#include <mutex>
#include <stdexcept>
#include <utility>

namespace troupe::ipc {

namespace {

/// The processes of one child spec: the current incarnation, and the
/// previous ones until they are reaped.
struct process_holder {
  std::mutex mtx;
  child_process current;
};

} // namespace

child_spec process_child(node& group, process_spec spec) {
  auto holder = std::make_shared<process_holder>();
  child_spec res;
  res.name = spec.name;
  res.restart = spec.restart;
  res.shutdown_timeout = spec.shutdown_timeout;
  auto* n = &group;
  res.start = [n, holder, spec](caf::actor_system&) -> caf::actor {
    std::lock_guard<std::mutex> guard{holder->mtx};
    // The previous incarnation is gone (or going): reap it before the next.
    if (holder->current.running()) {
      holder->current.kill(9);
      holder->current.wait(std::chrono::seconds(5));
    }
    auto proc = spec.program.empty() ? n->spawn_self(spec.args) : n->spawn(spec.program, spec.args);
    if (!proc)
      throw std::runtime_error(describe(proc.error()));
    holder->current = std::move(*proc);
    // This incarnation's actor, not a stale entry of the one before.
    auto actor = n->lookup_in(holder->current.pid(), spec.published_as, spec.start_timeout);
    if (!actor) {
      holder->current.kill(9);
      holder->current.wait(std::chrono::seconds(5));
      throw std::runtime_error("process '" + spec.name + "' did not publish '" + spec.published_as
                               + "': " + describe(actor.error()));
    }
    return *actor;
  };
  return res;
}

} // namespace troupe::ipc
