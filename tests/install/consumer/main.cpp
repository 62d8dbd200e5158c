#include <troupe/configure.hpp>
#include <troupe/guarded.hpp>
#include <troupe/ipc/configure.hpp>
#include <troupe/ipc/node.hpp>

#include <caf/all.hpp>

#include <unistd.h>

#include <iostream>
#include <string>

int main() {
  caf::actor_system_config cfg;
  troupe::ipc::configure(cfg);
  caf::actor_system sys{cfg};
  troupe::guarded<int> counter{sys, 0};
  for (int i = 0; i < 3; ++i)
    if (!counter.update([](int& x) { ++x; }))
      return 1;
  std::cout << "consumer: counter = " << *counter.get() << '\n';
  // A one-node group: create, publish, look up, leave (removes the segment).
  auto group = troupe::ipc::node::create(sys, "consumer-" + std::to_string(::getpid()));
  if (!group) {
    std::cerr << troupe::describe(group.error()) << '\n';
    return 1;
  }
  auto echo = sys.spawn([]() -> caf::behavior { return {[](int x) { return x; }}; });
  if (group->publish("echo", echo) || !group->lookup("echo"))
    return 1;
  std::cout << "consumer: group " << group->group() << " works\n";
  caf::anon_send_exit(echo, caf::exit_reason::kill);
  return 0;
}
