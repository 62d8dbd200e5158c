#include "troupe/ipc/program.hpp"

#include "fork_server.hpp"
#include "roles.hpp"
#include "troupe/ipc/configure.hpp"
#include "troupe/ipc/error.hpp"
#include "troupe/ipc/process_pool.hpp"

#include <caf/all.hpp>

#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <iostream>
#include <optional>

namespace troupe::ipc {

namespace {

/// The program's name as a group name allows it: `[A-Za-z0-9_.-]`, short
/// enough for the pid behind it.
std::string group_prefix(const std::string& program) {
  std::string res;
  for (char c : program.substr(0, 32))
    res +=
      std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-' ? c : '-';
  return res.empty() ? std::string{"troupe"} : res;
}

bool ended_in_order(const caf::error& reason) {
  return !reason || reason == caf::exit_reason::normal || reason == caf::exit_reason::user_shutdown;
}

/// Publishes the actor `make` returns and waits for its end.
int serve_one(process_context& ctx, const std::function<caf::actor(process_context&)>& make) {
  auto actor = make(ctx);
  if (!actor)
    throw program_failure("role '" + ctx.role() + "' made no actor");
  auto* asked = std::getenv(detail::publish_as_env);
  std::string name = asked != nullptr && *asked != '\0' ? asked : ctx.role();
  caf::scoped_actor self{ctx.system()};
  self->monitor(actor);
  auto listing = ctx.group().publish(name, actor);
  if (!listing) {
    self->send_exit(actor, caf::exit_reason::user_shutdown);
    ctx.fail("cannot publish '" + name + "'", listing.error());
  }
  caf::error reason;
  self->receive([&](caf::down_msg& msg) { reason = std::move(msg.reason); });
  return ended_in_order(reason) ? 0 : 1;
}

} // namespace

void process_context::fail(const std::string& what, const caf::error& err) {
  throw program_failure(what + ": " + describe(err));
}

program::program(int argc, char** argv) {
  std::string path = argc > 0 && argv[0] != nullptr ? argv[0] : "troupe";
  auto slash = path.rfind('/');
  name_ = slash == std::string::npos ? path : path.substr(slash + 1);
  for (int i = 1; i < argc; ++i)
    args_.emplace_back(argv[i]);
}

program& program::configure(std::function<void(caf::actor_system_config&)> fn) {
  configure_ = std::move(fn);
  return *this;
}

program& program::options(group_options opts) {
  options_ = opts;
  return *this;
}

program& program::role(std::string name, std::function<int(process_context&)> fn) {
  roles_[std::move(name)] = std::move(fn);
  return *this;
}

program& program::serve(std::string name, std::function<caf::actor(process_context&)> fn) {
  served_[std::move(name)] = std::move(fn);
  return *this;
}

int program::run(std::function<int(process_context&)> parent) {
  // A fork server returns here only in the hosts it forks, in their role.
  if (this_process_role() == detail::fork_server_role)
    args_ = detail::serve_forks();
  // Read (and taken out of the environment) before any thread starts.
  auto role = this_process_role();
  caf::actor_system_config cfg;
  ipc::configure(cfg);
  if (configure_)
    configure_(cfg);
  caf::actor_system sys{cfg};
  detail::await_adoption(); // a forked host: its parent is the asker now
  try {
    return play(sys, role, parent);
  } catch (const std::exception& ex) {
    // The part's locals are gone (its children killed and reaped) and the
    // node has left, so the group is clean. Actors the failed part spawned
    // may never end, and the actor system's shutdown would wait for them:
    // end the process here rather than hang on the way out.
    std::cerr << name_ << ": " << ex.what() << std::endl;
    std::cout.flush();
    std::_Exit(1);
  }
}

int program::play(caf::actor_system& sys, const std::string& role,
                  const std::function<int(process_context&)>& parent) {
  auto group =
    role.empty()
      ? node::create(sys, group_prefix(name_) + "-" + std::to_string(::getpid()), options_)
      : node::join_from_env(sys, options_);
  if (!group)
    process_context::fail(role.empty() ? "cannot create a group" : "cannot join the group",
                          group.error());
  process_context ctx{sys, *group, role, args_};
  int status = 0;
  if (role.empty()) {
    status = parent(ctx);
  } else if (role == detail::pool_worker_role) {
    status = detail::serve_as_pool_worker(sys, *group, args_);
  } else if (role == detail::isolated_role) {
    status = serve_one(ctx, [](process_context& host) {
      return detail::spawn_isolated_actor(host.system(), host.args());
    });
  } else if (role == detail::pool_host_role) {
    status =
      serve_one(ctx, [](process_context& host) { return detail::spawn_pool_host(host.system()); });
  } else if (auto i = roles_.find(role); i != roles_.end()) {
    status = i->second(ctx);
  } else if (auto j = served_.find(role); j != served_.end()) {
    status = serve_one(ctx, j->second);
  } else {
    throw program_failure("started in role '" + role + "', which this program does not define");
  }
  group->leave(); // ends what this process still publishes
  return status;
}

} // namespace troupe::ipc
