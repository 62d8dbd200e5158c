#include <troupe/configure.hpp>
#include <troupe/guarded.hpp>

#include <caf/all.hpp>

#include <iostream>

int main() {
  caf::actor_system_config cfg;
  troupe::configure(cfg);
  caf::actor_system sys{cfg};
  troupe::guarded<int> counter{sys, 0};
  for (int i = 0; i < 3; ++i)
    if (!counter.update([](int& x) { ++x; }))
      return 1;
  std::cout << "consumer: counter = " << *counter.get() << '\n';
  return 0;
}
