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
  auto counter = troupe::guarded<int>::make(sys, 0);
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
  auto published = group->publish("echo", echo);
  if (!published || !group->lookup("echo", caf::timespan{0}))
    return 1;
  std::cout << "consumer: group " << group->group() << " works\n";
  return 0; // the publication stops the echo actor
}
