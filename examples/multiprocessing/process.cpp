// process: multiprocessing.Process, with the worker as an actor in a child
// process.
//
// The chapter starts a Process that sums range(10_000_000) and hands the sum
// back to the parent. Here one program plays both roles. The parent creates a
// troupe::ipc group (a shared-memory segment), starts itself again as the
// child (with posix_spawn, never a bare fork, which is unsafe once CAF's
// threads run), finds the child's actor by name and asks it; the sum comes
// back as the reply. The child then is told to stop, and the parent collects
// its exit status, as join() does.

#include "troupe/error.hpp"
#include "troupe/ipc/configure.hpp"
#include "troupe/ipc/node.hpp"

#include <caf/all.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <iostream>
#include <string>
#include <tuple>

namespace {

using sum_atom = caf::atom_constant<caf::atom("sum")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;

// How long either side waits for the other before it gives up.
constexpr auto patience = std::chrono::seconds(30);

// The child's actor: sums range(n); answers with the sum, its process id and
// its parent's.
caf::behavior summer(caf::event_based_actor* self) {
  return {
    [](sum_atom, int64_t n) {
      int64_t sum = 0;
      for (int64_t i = 0; i < n; ++i)
        sum += i;
      return std::make_tuple(sum, int32_t{::getpid()}, int32_t{::getppid()});
    },
    [self](stop_atom) { self->quit(); },
  };
}

int run_child() {
  caf::actor_system_config cfg;
  troupe::ipc::configure(cfg);
  caf::actor_system sys{cfg};

  // 1. Join the group that the parent named in our environment.
  auto node = troupe::ipc::node::join_from_env(sys);
  if (!node) {
    std::cerr << "child: cannot join: " << troupe::describe(node.error()) << '\n';
    return 1;
  }

  // 2. Publish the worker under the name the parent looks for.
  auto worker = sys.spawn(summer);
  caf::scoped_actor self{sys};
  self->monitor(worker);
  if (auto err = node->publish("summer", worker)) {
    std::cerr << "child: " << troupe::describe(err) << '\n';
    self->send_exit(worker, caf::exit_reason::kill);
    return 1;
  }

  // 3. Watch the parent as well: if it dies without telling us to stop, its
  //    actor goes down (peer_lost) and we do not linger.
  auto parent = node->lookup("parent", patience);
  if (!parent) {
    std::cerr << "child: " << troupe::describe(parent.error()) << '\n';
    self->send_exit(worker, caf::exit_reason::kill);
    return 1;
  }
  self->monitor(*parent);

  // 4. Wait until the worker stops (told so by the parent) or the parent is gone.
  bool stopped = false;
  self->receive([&](caf::down_msg& dm) { stopped = dm.source == worker; });
  if (!stopped) {
    std::cerr << "child: the parent went away without stopping us\n";
    self->send_exit(worker, caf::exit_reason::kill);
  }

  // 5. Leave the group (the last one out removes the segment).
  node->leave();
  return stopped ? 0 : 1;
}

int run_parent() {
  caf::actor_system_config cfg;
  troupe::ipc::configure(cfg);
  caf::actor_system sys{cfg};

  // 1. A group of our own: the pid in its name keeps concurrent runs apart.
  auto group = "mp-process-" + std::to_string(::getpid());
  auto node = troupe::ipc::node::create(sys, group);
  if (!node) {
    std::cerr << "cannot create group " << group << ": " << troupe::describe(node.error()) << '\n';
    return 1;
  }

  // 2. Publish ourselves, so that the child can watch us.
  caf::scoped_actor self{sys};
  if (auto err = node->publish("parent", caf::actor{self})) {
    std::cerr << troupe::describe(err) << '\n';
    return 1;
  }

  // 3. Start this program again as the child; it joins the group. On any
  //    early return below, the handle's destructor kills the child.
  auto child = node->spawn_self();
  if (!child) {
    std::cerr << troupe::describe(child.error()) << '\n';
    return 1;
  }

  // 4. Find the child's worker, waiting for it to be published.
  auto summer = node->lookup("summer", patience);
  if (!summer) {
    std::cerr << "no worker: " << troupe::describe(summer.error()) << '\n';
    return 1;
  }

  // 5. Ask for the sum: a request across processes, as with a local actor.
  bool ok = false;
  self->request(*summer, patience, sum_atom::value, int64_t{10'000'000})
    .receive(
      [&](int64_t sum, int32_t pid, int32_t ppid) {
        std::cout << "Sum: " << sum << '\n';
        std::cout << "computed in process " << pid << ", a child of process " << ppid << '\n';
        ok = sum == int64_t{49'999'995'000'000} && pid == child->pid() && ppid == ::getpid();
      },
      [&](caf::error& err) { std::cerr << "request failed: " << troupe::describe(err) << '\n'; });
  if (!ok)
    return 1;

  // 6. Tell the child to stop and wait for it to exit, as join() does.
  self->send(*summer, stop_atom::value);
  auto status = child->wait(patience);
  if (!status) {
    std::cerr << troupe::describe(status.error()) << '\n';
    return 1;
  }
  std::cout << "child process " << child->pid() << ' ' << troupe::ipc::to_string(*status) << '\n';

  // 7. Leave the group: we are the last one out, so the segment goes too.
  node->leave();
  return status->success() ? 0 : 1;
}

} // namespace

int main() {
  return troupe::ipc::node::in_spawned_child() ? run_child() : run_parent();
}
