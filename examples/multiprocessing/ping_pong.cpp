// ping_pong: two processes talking back and forth, as the chapter does with a
// multiprocessing.Pipe, here as requests to an actor in the other process.
//
// One program plays both roles. The parent creates a troupe::ipc group (a
// shared-memory segment) and starts itself again as the child, which
// publishes a ponger actor. The parent then makes 10,000 blocking requests to
// it, one after the other, and prints the median and 99th percentile round
// trip; the same loop against a ponger in its own process shows what crossing
// the process boundary costs.

#include "troupe/error.hpp"
#include "troupe/ipc/configure.hpp"
#include "troupe/ipc/node.hpp"

#include <caf/all.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iomanip>
#include <iostream>
#include <string>
#include <vector>

namespace {

using ping_atom = caf::atom_constant<caf::atom("ping")>;
using pong_atom = caf::atom_constant<caf::atom("pong")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;

// How long either side waits for the other before it gives up.
constexpr auto patience = std::chrono::seconds(30);

constexpr int warm_up = 1'000;
constexpr int rounds = 10'000;

// Answers each ping with a pong that carries the same number.
caf::behavior ponger(caf::event_based_actor* self) {
  return {
    [](ping_atom, int32_t i) { return std::make_tuple(pong_atom::value, i); },
    [self](stop_atom) { self->quit(); },
  };
}

// Makes `n` requests to `dest`, one at a time, and returns their round trips
// in microseconds (sorted), or nothing if one failed.
std::vector<double> ping(caf::scoped_actor& self, const caf::actor& dest, int n) {
  std::vector<double> res;
  res.reserve(n);
  for (int32_t i = 0; i < n; ++i) {
    auto start = std::chrono::steady_clock::now();
    bool ok = false;
    self->request(dest, patience, ping_atom::value, i)
      .receive([&](pong_atom, int32_t j) { ok = j == i; },
               [&](caf::error& err) { std::cerr << "ping: " << troupe::describe(err) << '\n'; });
    if (!ok)
      return {};
    std::chrono::duration<double, std::micro> took = std::chrono::steady_clock::now() - start;
    res.push_back(took.count());
  }
  std::sort(res.begin(), res.end());
  return res;
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

  // 2. Publish the ponger under the name the parent looks for.
  auto pong = sys.spawn(ponger);
  caf::scoped_actor self{sys};
  self->monitor(pong);
  if (auto err = node->publish("ponger", pong)) {
    std::cerr << "child: " << troupe::describe(err) << '\n';
    self->send_exit(pong, caf::exit_reason::kill);
    return 1;
  }

  // 3. Watch the parent as well: if it dies without telling us to stop, its
  //    actor goes down (peer_lost) and we do not linger.
  auto parent = node->lookup("parent", patience);
  if (!parent) {
    std::cerr << "child: " << troupe::describe(parent.error()) << '\n';
    self->send_exit(pong, caf::exit_reason::kill);
    return 1;
  }
  self->monitor(*parent);

  // 4. Wait until the ponger stops (told so by the parent) or the parent is gone.
  bool stopped = false;
  self->receive([&](caf::down_msg& dm) { stopped = dm.source == pong; });
  if (!stopped) {
    std::cerr << "child: the parent went away without stopping us\n";
    self->send_exit(pong, caf::exit_reason::kill);
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
  auto group = "mp-ping-pong-" + std::to_string(::getpid());
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

  // 4. Find the child's ponger, waiting for it to be published.
  auto remote = node->lookup("ponger", patience);
  if (!remote) {
    std::cerr << "no ponger: " << troupe::describe(remote.error()) << '\n';
    return 1;
  }

  // 5. Warm up (first messages set up the proxies and page in the rings),
  //    then measure.
  if (ping(self, *remote, warm_up).empty())
    return 1;
  auto trips = ping(self, *remote, rounds);
  if (trips.empty())
    return 1;
  std::cout << std::fixed << std::setprecision(1);
  std::cout << "median round trip: " << trips[trips.size() / 2] << " us over " << rounds
            << " requests (p99 " << trips[trips.size() * 99 / 100] << " us)\n";

  // 6. For comparison: the same loop to a ponger in this process.
  auto local = sys.spawn(ponger);
  ping(self, local, warm_up);
  auto local_trips = ping(self, local, rounds);
  self->send(local, stop_atom::value);
  if (local_trips.empty())
    return 1;
  std::cout << "same ponger in this process: median " << local_trips[local_trips.size() / 2]
            << " us\n";

  // 7. Tell the child to stop and wait for it to exit.
  self->send(*remote, stop_atom::value);
  auto status = child->wait(patience);
  if (!status) {
    std::cerr << troupe::describe(status.error()) << '\n';
    return 1;
  }
  std::cout << "child process " << child->pid() << ' ' << troupe::ipc::to_string(*status) << '\n';

  // 8. Leave the group: we are the last one out, so the segment goes too.
  node->leave();
  return status->success() ? 0 : 1;
}

} // namespace

int main() {
  return troupe::ipc::node::in_spawned_child() ? run_child() : run_parent();
}
