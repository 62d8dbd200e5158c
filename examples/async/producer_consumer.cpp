// producer_consumer: asyncio.Queue as a bounded queue actor.
//
// A producer puts 0..4 into a queue of capacity 2 (it waits whenever the
// queue is full: backpressure), then closes it. A consumer actor takes the
// items, doubles them, and ends cleanly when the closed queue is drained.

#include "troupe/bounded_queue.hpp"
#include "troupe/configure.hpp"
#include "troupe/error.hpp"

#include <caf/all.hpp>

#include <iostream>
#include <vector>

namespace {

using done_atom = caf::atom_constant<caf::atom("done")>;

/// Takes items until the queue says it is closed, then reports them.
caf::behavior consumer(caf::event_based_actor* self, caf::actor queue, caf::actor report_to) {
  auto results = std::make_shared<std::vector<int>>();
  auto next = std::make_shared<std::function<void()>>();
  *next = [self, queue, report_to, results, next] {
    self->request(queue, caf::infinite, caf::get_atom::value, troupe::forever)
      .then(
        [results, next](int item) {
          results->push_back(2 * item);
          (*next)();
        },
        [self, report_to, results, next](caf::error& err) {
          // errc::closed is the end of the stream; anything else is a failure.
          self->send(report_to, done_atom::value, *results, troupe::is(err, troupe::errc::closed));
          *next = nullptr; // break the cycle
          self->quit();
        });
  };
  (*next)();
  return {};
}

} // namespace

int main() {
  caf::actor_system_config cfg;
  troupe::configure(cfg);
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};

  // 1. A queue of at most two items.
  auto queue = troupe::bounded_queue<int>::make(sys, 2);
  if (!queue) {
    std::cerr << troupe::describe(queue.error()) << '\n';
    return 1;
  }

  // 2. The consumer runs on its own; the producer is this thread.
  sys.spawn(consumer, queue->handle(), caf::actor{self});
  for (int i = 0; i < 5; ++i)
    if (auto err = queue->put(self, i)) { // waits while the queue is full
      std::cerr << troupe::describe(err) << '\n';
      return 1;
    }
  if (auto err = queue->close()) {
    std::cerr << troupe::describe(err) << '\n';
    return 1;
  }

  // 3. The consumer's results, once it saw the end of the stream.
  bool clean_end = false;
  self->receive([&](done_atom, const std::vector<int>& results, bool closed) {
    clean_end = closed;
    std::cout << '[';
    for (std::size_t i = 0; i < results.size(); ++i)
      std::cout << (i > 0 ? ", " : "") << results[i];
    std::cout << "]\n";
  });
  std::cout << "high water: " << queue->stats()->high_water << " of 2\n";
  return clean_end ? 0 : 1;
}
