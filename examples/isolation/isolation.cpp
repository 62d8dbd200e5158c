// An actor whose crash the program survives: the one thing threads cannot
// give. A parser with a bug (a record it dereferences a null pointer on)
// runs in a process of its own under a supervisor; the program keeps
// sending it records through one handle, and every crash costs the record
// that caused it, nothing more.
//
//   $ isolation
//   1 -> 1
//   ...
//   poison -> lost: its process crashed, and was restarted
//   ...
//   sum 15, survived 2 crashes

#include <troupe/ipc/isolated.hpp>
#include <troupe/ipc/program.hpp>

#include <caf/all.hpp>

#include <chrono>
#include <condition_variable>
#include <iostream>
#include <mutex>
#include <string>

namespace {

caf::behavior parser(caf::event_based_actor*) {
  return {[](const std::string& record) -> int32_t {
    if (record == "poison") {
      volatile int32_t* nowhere = nullptr;
      return *nowhere; // SIGSEGV: the process dies here
    }
    return std::stoi(record);
  }};
}

/// Counts the supervisor's restarts, and lets the program wait for one.
struct restarts {
  std::mutex mtx;
  std::condition_variable changed;
  int count = 0;

  bool await(int n) {
    std::unique_lock<std::mutex> guard{mtx};
    return changed.wait_for(guard, std::chrono::seconds(10), [&] { return count >= n; });
  }
};

int parent(troupe::ipc::process_context& ctx) {
  restarts seen;
  troupe::ipc::isolation_options opts;
  opts.flags.on_event = [&](const troupe::supervisor_event& ev) {
    std::lock_guard<std::mutex> guard{seen.mtx};
    seen.count += ev.what == troupe::supervisor_event::kind::restarted;
    seen.changed.notify_all();
  };
  auto sut = ctx.check(troupe::ipc::spawn_isolated(ctx.group(), opts, "parser"), "isolate");
  caf::scoped_actor self{ctx.system()};
  int32_t sum = 0;
  int crashes = 0;
  for (std::string record : {"1", "2", "poison", "3", "4", "poison", "5"}) {
    self->request(sut.actor(), std::chrono::seconds(10), record)
      .receive(
        [&](int32_t x) {
          std::cout << record << " -> " << x << std::endl;
          sum += x;
        },
        [&](caf::error& err) {
          // The request the crash took: child_down, never silence.
          if (!troupe::is(err, troupe::errc::child_down) || !seen.await(++crashes))
            ctx.fail(record, err);
          std::cout << record << " -> lost: its process crashed, and was restarted" << std::endl;
        });
  }
  std::cout << "sum " << sum << ", survived " << crashes << " crashes" << std::endl;
  ctx.check(sut.stop(), "stop");
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  return troupe::ipc::program{argc, argv}
    .configure([](caf::actor_system_config& cfg) { cfg.add_actor_type("parser", parser); })
    .run(parent);
}
