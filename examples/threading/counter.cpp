// counter: the race condition of the threading chapter, and its actor fix.
//
// Two threads doing `counter += 1` lose updates because a read-modify-write
// is three steps that interleave. Here the counter is state owned by one
// actor: two producer actors each send it 1,000,000 increments, the counter
// applies them one message at a time, and nothing is lost. For contrast, the
// same work is done by two threads with an unsynchronised read-modify-write
// (a relaxed atomic load, then a store: racy, but without undefined behaviour).

#include "troupe/configure.hpp"

#include <caf/all.hpp>

#include <atomic>
#include <cstdint>
#include <iostream>
#include <thread>

namespace {

constexpr int64_t increments = 1'000'000;

using run_atom = caf::atom_constant<caf::atom("run")>;

// The counter owns its value; an `add` message is the only way to change it.
struct counter_state {
  int64_t value = 0;
};

caf::behavior counter(caf::stateful_actor<counter_state>* self) {
  return {
    [self](caf::add_atom, int64_t n) { self->state.value += n; },
    [self](caf::get_atom) { return self->state.value; },
  };
}

// A producer sends its increments when told to run, then answers `ok`.
// Messages from one sender arrive in order, so a `get` sent after this
// answer sees every increment.
caf::behavior producer(caf::event_based_actor* self, caf::actor target) {
  return {
    [self, target](run_atom) {
      for (int64_t i = 0; i < increments; ++i)
        self->send(target, caf::add_atom::value, int64_t{1});
      return caf::ok_atom::value;
    },
  };
}

// The broken version: two threads, each a load then a store. Both wait at a
// start line, so they really run at the same time.
int64_t racy_threads() {
  std::atomic<int64_t> value{0};
  std::atomic<int> ready{0};
  auto work = [&] {
    ++ready;
    while (ready.load() < 2)
      std::this_thread::yield();
    for (int64_t i = 0; i < increments; ++i) {
      auto seen = value.load(std::memory_order_relaxed);
      value.store(seen + 1, std::memory_order_relaxed);
    }
  };
  std::thread a{work};
  std::thread b{work};
  a.join();
  b.join();
  return value.load();
}

} // namespace

int main() {
  caf::actor_system_config cfg;
  troupe::configure(cfg);
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};

  // 1. One counter actor, two producers running at the same time.
  auto c = sys.spawn(counter);
  auto a = sys.spawn(producer, c);
  auto b = sys.spawn(producer, c);
  self->send(a, run_atom::value);
  self->send(b, run_atom::value);

  // 2. Wait until both producers have sent everything.
  for (int done = 0; done < 2;) {
    bool failed = false;
    self->receive([&](caf::ok_atom) { ++done; },
                  caf::after(std::chrono::seconds(60)) >> [&] { failed = true; });
    if (failed) {
      std::cerr << "producers did not finish\n";
      return 1;
    }
  }

  // 3. Ask the counter: every increment is there.
  int64_t total = -1;
  self->request(c, std::chrono::seconds(60), caf::get_atom::value)
    .receive([&](int64_t value) { total = value; },
             [&](caf::error& err) { std::cerr << sys.render(err) << '\n'; });
  std::cout << "counter = " << total << '\n';

  // 4. The unsynchronised threads, for contrast.
  auto racy = racy_threads();
  std::cout << "unsynchronised threads: counter = " << racy << " (lost " << 2 * increments - racy
            << " updates)\n";
  return total == 2 * increments ? 0 : 1;
}
