#include "troupe/ipc/isolated.hpp"

#include "fork_server.hpp"
#include "roles.hpp"
#include "segment.hpp"
#include "troupe/ipc/process_supervision.hpp"

#include <caf/all.hpp>

#include <unistd.h>

#include <atomic>
#include <stdexcept>

namespace troupe::ipc {

namespace detail {

std::vector<std::string> isolated_host_args(caf::actor_system& sys, const std::string& type,
                                            const caf::message& args) {
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  if (auto err = sink(const_cast<caf::message&>(args)))
    throw std::runtime_error("cannot serialize the arguments of '" + type + "': " + describe(err));
  return {type, to_hex(buf.data(), buf.size())};
}

caf::error check_actor_type(caf::actor_system& sys, const std::string& type) {
  if (sys.config().actor_factories.count(type) == 0)
    return caf::make_error(caf::sec::unknown_type,
                           "no actor type '" + type + "' is registered (add_actor_type)");
  return caf::none;
}

caf::actor spawn_isolated_actor(caf::actor_system& sys, const std::vector<std::string>& args) {
  if (args.size() != 2)
    throw std::runtime_error("a host of an isolated actor takes its type and its arguments");
  auto bytes = from_hex(args[1]);
  if (!bytes)
    throw std::runtime_error("the arguments of '" + args[0] + "' are not hex");
  caf::message msg;
  caf::binary_deserializer source{sys, *bytes};
  if (auto err = source(msg))
    throw std::runtime_error("cannot read the arguments of '" + args[0] + "': " + describe(err));
  auto spawned = sys.spawn<caf::actor>(args[0], std::move(msg), nullptr, false);
  if (!spawned)
    throw std::runtime_error("cannot spawn '" + args[0] + "': " + describe(spawned.error()));
  return std::move(*spawned);
}

} // namespace detail

child_spec isolated_child(node& group, std::string type, caf::message args,
                          const isolation_options& opts) {
  static std::atomic<uint64_t> instances{0};
  process_spec spec;
  // Published under it too: unique in the group, whichever process asks.
  spec.name = opts.name.empty()
                ? type + "." + std::to_string(::getpid()) + "." + std::to_string(++instances)
                : opts.name;
  spec.role = detail::isolated_role;
  spec.args = detail::isolated_host_args(group.system(), type, args);
  spec.restart = opts.restart;
  spec.start_timeout = opts.start_timeout;
  spec.shutdown_timeout = opts.shutdown_timeout;
  return process_child(group, std::move(spec));
}

caf::expected<isolated_actor> isolated_actor::make(node& group, std::string type, caf::message args,
                                                   isolation_options opts) {
  auto& sys = group.system();
  if (auto err = detail::check_actor_type(sys, type))
    return err;
  child_spec child;
  try {
    child = isolated_child(group, std::move(type), std::move(args), opts);
  } catch (const std::exception& ex) {
    return make_error(troupe::errc::invalid_argument, ex.what());
  }
  return supervise(sys, std::move(opts.flags), std::move(child));
}

caf::expected<isolated_actor> isolated_actor::supervise(caf::actor_system& sys,
                                                        supervisor_flags flags, child_spec child) {
  auto name = child.name;
  auto sup = supervisor::make(sys, std::move(flags), {std::move(child)});
  if (!sup)
    return std::move(sup.error());
  auto stable = sup->child(name);
  if (!stable)
    return std::move(stable.error());
  return isolated_actor{sup->handle(), std::move(*stable)};
}

bool is_isolated_host() {
  auto role = this_process_role();
  return role == detail::isolated_role || role == detail::pool_host_role
         || role == detail::fork_server_role;
}

} // namespace troupe::ipc
