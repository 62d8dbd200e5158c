// pool_map: multiprocessing.Pool.map, with worker processes as actors.
//
// The chapter squares 0..9 with `Pool(4).map(square, range(10))`. Here a
// troupe::ipc::process_pool starts worker processes (this program again,
// with posix_spawn; troupe::ipc::program serves them) in a group of its own;
// `square` travels to them as its place in the program's code, and the
// results come back in input order. Going from threads to processes is one
// line: `troupe::executor::make(sys)` becomes
// `troupe::ipc::process_pool::make(sys)`.

#include "troupe/ipc/process_pool.hpp"
#include "troupe/ipc/program.hpp"

#include <caf/all.hpp>

#include <iostream>
#include <utility>
#include <vector>

namespace {

int square(int x) {
  return x * x;
}

int parent(troupe::ipc::process_context& ctx) {
  troupe::ipc::process_pool_options options;
  options.workers = 2;
  auto pool = ctx.check(troupe::ipc::process_pool::make(ctx.system(), options), "pool");
  // map: each input to a worker process, the results in input order.
  std::vector<int> inputs{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  auto results = pool.map(square, inputs);
  const char* sep = "[";
  for (auto& result : results)
    std::cout << std::exchange(sep, ", ") << ctx.check(std::move(result), "square");
  std::cout << "]\n";
  (void)pool.stop(); // ends and reaps the worker processes
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  return troupe::ipc::program{argc, argv}.run(parent);
}
