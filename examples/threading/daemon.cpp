// daemon: a daemon thread rebuilt as a daemon actor.
//
// A background actor ticks every 20 ms. It does not keep the program alive:
// when main's work is done and the actor system goes down, the daemon is
// stopped, its cleanup runs, and the program exits at once.

#include "troupe/daemon.hpp"

#include "troupe/configure.hpp"
#include "troupe/error.hpp"

#include <caf/all.hpp>

#include <chrono>
#include <iostream>

int main() {
  auto start = std::chrono::steady_clock::now();
  {
    caf::actor_system_config cfg;
    troupe::configure(cfg);
    caf::actor_system sys{cfg};

    // 1. The daemon: ticks forever, reports when it is stopped.
    troupe::spawn_daemon(sys, [](caf::event_based_actor* self) -> caf::behavior {
      self->attach_functor([](const caf::error& reason) {
        std::cout << "daemon stopped (" << troupe::describe(reason) << ")" << std::endl;
      });
      self->send(self, caf::tick_atom::value);
      return {[self, n = 0](caf::tick_atom) mutable {
        std::cout << "Background tick " << ++n << std::endl;
        self->delayed_send(self, std::chrono::milliseconds(20), caf::tick_atom::value);
      }};
    });

    // 2. Main's own work: ask a short-lived worker actor a question.
    auto worker = sys.spawn([]() -> caf::behavior { return {[](int x) { return x * x; }}; });
    caf::scoped_actor self{sys};
    self->delayed_send(self, std::chrono::milliseconds(70), caf::ok_atom::value);
    self->receive([](caf::ok_atom) {});
    self->request(worker, std::chrono::seconds(5), 12)
      .receive([](int x) { std::cout << "main: 12 * 12 = " << x << std::endl; },
               [](caf::error&) {});
    std::cout << "main done" << std::endl;
  } // 3. The system goes down here, without waiting for the daemon.
  auto ms =
    std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start)
      .count();
  std::cout << "program ends after " << ms << " ms" << std::endl;
  return 0;
}
