// supervision: what Erlang/OTP and Akka users take for granted, on CAF.
//
// CAF 0.17 has links and monitors but no supervisor: a crashed actor stays
// dead. A troupe supervisor restarts it, and a stable handle keeps reaching
// whichever incarnation is current. This shows:
// 1. a worker that crashes is restarted and keeps serving through the same
//    handle, a request it had not answered fails with an error instead of
//    hanging;
// 2. a worker that crashes too often makes its supervisor give up, stop
//    its children and exit with a reason that a monitor sees.

#include "troupe/configure.hpp"
#include "troupe/error.hpp"
#include "troupe/supervisor.hpp"

#include <caf/all.hpp>

#include <atomic>
#include <iostream>
#include <memory>

namespace {

using crash_atom = caf::atom_constant<caf::atom("crash")>;
using hold_atom = caf::atom_constant<caf::atom("hold")>;

/// A worker that answers `get` with its incarnation number, crashes on
/// `crash`, and takes `hold` requests without answering them.
troupe::child_spec worker(const std::string& name, std::shared_ptr<std::atomic<int>> starts) {
  troupe::child_spec spec;
  spec.name = name;
  spec.start = [starts](caf::actor_system& sys) {
    int incarnation = ++*starts;
    return sys.spawn([incarnation](caf::event_based_actor* self) -> caf::behavior {
      return {
        [incarnation](caf::get_atom) { return incarnation; },
        [self](crash_atom) { self->quit(caf::sec::runtime_error); },
        [self](hold_atom) { return self->make_response_promise<int>(); },
      };
    });
  };
  return spec;
}

} // namespace

int main() {
  caf::actor_system_config cfg;
  troupe::configure(cfg);
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  auto ask = [&](const caf::actor& who) {
    caf::expected<int> result{0};
    self->request(who, std::chrono::seconds(5), caf::get_atom::value)
      .receive([&](int n) { result = n; }, [&](caf::error& err) { result = std::move(err); });
    return result;
  };

  // 1. A supervisor with one worker, restarted whenever it crashes.
  auto starts = std::make_shared<std::atomic<int>>(0);
  troupe::supervisor_flags flags;
  flags.max_restarts = 3;
  flags.period = std::chrono::seconds(5);
  auto sup = troupe::supervisor::make(sys, flags, {worker("worker", starts)});
  if (!sup) {
    std::cerr << troupe::describe(sup.error()) << '\n';
    return 1;
  }
  auto handle = *sup->child("worker");
  std::cout << "worker answers: incarnation " << *ask(handle) << std::endl;

  // A request the worker takes and never answers, then a crash.
  auto pending = self->request(handle, std::chrono::seconds(5), hold_atom::value);
  self->send(handle, crash_atom::value);
  pending.receive([](int) {},
                  [](caf::error& err) {
                    std::cout << "request in flight: " << troupe::describe(err) << std::endl;
                  });

  // The same handle reaches the new incarnation once it is up.
  caf::expected<int> answer = caf::error{};
  for (int tries = 0; tries < 500 && !(answer && *answer == 2); ++tries)
    answer = ask(handle); // child_down until the handle sees the restart
  if (!answer) {
    std::cerr << "no restart: " << troupe::describe(answer.error()) << '\n';
    return 1;
  }
  std::cout << "after the crash, the same handle answers: incarnation " << *answer << std::endl;
  if (auto err = sup->stop()) {
    std::cerr << troupe::describe(err) << '\n';
    return 1;
  }

  // 2. A worker that crashes too often: at most 2 restarts within 5 s.
  auto flaky_starts = std::make_shared<std::atomic<int>>(0);
  flags.max_restarts = 2;
  auto strict = troupe::supervisor::make(sys, flags, {worker("flaky", flaky_starts)});
  if (!strict) {
    std::cerr << troupe::describe(strict.error()) << '\n';
    return 1;
  }
  self->monitor(strict->handle());
  auto flaky = *strict->child("flaky");
  caf::error reason;
  for (bool done = false; !done;) {
    // Crash whichever incarnation is current, until the supervisor gives up.
    self->send(flaky, crash_atom::value);
    self->receive(
      [&](caf::down_msg& msg) {
        reason = msg.reason;
        done = true;
      },
      caf::after(std::chrono::milliseconds(10)) >> [] {});
  }
  std::cout << "flaky worker started " << *flaky_starts << " times" << std::endl;
  std::cout << "supervisor gave up: " << troupe::describe(reason) << std::endl;
  return troupe::is(reason, troupe::errc::restart_intensity) ? 0 : 1;
}
