// process_pool: concurrent.futures.ProcessPoolExecutor for CPU-bound work.
//
// The chapter submits three CPU-heavy sums of i*i below 1,000,000 to a
// ProcessPoolExecutor. Here the tasks go to a troupe::ipc::process_pool: each
// `submit` returns a troupe::future at once, the sums run in worker processes
// (this program again, started with posix_spawn), and `get` collects them. A
// task that throws would come back as errc::task_failed, never swallowed.

#include "troupe/ipc/process_pool.hpp"

#include "troupe/ipc/program.hpp"

#include <caf/all.hpp>

#include <cstdint>
#include <iostream>
#include <utility>
#include <vector>

namespace {

int64_t sum_of_squares(int64_t n) {
  int64_t sum = 0;
  for (int64_t i = 0; i < n; ++i)
    sum += i * i;
  return sum;
}

int parent(troupe::ipc::process_context& ctx) {
  // Workers: one per hardware thread (the default), in a group of the pool's
  // own. With troupe::executor::make(sys) instead, the same sums run on
  // threads.
  auto pool = ctx.check(troupe::ipc::process_pool::make(ctx.system()), "pool");
  // submit returns at once; the three sums run in parallel processes.
  std::vector<troupe::future<int64_t>> futures;
  for (int i = 0; i < 3; ++i)
    futures.push_back(pool.submit(sum_of_squares, int64_t{1'000'000}));
  const char* sep = "[";
  for (auto& f : futures)
    std::cout << std::exchange(sep, ", ") << ctx.check(f.get(), "a task failed");
  std::cout << "]\n";
  (void)pool.stop();
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  return troupe::ipc::program{argc, argv}.run(parent);
}
