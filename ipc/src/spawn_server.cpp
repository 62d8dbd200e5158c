#include "spawn_server.hpp"

#include "troupe/ipc/detail/shared_call.hpp"
#include "troupe/ipc/node.hpp"

#include <caf/all.hpp>

#include <unistd.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

namespace troupe::ipc::detail {

namespace {

std::string where_and_what(const std::string& type) {
  return "actor type '" + type + "' in process " + std::to_string(::getpid());
}

/// CAF's error for a failed spawn, with the type and this process named.
caf::error explain(caf::error err, const std::string& type, const caf::message& args) {
  if (err == caf::sec::unknown_type)
    return caf::make_error(caf::sec::unknown_type,
                           "no " + where_and_what(type) + " (add_actor_type registers one)");
  if (err == caf::sec::cannot_spawn_actor_from_arguments)
    return caf::make_error(caf::sec::cannot_spawn_actor_from_arguments,
                           where_and_what(type) + " cannot be made from the arguments "
                             + caf::to_string(args));
  if (err == caf::sec::unexpected_actor_messaging_interface)
    return caf::make_error(caf::sec::unexpected_actor_messaging_interface,
                           where_and_what(type) + " does not have the interface of the handle");
  return err;
}

/// The actors the server spawned that still run (weak: their own
/// handles keep them, not the server).
struct spawn_server_state {
  std::vector<caf::actor_addr> spawned;
};

using spawn_server_actor = caf::stateful_actor<spawn_server_state>;

caf::behavior spawn_server(spawn_server_actor* self) {
  // What it spawned ends with it: the node ends it when it leaves. It
  // monitors rather than links: an actor killed with `exit_reason::kill`
  // would take a linked server down with it, however it traps exits.
  self->set_exit_handler([self](caf::exit_msg& msg) {
    for (auto& addr : self->state.spawned)
      caf::anon_send_exit(addr, caf::exit_reason::user_shutdown);
    self->quit(std::move(msg.reason));
  });
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& xs = self->state.spawned;
    xs.erase(std::remove(xs.begin(), xs.end(), msg.source), xs.end());
  });
  return {
    [self](spawn_in_atom, const std::string& type, caf::message& args,
           const std::set<std::string>& interface, bool check) -> caf::result<caf::actor> {
      auto spawned = self->system().spawn<caf::actor>(type, args, self->context(), check,
                                                      check ? &interface : nullptr);
      if (!spawned)
        return explain(std::move(spawned.error()), type, args);
      self->monitor(*spawned);
      self->state.spawned.push_back(spawned->address());
      return std::move(*spawned);
    },
  };
}

} // namespace

caf::actor start_spawn_server(caf::actor_system& sys) {
  // Not hidden: the actor system waits for it to end (the node ends it when
  // it leaves), so it never outlives the scheduler. Served on the reader
  // threads: what it spawns is then first run there too, and answers a
  // request that follows the spawn without a scheduler thread waking up.
  return served_on_readers(sys.spawn(spawn_server));
}

} // namespace troupe::ipc::detail
