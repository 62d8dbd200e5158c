// event: threading.Event as an actor.
//
// A waiter blocks on an event until a setter actor sets it a moment later.
// Then: a wait with a timeout on a cleared event ends in an error instead of
// hanging, and a waiter arriving after `set` returns at once.

#include "troupe/event.hpp"

#include "troupe/configure.hpp"
#include "troupe/error.hpp"

#include <caf/all.hpp>

#include <iostream>
#include <thread>

int main() {
  caf::actor_system_config cfg;
  troupe::configure(cfg);
  caf::actor_system sys{cfg};
  auto ev = troupe::event::make(sys);

  // 1. The setter: an actor that sets the event 100 ms after it starts.
  sys.spawn([ev](caf::event_based_actor* self) -> caf::behavior {
    self->delayed_send(self, std::chrono::milliseconds(100), caf::tick_atom::value);
    return {[self, ev](caf::tick_atom) { self->quit(ev.set()); }};
  });

  // 2. The waiter: a thread that blocks until the event is set.
  std::thread waiter{[&] {
    std::cout << "Waiting for event..." << std::endl;
    if (auto err = ev.wait(std::chrono::seconds(10)))
      std::cout << "wait failed: " << troupe::describe(err) << std::endl;
    else
      std::cout << "Event received!" << std::endl;
  }};
  waiter.join();

  // 3. A late waiter returns at once: the event stays set.
  auto late = ev.wait(std::chrono::milliseconds(0));
  std::cout << "late waiter: " << (late ? troupe::describe(late) : "returned at once") << std::endl;

  // 4. After clear, a wait with a timeout ends in an error, not a hang.
  if (auto err = ev.clear()) {
    std::cerr << troupe::describe(err) << '\n';
    return 1;
  }
  auto timed = ev.wait(std::chrono::milliseconds(50));
  std::cout << "wait after clear: " << troupe::describe(timed) << std::endl;
  return !late && troupe::is(timed, troupe::errc::timeout) ? 0 : 1;
}
