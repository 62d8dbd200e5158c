// async_iterator: an async generator as a producer actor pulled with credit.
//
// The producer makes the next value only when the consumer pulls (with a
// credit of 2, it runs at most two values ahead); the loop ends cleanly when
// the stream does.

#include "troupe/configure.hpp"
#include "troupe/error.hpp"
#include "troupe/generator.hpp"

#include <caf/all.hpp>

#include <iostream>
#include <optional>

int main() {
  caf::actor_system_config cfg;
  troupe::configure(cfg);
  caf::actor_system sys{cfg};

  // 1. A producer of 0..4 (it runs on the generator's own thread).
  troupe::generator<int> numbers{sys,
                                 [i = 0]() mutable -> std::optional<int> {
                                   if (i == 5)
                                     return std::nullopt; // the end of the stream
                                   return i++;
                                 },
                                 2};

  // 2. Pull the values one at a time.
  for (int x : numbers)
    std::cout << x << '\n';

  // 3. A clean end, or the producer's error.
  if (numbers.error()) {
    std::cerr << troupe::describe(numbers.error()) << '\n';
    return 1;
  }
  std::cout << "end of stream\n";
  return 0;
}
