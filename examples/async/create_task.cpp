// create_task: start work in the background, await it later.
//
// asyncio.create_task schedules a coroutine and returns at once; the caller
// awaits the task when it needs the result. With troupe, `executor::submit`
// starts the work on a worker actor and returns a future at once; `get`
// awaits it.

#include "troupe/configure.hpp"
#include "troupe/error.hpp"
#include "troupe/executor.hpp"

#include <caf/all.hpp>

#include <chrono>
#include <iostream>
#include <string>
#include <thread>

int main() {
  caf::actor_system_config cfg;
  troupe::configure(cfg);
  caf::actor_system sys{cfg};
  auto exec = troupe::executor::make(sys);
  if (!exec) {
    std::cerr << troupe::describe(exec.error()) << '\n';
    return 1;
  }

  // 1. Start the background work; submit returns at once.
  auto task = exec->submit([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100)); // the work
    return std::string{"Background done"};
  });

  // 2. Main goes on while the task runs.
  std::cout << "Main continues immediately" << std::endl;

  // 3. Await the task when its result is needed.
  auto result = task.get();
  if (!result) {
    std::cerr << troupe::describe(result.error()) << '\n';
    return 1;
  }
  std::cout << *result << std::endl;
  return 0;
}
