// shared_value: multiprocessing.Value and multiprocessing.Array, a counter and
// an array whose data live in shared memory.
//
// The chapter has four processes add 1 to a shared Value a thousand times
// each: with `v.value += 1` updates get lost, with `with v.get_lock():` they
// do not. Here one program plays parent and children. The parent creates a
// troupe::ipc group, a shared_value<int64_t> and a shared_array<int64_t>,
// then starts itself four times. Each child adds 1 a thousand times to the
// counter with the lock-free `add` (an atomic instruction, no lock needed for
// an integer) and to array[0] under the array's lock (a robust lock: a child
// killed while holding it would not wedge the others). The parent waits for
// the children and prints both totals: exactly 4000, nothing lost.

#include "troupe/error.hpp"
#include "troupe/ipc/configure.hpp"
#include "troupe/ipc/node.hpp"
#include "troupe/ipc/shared_memory.hpp"

#include <caf/all.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

namespace {

using troupe::ipc::shared_array;
using troupe::ipc::shared_value;

constexpr int processes = 4;
constexpr int adds = 1000;

// How long the parent waits for a child before it gives up.
constexpr auto patience = std::chrono::seconds(30);

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

  // 2. Open the parent's counter and array by name (the type is checked).
  auto counter = shared_value<int64_t>::open(*node, "counter");
  auto array = shared_array<int64_t>::open(*node, "array");
  if (!counter || !array) {
    std::cerr << "child: " << troupe::describe(counter ? array.error() : counter.error()) << '\n';
    return 1;
  }

  // 3. Add 1 a thousand times: lock-free to the counter, under the lock to
  //    array[0] (as `with arr.get_lock(): arr[0] += 1`).
  for (int i = 0; i < adds; ++i) {
    counter->add(1);
    auto locked = array->with_lock([](caf::span<int64_t> xs) { xs[0] += 1; });
    if (!locked) {
      std::cerr << "child: " << troupe::describe(locked.error()) << '\n';
      return 1;
    }
  }

  // 4. Leave the group; the parent owns (and removes) the shared memory.
  node->leave();
  return 0;
}

int run_parent() {
  caf::actor_system_config cfg;
  troupe::ipc::configure(cfg);
  caf::actor_system sys{cfg};

  // 1. A group of our own: the pid in its name keeps concurrent runs apart.
  auto group = "mp-shared-value-" + std::to_string(::getpid());
  auto node = troupe::ipc::node::create(sys, group);
  if (!node) {
    std::cerr << "cannot create group " << group << ": " << troupe::describe(node.error()) << '\n';
    return 1;
  }

  // 2. Value('q', 0) and Array('q', [0, 0]): each its own shared memory,
  //    /dev/shm/troupe.<group>.v.<name>, removed when these objects go.
  auto counter = shared_value<int64_t>::create(*node, "counter", 0);
  auto array = shared_array<int64_t>::create(*node, "array", 2);
  if (!counter || !array) {
    std::cerr << troupe::describe(counter ? array.error() : counter.error()) << '\n';
    return 1;
  }

  // 3. Start four children (this program again); on an early return the
  //    handles' destructors kill them.
  std::vector<troupe::ipc::child_process> children;
  for (int i = 0; i < processes; ++i) {
    auto child = node->spawn_self();
    if (!child) {
      std::cerr << troupe::describe(child.error()) << '\n';
      return 1;
    }
    children.push_back(std::move(*child));
  }

  // 4. Wait for all of them, as join() does.
  bool ok = true;
  for (auto& child : children) {
    auto status = child.wait(patience);
    if (!status) {
      std::cerr << troupe::describe(status.error()) << '\n';
      return 1;
    }
    if (!status->success()) {
      std::cerr << "child process " << child.pid() << ' ' << troupe::ipc::to_string(*status)
                << '\n';
      ok = false;
    }
  }

  // 5. Read the totals: nothing was lost.
  auto total = counter->get();
  auto cell = array->get(0);
  if (!total || !cell) {
    std::cerr << troupe::describe(total ? cell.error() : total.error()) << '\n';
    return 1;
  }
  std::cout << "counter = " << *total << '\n';
  std::cout << "array[0] = " << *cell << '\n';
  ok = ok && *total == processes * adds && *cell == processes * adds;

  // 6. Leave the group; `counter` and `array` remove their names as they go.
  node->leave();
  return ok ? 0 : 1;
}

} // namespace

int main() {
  return troupe::ipc::node::in_spawned_child() ? run_child() : run_parent();
}
