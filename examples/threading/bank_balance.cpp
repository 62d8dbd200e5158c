// bank_balance: the chapter's deposit/withdraw race, with the balance owned
// by an account actor instead of guarded by a lock.
//
// A depositor and a withdrawer run at the same time, 100,000 messages each.
// The account applies each message on its own, so no update is lost and the
// final balance is exactly zero.

#include "troupe/configure.hpp"

#include <caf/all.hpp>

#include <cstdint>
#include <iostream>

namespace {

constexpr int operations = 100'000;

using deposit_atom = caf::atom_constant<caf::atom("deposit")>;
using withdraw_atom = caf::atom_constant<caf::atom("withdraw")>;
using run_atom = caf::atom_constant<caf::atom("run")>;

struct account_state {
  int64_t balance = 0;
};

// The account: its balance changes only through these handlers.
caf::behavior account(caf::stateful_actor<account_state>* self) {
  return {
    [self](deposit_atom, int64_t amount) { self->state.balance += amount; },
    [self](withdraw_atom, int64_t amount) { self->state.balance -= amount; },
    [self](caf::get_atom) { return self->state.balance; },
  };
}

// A client that sends `operations` copies of one message when told to run.
template <class Atom>
caf::behavior client(caf::event_based_actor* self, caf::actor acc) {
  return {
    [self, acc](run_atom) {
      for (int i = 0; i < operations; ++i)
        self->send(acc, Atom::value, int64_t{1});
      return caf::ok_atom::value;
    },
  };
}

} // namespace

int main() {
  caf::actor_system_config cfg;
  troupe::configure(cfg);
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};

  // 1. The account and two clients working on it concurrently.
  auto acc = sys.spawn(account);
  self->send(sys.spawn(client<deposit_atom>, acc), run_atom::value);
  self->send(sys.spawn(client<withdraw_atom>, acc), run_atom::value);

  // 2. Wait for both clients; their messages are then in the account's mailbox.
  for (int done = 0; done < 2;) {
    bool failed = false;
    self->receive([&](caf::ok_atom) { ++done; },
                  caf::after(std::chrono::seconds(60)) >> [&] { failed = true; });
    if (failed) {
      std::cerr << "clients did not finish\n";
      return 1;
    }
  }

  // 3. The balance after 100,000 deposits and 100,000 withdrawals.
  int64_t balance = -1;
  self->request(acc, std::chrono::seconds(60), caf::get_atom::value)
    .receive([&](int64_t value) { balance = value; },
             [&](caf::error& err) { std::cerr << sys.render(err) << '\n'; });
  std::cout << "balance = " << balance << '\n';
  return balance == 0 ? 0 : 1;
}
