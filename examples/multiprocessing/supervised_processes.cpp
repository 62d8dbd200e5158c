// supervised_processes: worker processes under a supervisor, one killed.
//
// The chapter's pools assume workers stay alive. Here three worker processes
// (this program again, in the role "worker", which serves one actor) are
// children of a troupe::supervisor through troupe::ipc::process_child: a
// process killed with SIGKILL is a crash like any other, so it is restarted
// and its stable handle reaches the new process. The parent spreads 30 tasks
// over the workers, kills one half-way, and every task still completes: a
// request the killed process did not answer fails with errc::child_down, as
// for any crashed child, and is simply sent again.

#include "troupe/error.hpp"
#include "troupe/ipc/process_supervision.hpp"
#include "troupe/ipc/program.hpp"

#include <caf/all.hpp>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <iostream>
#include <string>
#include <tuple>
#include <vector>

namespace {

using square_atom = caf::atom_constant<caf::atom("square")>;

// A worker squares numbers and says which process did it.
caf::behavior worker(caf::event_based_actor*) {
  return {
    [](square_atom, int32_t x) { return std::make_tuple(x * x, int32_t{::getpid()}); },
  };
}

int parent(troupe::ipc::process_context& ctx) {
  std::vector<std::string> names{"w0", "w1", "w2"};
  std::vector<troupe::child_spec> children;
  for (auto& name : names) {
    troupe::ipc::process_spec spec;
    spec.name = name; // also the name it is published under
    spec.role = "worker";
    children.push_back(troupe::ipc::process_child(ctx.group(), spec));
  }
  auto sup = ctx.check(troupe::supervisor::make(ctx.system(), {}, children), "supervisor");
  std::cout << "3 worker processes started" << std::endl;
  // 30 tasks round robin; a task whose worker died is sent again.
  caf::scoped_actor self{ctx.system()};
  int64_t total = 0;
  int32_t killed_pid = 0;
  bool back = false;
  caf::error failed;
  for (int32_t x = 0; x < 30 && !failed; ++x) {
    auto handle = ctx.check(sup.child(names[static_cast<size_t>(x) % names.size()]), "child");
    for (bool done = false; !done && !failed;) {
      self->request(handle, std::chrono::seconds(30), square_atom::value, x)
        .receive(
          [&](int32_t square, int32_t pid) {
            total += square;
            done = true;
            if (x == 13 && killed_pid == 0) { // half-way, kill w1's process
              killed_pid = pid;
              ::kill(pid, SIGKILL);
              std::cout << "killed w1 (a worker process) with SIGKILL" << std::endl;
            } else if (killed_pid != 0 && !back && x % 3 == 1 && pid != killed_pid) {
              back = true;
              std::cout << "w1 is back in a new process" << std::endl;
            }
          },
          [&](caf::error& err) {
            if (!troupe::is(err, troupe::errc::child_down)) // anything else ends the run
              failed = err;
          });
    }
  }
  ctx.check(failed, "a task failed");
  std::cout << "30 tasks done, sum of squares = " << total << std::endl;
  // An orderly stop ends the worker processes, which are reaped.
  ctx.check(sup.stop(std::chrono::seconds(30)), "stop");
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  return troupe::ipc::program{argc, argv}
    .serve("worker", [](auto& ctx) { return ctx.system().spawn(worker); })
    .run(parent);
}
