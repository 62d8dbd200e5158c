// supervised_processes: worker processes under a supervisor, one killed.
//
// The chapter's pools assume workers stay alive. Here three worker processes
// (this program again, started with posix_spawn) each publish an actor, and a
// troupe::supervisor watches them through troupe::ipc::process_child: a
// process killed with SIGKILL is a crash like any other, so it is restarted
// and its stable handle reaches the new process. The parent spreads 30 tasks
// over the workers, kills one half-way, and every task still completes: a
// request the killed process did not answer fails with errc::child_down and
// is simply sent again.

#include "troupe/error.hpp"
#include "troupe/ipc/configure.hpp"
#include "troupe/ipc/node.hpp"
#include "troupe/ipc/process_supervision.hpp"
#include "troupe/supervisor.hpp"

#include <caf/all.hpp>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <string>
#include <tuple>
#include <vector>

namespace {

using square_atom = caf::atom_constant<caf::atom("square")>;

constexpr auto patience = std::chrono::seconds(30);

// A worker squares numbers and says which process did it.
caf::behavior worker(caf::event_based_actor*) {
  return {
    [](square_atom, int32_t x) { return std::make_tuple(x * x, int32_t{::getpid()}); },
  };
}

// A worker process: join, publish, and live as long as the worker actor.
int run_worker(const std::string& name) {
  caf::actor_system_config cfg;
  troupe::ipc::configure(cfg);
  caf::actor_system sys{cfg};
  auto group = troupe::ipc::node::join_from_env(sys);
  if (!group) {
    std::cerr << name << ": " << troupe::describe(group.error()) << '\n';
    return 1;
  }
  auto w = sys.spawn(worker);
  caf::scoped_actor self{sys};
  self->monitor(w);
  if (auto err = group->publish(name, w)) {
    std::cerr << name << ": " << troupe::describe(err) << '\n';
    self->send_exit(w, caf::exit_reason::kill);
    return 1;
  }
  self->receive([](caf::down_msg&) {});
  return 0;
}

int run_parent() {
  caf::actor_system_config cfg;
  troupe::ipc::configure(cfg);
  caf::actor_system sys{cfg};
  auto group = troupe::ipc::node::create(sys, "supervised-" + std::to_string(::getpid()));
  if (!group) {
    std::cerr << troupe::describe(group.error()) << '\n';
    return 1;
  }

  // 1. Three worker processes under one supervisor.
  std::vector<troupe::child_spec> children;
  std::vector<std::string> names{"w0", "w1", "w2"};
  for (auto& name : names) {
    troupe::ipc::process_spec spec;
    spec.name = name;
    spec.args = {"--worker", name};
    spec.published_as = name;
    children.push_back(troupe::ipc::process_child(*group, spec));
  }
  troupe::supervisor_flags flags;
  flags.max_restarts = 3;
  auto sup = troupe::supervisor::start(sys, flags, children);
  if (!sup) {
    std::cerr << troupe::describe(sup.error()) << '\n';
    return 1;
  }
  std::cout << "3 worker processes started" << std::endl;

  // 2. 30 tasks round robin; a task whose worker died is sent again.
  caf::scoped_actor self{sys};
  int64_t total = 0;
  int32_t killed_pid = 0;
  bool back = false;
  for (int32_t x = 0; x < 30; ++x) {
    auto handle = *sup->child(names[static_cast<size_t>(x) % names.size()]);
    for (bool done = false; !done;) {
      self->request(handle, patience, square_atom::value, x)
        .receive(
          [&](int32_t square, int32_t pid) {
            total += square;
            done = true;
            // 3. Half-way, kill the process that served w1 with SIGKILL.
            if (x == 13 && killed_pid == 0) {
              killed_pid = pid;
              ::kill(pid, SIGKILL);
              std::cout << "killed w1 (a worker process) with SIGKILL" << std::endl;
            } else if (killed_pid != 0 && !back && x % 3 == 1 && pid != killed_pid) {
              back = true;
              std::cout << "w1 is back in a new process" << std::endl;
            }
          },
          [&](caf::error& err) {
            // child_down (the request was in flight) or a restart under way:
            // send it again; anything else ends the run.
            if (!troupe::is(err, troupe::errc::child_down)
                && !troupe::is(err, troupe::errc::peer_lost)) {
              std::cerr << "task " << x << " failed: " << troupe::describe(err) << '\n';
              std::exit(1);
            }
          });
    }
  }
  std::cout << "30 tasks done, sum of squares = " << total << std::endl;

  // 4. An orderly stop ends the worker processes, which are reaped.
  if (auto err = sup->stop(patience)) {
    std::cerr << troupe::describe(err) << '\n';
    return 1;
  }
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "--worker") == 0)
    return run_worker(argv[2]);
  return run_parent();
}
