// pool_map: multiprocessing.Pool.map, with worker processes as actors.
//
// The chapter squares 0..9 with `Pool(4).map(square, range(10))`. Here a
// troupe::ipc::process_pool starts worker processes (this program again,
// with posix_spawn) in a group of its own; `square` travels to them as its
// place in the program's code, and the results come back in input order.
// Going from threads to processes is one line: `troupe::executor::make(sys)`
// becomes `troupe::ipc::process_pool::make(sys)`.

#include "troupe/error.hpp"
#include "troupe/ipc/configure.hpp"
#include "troupe/ipc/process_pool.hpp"

#include <caf/all.hpp>

#include <iostream>
#include <vector>

namespace {

int square(int x) {
  return x * x;
}

} // namespace

int main(int argc, char** argv) {
  // A worker process runs tasks until its pool stops (or this parent dies).
  if (troupe::ipc::process_pool::is_worker(argc, argv))
    return troupe::ipc::process_pool::run_worker(argc, argv);

  caf::actor_system_config cfg;
  troupe::ipc::configure(cfg);
  caf::actor_system sys{cfg};

  // 1. A pool of two worker processes, in a shared-memory group of its own.
  troupe::ipc::process_pool_options options;
  options.workers = 2;
  auto pool = troupe::ipc::process_pool::make(sys, options);
  if (!pool) {
    std::cerr << troupe::describe(pool.error()) << '\n';
    return 1;
  }

  // 2. map: each input to a worker process, the results in input order.
  std::vector<int> inputs{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  auto results = pool->map(square, inputs);
  std::cout << '[';
  for (size_t i = 0; i < results.size(); ++i) {
    if (!results[i]) {
      std::cerr << "\nsquare(" << inputs[i] << ") failed: " << troupe::describe(results[i].error())
                << '\n';
      return 1;
    }
    std::cout << (i == 0 ? "" : ", ") << *results[i];
  }
  std::cout << "]\n";

  // 3. Stopping the pool ends and reaps its worker processes.
  pool->shutdown();
  return 0;
}
