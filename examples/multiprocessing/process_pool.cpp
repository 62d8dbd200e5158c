// process_pool: concurrent.futures.ProcessPoolExecutor for CPU-bound work.
//
// The chapter submits three CPU-heavy sums of i*i below 1,000,000 to a
// ProcessPoolExecutor. Here the tasks go to a troupe::ipc::process_pool: each
// `submit` returns a troupe::future at once, the sums run in worker processes
// (this program again, started with posix_spawn), and `get` collects them. A
// task that throws would come back as errc::task_failed, never swallowed.

#include "troupe/ipc/process_pool.hpp"

#include "troupe/error.hpp"
#include "troupe/ipc/configure.hpp"

#include <caf/all.hpp>

#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

namespace {

int64_t sum_of_squares(int64_t n) {
  int64_t sum = 0;
  for (int64_t i = 0; i < n; ++i)
    sum += i * i;
  return sum;
}

} // namespace

int main(int argc, char** argv) {
  if (troupe::ipc::process_pool::is_worker(argc, argv))
    return troupe::ipc::process_pool::run_worker(argc, argv);

  caf::actor_system_config cfg;
  troupe::ipc::configure(cfg);
  caf::actor_system sys{cfg};
  // Workers: one per hardware thread (the default), in a group of the pool's
  // own. With troupe::executor::make(sys) instead, the same sums run on
  // threads.
  auto pool = troupe::ipc::process_pool::make(sys);
  if (!pool) {
    std::cerr << troupe::describe(pool.error()) << '\n';
    return 1;
  }

  // submit returns at once; the three sums run in parallel processes.
  std::vector<troupe::future<int64_t>> futures;
  for (int i = 0; i < 3; ++i)
    futures.push_back(pool->submit(sum_of_squares, int64_t{1'000'000}));
  std::cout << '[';
  for (size_t i = 0; i < futures.size(); ++i) {
    auto sum = futures[i].get();
    if (!sum) {
      std::cerr << "\ntask failed: " << troupe::describe(sum.error()) << '\n';
      return 1;
    }
    std::cout << (i == 0 ? "" : ", ") << *sum;
  }
  std::cout << "]\n";
  pool->shutdown();
  return 0;
}
