// guarded_state: Lock and RLock rebuilt as state owned by an actor.
//
// `troupe::guarded<T>` keeps a value inside one actor; `update(fn)` runs `fn`
// on it atomically. This shows the three things a lock is used for:
// 1. Lock: four threads do read-modify-writes on one account, none is lost.
// 2. RLock: an operation that calls another operation of the same owner
//    runs straight through instead of deadlocking.
// 3. A function that throws becomes an error for its caller, and the state
//    is left exactly as it was (no half-applied update).

#include "troupe/configure.hpp"
#include "troupe/error.hpp"
#include "troupe/guarded.hpp"

#include <caf/all.hpp>

#include <iostream>
#include <stdexcept>
#include <thread>
#include <vector>

namespace {

struct account {
  long balance = 0;
  std::vector<std::string> history;
};

} // namespace

int main() {
  caf::actor_system_config cfg;
  troupe::configure(cfg);
  caf::actor_system sys{cfg};
  auto acc = troupe::guarded<account>::make(sys);

  // 1. Four threads, 10,000 deposits each, every one a read then a write.
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      caf::scoped_actor self{sys};
      for (int i = 0; i < 10'000; ++i) {
        auto ok = acc.update(self, [](account& a) {
          auto seen = a.balance;
          a.balance = seen + 1;
        });
        if (!ok)
          std::cerr << troupe::describe(ok.error()) << '\n';
      }
    });
  for (auto& t : threads)
    t.join();
  std::cout << "balance after 4 x 10000 deposits = " << acc.get()->balance << '\n';

  // 2. `deposit` is an operation of its own; `deposit_with_bonus` calls it
  //    from inside another operation of the same owner (the RLock case).
  auto deposit = [&](long amount) {
    return acc.update([amount](account& a) {
      a.balance += amount;
      a.history.push_back("deposit " + std::to_string(amount));
      return a.balance;
    });
  };
  auto nested = acc.update([&](account& a) {
    a.history.push_back("bonus");
    return deposit(10); // re-enters the owner: runs at once, no deadlock
  });
  if (!nested || !*nested) {
    std::cerr << "nested update failed\n";
    return 1;
  }
  std::cout << "nested update completed: balance = " << **nested << '\n';

  // 3. A withdrawal that changes the state, then throws.
  auto before = acc.get();
  auto failed = acc.update([](account& a) {
    a.history.clear();
    a.balance -= 1'000'000;
    if (a.balance < 0)
      throw std::runtime_error("insufficient funds");
    return a.balance;
  });
  if (failed) {
    std::cerr << "the overdraft went through\n";
    return 1;
  }
  std::cout << "update threw: " << troupe::describe(failed.error()) << '\n';
  auto after = acc.get();
  bool intact = after->balance == before->balance && after->history == before->history;
  std::cout << (intact ? "state intact" : "state CHANGED") << ": balance = " << after->balance
            << ", history has " << after->history.size() << " entries\n";
  return intact ? 0 : 1;
}
