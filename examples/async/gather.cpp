// gather: asyncio.gather as concurrent requests to actors.
//
// Three fetch actors answer after 30, 10 and 20 ms. gather sends all three
// requests at once and hands back the answers in argument order (a, b, c),
// although they arrive b, c, a; the whole takes about as long as the
// slowest fetch, not the sum.

#include "troupe/gather.hpp"

#include "troupe/configure.hpp"
#include "troupe/error.hpp"

#include <caf/all.hpp>

#include <chrono>
#include <iostream>
#include <string>

// The fetcher sends itself the promise to fulfil later: local only.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(caf::typed_response_promise<std::string>)

namespace {

using reply_atom = caf::atom_constant<caf::atom("reply")>;

/// A fetch that answers `get` after `delay`, without blocking a thread.
caf::behavior fetcher(caf::event_based_actor* self, std::string name,
                      std::chrono::milliseconds delay) {
  return {
    [=](caf::get_atom) {
      auto rp = self->make_response_promise<std::string>();
      self->delayed_send(self, delay, reply_atom::value, rp); // the simulated latency
      return rp;
    },
    [=](reply_atom, caf::typed_response_promise<std::string>& rp) {
      rp.deliver("data from " + name);
    },
  };
}

} // namespace

int main() {
  caf::actor_system_config cfg;
  troupe::configure(cfg);
  caf::actor_system sys{cfg};

  // 1. Three fetches with different delays.
  auto a = sys.spawn(fetcher, std::string{"a"}, std::chrono::milliseconds(30));
  auto b = sys.spawn(fetcher, std::string{"b"}, std::chrono::milliseconds(10));
  auto c = sys.spawn(fetcher, std::string{"c"}, std::chrono::milliseconds(20));

  // 2. All at once; the results in argument order.
  auto start = std::chrono::steady_clock::now();
  auto results = troupe::gather<std::string>(sys,
                                             {troupe::ask(a, caf::get_atom::value),
                                              troupe::ask(b, caf::get_atom::value),
                                              troupe::ask(c, caf::get_atom::value)},
                                             std::chrono::seconds(5));
  auto ms =
    std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start)
      .count();
  for (auto& r : results) {
    if (!r) {
      std::cerr << troupe::describe(r.error()) << '\n';
      return 1;
    }
    std::cout << "Result: " << *r << '\n';
  }
  std::cout << "took " << ms << " ms for fetches of 30 + 10 + 20 ms\n";
  for (auto& x : {a, b, c})
    caf::anon_send_exit(x, caf::exit_reason::user_shutdown);
  return 0;
}
