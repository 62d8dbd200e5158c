// rate_limit: the chapter's async semaphore for rate limiting.
//
// Twenty fetches share a rate limiter: at most 5 in flight, and at most 10
// started per 100 ms. Each fetch is an actor that takes a permit, tells a
// gauge it started, works 20 ms, tells the gauge it finished and gives the
// permit back. The gauge measures the most fetches in flight at once.

#include "troupe/atoms.hpp"
#include "troupe/configure.hpp"
#include "troupe/error.hpp"
#include "troupe/semaphore.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <chrono>
#include <iostream>

namespace {

using work_atom = caf::atom_constant<caf::atom("work")>;

struct gauge_state {
  int inside = 0;
  int max_inside = 0;
};

caf::behavior gauge(caf::stateful_actor<gauge_state>* self) {
  return {
    [self](caf::add_atom) {
      auto& st = self->state;
      st.max_inside = std::max(st.max_inside, ++st.inside);
      return caf::ok_atom::value;
    },
    [self](caf::sub_atom) {
      --self->state.inside;
      return caf::ok_atom::value;
    },
    [self](caf::get_atom) { return self->state.max_inside; },
  };
}

/// One fetch: permit, gauge in, 20 ms of work, gauge out, permit back.
caf::behavior fetch(caf::event_based_actor* self, int n, troupe::semaphore limiter, caf::actor g,
                    caf::actor boss) {
  auto fail = [self, boss](const caf::error& err) {
    self->send(boss, err);
    self->quit(err);
  };
  limiter.acquire_then(
    self,
    [=] {
      self->request(g, caf::infinite, caf::add_atom::value).then([=](caf::ok_atom) {
        self->delayed_send(self, std::chrono::milliseconds(20), work_atom::value); // the fetch
      });
    },
    fail);
  return {
    [=](work_atom) {
      self->request(g, caf::infinite, caf::sub_atom::value).then([=](caf::ok_atom) {
        limiter.release(self);
        self->send(boss, n);
        self->quit();
      });
    },
  };
}

} // namespace

int main() {
  caf::actor_system_config cfg;
  troupe::configure(cfg);
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};

  // 1. At most 5 in flight, at most 10 started per 100 ms.
  auto limiter = troupe::semaphore::make(sys, 5, 10, std::chrono::milliseconds(100));
  if (!limiter) {
    std::cerr << troupe::describe(limiter.error()) << '\n';
    return 1;
  }

  // 2. Twenty fetches at once.
  auto g = sys.spawn(gauge);
  auto start = std::chrono::steady_clock::now();
  for (int n = 0; n < 20; ++n)
    sys.spawn(fetch, n, *limiter, g, caf::actor{self});
  int results = 0;
  bool failed = false;
  while (results < 20 && !failed)
    self->receive([&](int) { ++results; },
                  [&](caf::error& err) {
                    std::cerr << troupe::describe(err) << '\n';
                    failed = true;
                  });
  auto ms =
    std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start)
      .count();

  // 3. What the gauge saw.
  int max_inside = -1;
  self->request(g, caf::infinite, caf::get_atom::value)
    .receive([&](int x) { max_inside = x; }, [](caf::error&) {});
  std::cout << "max concurrent = " << max_inside << '\n';
  std::cout << results << " results\n";
  std::cout << "took " << ms << " ms (the rate allows 10 starts per 100 ms)\n";
  return max_inside <= 5 && results == 20 ? 0 : 1;
}
