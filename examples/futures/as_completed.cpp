// as_completed: futures yielded in the order they finish.
//
// Three tasks take 3, 1 and 2 time units. as_completed hands each future
// over as soon as its task is done, so they come out 1, 2, 3.

#include "troupe/configure.hpp"
#include "troupe/error.hpp"
#include "troupe/executor.hpp"
#include "troupe/future.hpp"

#include <caf/all.hpp>

#include <chrono>
#include <iostream>
#include <thread>
#include <vector>

int main() {
  caf::actor_system_config cfg;
  troupe::configure(cfg);
  caf::actor_system sys{cfg};

  // 1. One worker per task, so all three run at once.
  troupe::executor_options options;
  options.workers = 3;
  auto pool = troupe::executor::make(sys, options);
  if (!pool) {
    std::cerr << troupe::describe(pool.error()) << '\n';
    return 1;
  }

  // 2. Tasks that take 3, 1 and 2 units of 100 ms, submitted in that order.
  std::vector<troupe::future<int>> futures;
  for (int units : {3, 1, 2})
    futures.push_back(pool->submit([units] {
      std::this_thread::sleep_for(std::chrono::milliseconds(100 * units)); // the work
      return units;
    }));

  // 3. Take them as they complete.
  for (auto& f : troupe::as_completed<int>{futures}) {
    auto result = f.get();
    if (!result) {
      std::cerr << troupe::describe(result.error()) << '\n';
      return 1;
    }
    std::cout << "Completed: " << *result << '\n';
  }
  return 0;
}
