// future_errors: an exception in a task is not lost.
//
// The chapter's pitfall: an exception raised in a submitted task vanishes
// unless someone asks for the result. With troupe the exception becomes an
// error in the task's future (errc::task_failed with its message), delivered
// to whoever takes the result; the worker survives it.

#include "troupe/configure.hpp"
#include "troupe/error.hpp"
#include "troupe/executor.hpp"

#include <caf/all.hpp>

#include <iostream>
#include <stdexcept>

int main() {
  caf::actor_system_config cfg;
  troupe::configure(cfg);
  caf::actor_system sys{cfg};
  auto pool = troupe::executor::make(sys);
  if (!pool) {
    std::cerr << troupe::describe(pool.error()) << '\n';
    return 1;
  }

  // 1. A task that throws.
  auto failing = pool->submit([]() -> int { throw std::runtime_error("oops"); });

  // 2. Taking the result hands over the error with the exception's message.
  auto result = failing.get();
  if (result) {
    std::cerr << "the exception was lost\n";
    return 1;
  }
  const auto& ctx = result.error().context();
  std::cout << "Caught: " << (ctx.match_elements<std::string>() ? ctx.get_as<std::string>(0) : "?")
            << '\n';
  std::cout << "as an error: " << troupe::describe(result.error()) << '\n';

  // 3. The pool goes on working.
  auto next = pool->submit([] { return 6 * 7; });
  std::cout << "next task: " << *next.get() << '\n';
  return troupe::is(result.error(), troupe::errc::task_failed) ? 0 : 1;
}
