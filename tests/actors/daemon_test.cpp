#include "support/fixture.hpp"
#include "troupe/daemon.hpp"

#include <atomic>
#include <future>

TEST_SUITE("actors.daemon") {

  TEST_CASE("a ticking daemon does not keep its actor system alive") {
    std::promise<void> first_tick;
    std::promise<caf::error> stopped;
    auto done = std::async(std::launch::async, [&] {
      troupe::test::fixture::config cfg;
      caf::actor_system sys{cfg};
      troupe::spawn_daemon(sys, [&](caf::event_based_actor* self) -> caf::behavior {
        self->attach_functor([&](const caf::error& reason) { stopped.set_value(reason); });
        self->send(self, caf::tick_atom::value);
        return {[self, &first_tick, ticks = 0](caf::tick_atom) mutable {
          if (++ticks == 1)
            first_tick.set_value();
          self->delayed_send(self, std::chrono::milliseconds(5), caf::tick_atom::value);
        }};
      });
      first_tick.get_future().wait();
      // Leaving the scope destroys the system: it must not wait for the daemon.
    });
    REQUIRE(done.wait_for(troupe::test::deadline) == std::future_status::ready);
    auto reason = stopped.get_future();
    REQUIRE(reason.wait_for(troupe::test::deadline) == std::future_status::ready);
    CHECK(reason.get() != caf::error{}); // it was stopped, not finished by itself
  }

  TEST_CASE("an ordinary actor is still awaited by its actor system") {
    // The contrast that makes the daemon worth having: a non-daemon actor is
    // waited for, so the system's destructor returns only after it finished.
    std::atomic<bool> finished{false};
    {
      troupe::test::fixture::config cfg;
      caf::actor_system sys{cfg};
      sys.spawn([&](caf::event_based_actor* self) -> caf::behavior {
        self->delayed_send(self, std::chrono::milliseconds(20), caf::tick_atom::value);
        return {[self, &finished](caf::tick_atom) {
          finished = true;
          self->quit();
        }};
      });
    }
    CHECK(finished);
  }

} // TEST_SUITE
