// worker_pool: the chapter's worker-pool pattern, as supervised actors.
//
// 100 items are doubled by 8 worker actors behind a troupe::worker_pool.
// Idle workers pull the next item (balancing dispatch), a crashed worker
// would be replaced, and every request gets its answer.

#include "troupe/worker_pool.hpp"

#include "troupe/configure.hpp"
#include "troupe/error.hpp"

#include <caf/all.hpp>

#include <iostream>
#include <vector>

int main() {
  caf::actor_system_config cfg;
  troupe::configure(cfg);
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};

  // 1. Eight workers; each doubles what it is sent.
  troupe::pool_options options;
  options.workers = 8;
  auto pool = troupe::worker_pool::make(
    sys,
    [](caf::actor_system& s) {
      return s.spawn([]() -> caf::behavior { return {[](int x) { return 2 * x; }}; });
    },
    options);
  if (!pool) {
    std::cerr << troupe::describe(pool.error()) << '\n';
    return 1;
  }

  // 2. 100 requests at once; the pool spreads them over the workers.
  std::vector<decltype(self->request(pool->handle(), caf::infinite, 0))> pending;
  for (int i = 0; i < 100; ++i)
    pending.push_back(self->request(pool->handle(), std::chrono::seconds(10), i));

  // 3. Collect the answers.
  int results = 0;
  long sum = 0;
  for (auto& answer : pending)
    answer.receive(
      [&](int x) {
        ++results;
        sum += x;
      },
      [&](caf::error& err) { std::cerr << troupe::describe(err) << '\n'; });
  std::cout << results << " results, sum = " << sum << '\n';
  if (auto err = pool->stop()) {
    std::cerr << troupe::describe(err) << '\n';
    return 1;
  }
  return results == 100 && sum == 9900 ? 0 : 1;
}
