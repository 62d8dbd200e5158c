// semaphore: threading.Semaphore as an actor, with permits as leases.
//
// Ten task actors share a semaphore of three permits. Each takes a permit,
// reports to a gauge actor that it entered, works for a while, reports that
// it left, and gives the permit back. The gauge measures how many tasks were
// inside at once: never more than three. Last, a task that dies while it
// holds a permit shows the lease at work: its permit comes back by itself.

#include "troupe/semaphore.hpp"

#include "troupe/atoms.hpp"
#include "troupe/configure.hpp"
#include "troupe/error.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <iostream>

namespace {

using enter_atom = caf::atom_constant<caf::atom("enter")>;
using leave_atom = caf::atom_constant<caf::atom("leave")>;
using work_atom = caf::atom_constant<caf::atom("work")>;

// Counts who is inside and remembers the most at once.
struct gauge_state {
  int inside = 0;
  int max_inside = 0;
};

caf::behavior gauge(caf::stateful_actor<gauge_state>* self) {
  return {
    [self](enter_atom) {
      auto& st = self->state;
      st.max_inside = std::max(st.max_inside, ++st.inside);
      return caf::ok_atom::value;
    },
    [self](leave_atom) {
      --self->state.inside;
      return caf::ok_atom::value;
    },
    [self](caf::get_atom) { return self->state.max_inside; },
  };
}

// A task: acquire, enter, work 20 ms, leave, release, report `n` to `boss`.
// `enter` is counted after the permit is held and `leave` before it is
// released, so the gauge never counts a task that holds no permit.
caf::behavior task(caf::event_based_actor* self, int n, caf::actor sem, caf::actor g,
                   caf::actor boss) {
  auto fail = [self, boss](caf::error& err) {
    self->send(boss, caf::make_message(err));
    self->quit(err);
  };
  self->request(sem, caf::infinite, troupe::acquire_atom::value)
    .then(
      [=](caf::ok_atom) {
        self->request(g, caf::infinite, enter_atom::value)
          .then(
            [=](caf::ok_atom) {
              self->delayed_send(self, std::chrono::milliseconds(20), work_atom::value);
            },
            fail);
      },
      fail);
  return {
    [=](work_atom) {
      self->request(g, caf::infinite, leave_atom::value)
        .then(
          [=](caf::ok_atom) {
            self->send(sem, troupe::release_atom::value);
            self->send(boss, n);
            self->quit();
          },
          fail);
    },
  };
}

} // namespace

int main() {
  caf::actor_system_config cfg;
  troupe::configure(cfg);
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  auto sem = troupe::semaphore::make(sys, 3);
  if (!sem) {
    std::cerr << troupe::describe(sem.error()) << '\n';
    return 1;
  }

  // 1. Ten tasks at once against three permits.
  auto g = sys.spawn(gauge);
  for (int n = 0; n < 10; ++n)
    sys.spawn(task, n, sem->handle(), g, caf::actor{self});

  // 2. Wait for all ten.
  for (int done = 0; done < 10;) {
    bool failed = false;
    self->receive([&](int) { ++done; },
                  [&](caf::error& err) {
                    std::cerr << "task failed: " << troupe::describe(err) << '\n';
                    failed = true;
                  },
                  caf::after(std::chrono::seconds(30)) >> [&] { failed = true; });
    if (failed)
      return 1;
  }
  int max_inside = -1;
  self->request(g, caf::infinite, caf::get_atom::value)
    .receive([&](int n) { max_inside = n; }, [](caf::error&) {});
  std::cout << "max concurrent = " << max_inside << '\n';

  // 3. A holder that dies without releasing: its permit comes back.
  auto doomed = sys.spawn([sem = sem->handle()](caf::event_based_actor* me) -> caf::behavior {
    return {[me, sem](caf::get_atom) {
      auto rp = me->make_response_promise<caf::ok_atom>();
      me->request(sem, caf::infinite, troupe::acquire_atom::value)
        .then([rp](caf::ok_atom x) mutable { rp.deliver(x); },
              [rp](caf::error& err) mutable { rp.deliver(err); });
      return rp;
    }};
  });
  self->request(doomed, caf::infinite, caf::get_atom::value)
    .receive([](caf::ok_atom) {}, [](caf::error&) {});
  std::cout << "a holder took a permit: free = " << *sem->available() << '\n';
  self->send_exit(doomed, caf::exit_reason::kill);
  // The lease returns when the semaphore sees the holder's death; wait for
  // all three permits with a deadline rather than polling.
  troupe::semaphore::lease leases[3];
  for (auto& l : leases) {
    auto lease = sem->acquire(self, std::chrono::seconds(10));
    if (!lease) {
      std::cerr << "permit lost: " << troupe::describe(lease.error()) << '\n';
      return 1;
    }
    l = std::move(*lease);
  }
  std::cout << "the holder died without releasing: all 3 permits are back\n";
  return max_inside == 3 ? 0 : 1;
}
