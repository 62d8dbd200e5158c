// thread_pool: ThreadPoolExecutor.map, on supervised worker actors.
//
// Three simulated fetches run on a troupe::executor; `map` hands back the
// results in the order of the inputs, however the fetches interleave.

#include "troupe/configure.hpp"
#include "troupe/error.hpp"
#include "troupe/executor.hpp"

#include <caf/all.hpp>

#include <chrono>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

int main() {
  caf::actor_system_config cfg;
  troupe::configure(cfg);
  caf::actor_system sys{cfg};

  // 1. An executor with three workers (threads of their own).
  troupe::executor_options options;
  options.workers = 3;
  auto pool = troupe::executor::make(sys, options);
  if (!pool) {
    std::cerr << troupe::describe(pool.error()) << '\n';
    return 1;
  }

  // 2. A "fetch" that takes a while: the later URLs answer sooner.
  std::vector<std::string> urls{"http://a.com", "http://b.com", "http://c.com"};
  auto fetch = [](const std::string& url) {
    auto delay = url == "http://a.com" ? 30 : url == "http://b.com" ? 20 : 10;
    std::this_thread::sleep_for(std::chrono::milliseconds(delay)); // the simulated network
    return "Data from " + url;
  };

  // 3. map: the results in input order, each a value or an error.
  int failures = 0;
  for (auto& result : pool->map(fetch, urls)) {
    if (result) {
      std::cout << *result << '\n';
    } else {
      std::cout << "failed: " << troupe::describe(result.error()) << '\n';
      ++failures;
    }
  }
  return failures == 0 ? 0 : 1;
}
