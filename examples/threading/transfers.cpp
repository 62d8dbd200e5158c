// transfers: the chapter's deadlock, and why actors do not have it.
//
// With locks, a transfer from A to B takes A's lock then B's, and a transfer
// from B to A takes them the other way round: two threads can wait for each
// other forever. Here each account is an actor that owns its balance. A
// transfer withdraws locally, then asks the other account to deposit and
// goes on serving its mailbox while it waits (`then`, not a blocking wait),
// so 10,000 transfers each way run concurrently, all complete, and the total
// is conserved.
//
// The other half of the lesson: a request to an actor that never answers
// fails with a timeout error instead of hanging.

#include "troupe/configure.hpp"
#include "troupe/error.hpp"

#include <caf/all.hpp>

#include <cstdint>
#include <iostream>

namespace {

constexpr int transfers_each_way = 10'000;
constexpr int64_t opening_balance = 1'000'000;

using transfer_atom = caf::atom_constant<caf::atom("transfer")>;
using deposit_atom = caf::atom_constant<caf::atom("deposit")>;
using run_atom = caf::atom_constant<caf::atom("run")>;

struct account_state {
  int64_t balance = opening_balance;
};

caf::behavior account(caf::stateful_actor<account_state>* self) {
  return {
    // Move `amount` to `to`; answered once the money has arrived there.
    [self](transfer_atom, int64_t amount, caf::actor to) -> caf::result<caf::ok_atom> {
      if (self->state.balance < amount)
        return caf::make_error(caf::sec::invalid_argument, "insufficient funds");
      self->state.balance -= amount;
      auto rp = self->make_response_promise<caf::ok_atom>();
      // No timeout: a live account always answers, and a dead one makes the
      // request fail at once. (In CAF 0.17 a request timeout keeps the
      // requester alive until it fires, even after the answer came.)
      self->request(to, caf::infinite, deposit_atom::value, amount)
        .then([rp](caf::ok_atom x) mutable { rp.deliver(x); },
              [self, rp, amount](caf::error& err) mutable {
                self->state.balance += amount; // the deposit failed: refund
                rp.deliver(err);
              });
      return rp;
    },
    [self](deposit_atom, int64_t amount) {
      self->state.balance += amount;
      return caf::ok_atom::value;
    },
    [self](caf::get_atom) { return self->state.balance; },
  };
}

// Sends `transfers_each_way` transfers of 1 from `from` to `to` and answers
// `run` with the number that were acknowledged.
caf::behavior driver(caf::event_based_actor* self, caf::actor from, caf::actor to) {
  return {
    [=](run_atom) {
      auto rp = self->make_response_promise<int>();
      auto acked = std::make_shared<int>(0);
      auto answered = std::make_shared<int>(0);
      auto finish = [rp, acked, answered]() mutable {
        if (++*answered == transfers_each_way)
          rp.deliver(*acked);
      };
      for (int i = 0; i < transfers_each_way; ++i)
        self->request(from, caf::infinite, transfer_atom::value, int64_t{1}, to)
          .then(
            [acked, finish](caf::ok_atom) mutable {
              ++*acked;
              finish();
            },
            [finish](caf::error&) mutable { finish(); });
      return rp;
    },
  };
}

// An actor that accepts every request and never answers it.
caf::behavior black_hole(caf::event_based_actor* self) {
  return {
    [self](caf::get_atom) {
      // Take the request over and never deliver: CAF 0.17 sends nothing
      // when an unfulfilled promise is dropped, so the request stays open.
      return self->make_response_promise<int>();
    },
  };
}

} // namespace

int main() {
  caf::actor_system_config cfg;
  troupe::configure(cfg);
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};

  // 1. Two accounts and two drivers, transfers in both directions at once.
  auto a = sys.spawn(account);
  auto b = sys.spawn(account);
  self->send(sys.spawn(driver, a, b), run_atom::value);
  self->send(sys.spawn(driver, b, a), run_atom::value);
  int acked = 0;
  for (int done = 0; done < 2;) {
    bool failed = false;
    self->receive(
      [&](int n) {
        acked += n;
        ++done;
      },
      caf::after(std::chrono::seconds(60)) >> [&] { failed = true; });
    if (failed) {
      std::cerr << "transfers did not complete\n";
      return 1;
    }
  }

  // 2. Every transfer completed and no money was created or lost.
  int64_t total = 0;
  for (auto& acc : {a, b})
    self->request(acc, std::chrono::seconds(10), caf::get_atom::value)
      .receive([&](int64_t x) { total += x; }, [](caf::error&) {});
  std::cout << "transfers completed: " << acked << " of " << 2 * transfers_each_way << '\n';
  std::cout << "total = " << total << " (opening total " << 2 * opening_balance << ")\n";

  // 3. A request to an actor that never answers ends in a timeout error.
  auto hole = sys.spawn(black_hole);
  caf::error err;
  self->request(hole, std::chrono::milliseconds(100), caf::get_atom::value)
    .receive([](int) {}, [&](caf::error& x) { err = std::move(x); });
  std::cout << "request to an unresponsive actor: " << troupe::describe(err) << '\n';
  self->send_exit(hole, caf::exit_reason::user_shutdown);

  bool ok = acked == 2 * transfers_each_way && total == 2 * opening_balance
            && err == caf::sec::request_timeout;
  return ok ? 0 : 1;
}
