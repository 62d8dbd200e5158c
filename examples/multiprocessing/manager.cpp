// manager: multiprocessing.Manager's shared list and dict, as actors reached
// from another process.
//
// The chapter's Manager holds a list [1, 2, 3] and a dict; a child process
// appends 4 to the list and sets d['key'] = 'value' through proxies, and the
// parent prints both. Here the parent spawns each container's owner actor,
// publishes it in a troupe::ipc group and starts itself again as the child
// (posix_spawn, never a bare fork); the child looks the containers up and
// calls them through the same handle classes. Every call is one atomic step
// on the owner, and an error raised there (a missing key, like Python's
// KeyError through a RemoteError) comes back to the caller as a troupe error.

#include "troupe/error.hpp"
#include "troupe/ipc/configure.hpp"
#include "troupe/ipc/node.hpp"
#include "troupe/ipc/shared_dict.hpp"
#include "troupe/ipc/shared_list.hpp"
#include "troupe/ipc/shared_types.hpp"

#include <caf/all.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <iostream>
#include <sstream>
#include <string>

namespace {

using shared_list = troupe::ipc::shared_list<int32_t>;
using shared_dict = troupe::ipc::shared_dict<std::string, std::string>;

// How long either side waits for the other before it gives up.
constexpr auto patience = std::chrono::seconds(30);

// Both processes register the same types: the containers' elements travel.
void configure(caf::actor_system_config& cfg) {
  troupe::ipc::configure(cfg);
  troupe::ipc::add_shared_types(cfg); // std::vector<int32_t> and friends
}

std::string show(const std::vector<int32_t>& xs) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < xs.size(); ++i)
    out << (i > 0 ? ", " : "") << xs[i];
  out << ']';
  return out.str();
}

std::string show(const std::vector<std::pair<std::string, std::string>>& items) {
  std::ostringstream out;
  out << '{';
  for (size_t i = 0; i < items.size(); ++i)
    out << (i > 0 ? ", " : "") << '\'' << items[i].first << "': '" << items[i].second << '\'';
  out << '}';
  return out.str();
}

int run_child() {
  caf::actor_system_config cfg;
  configure(cfg);
  caf::actor_system sys{cfg};

  // 1. Join the parent's group.
  auto node = troupe::ipc::node::join_from_env(sys);
  if (!node) {
    std::cerr << "child: cannot join: " << troupe::describe(node.error()) << '\n';
    return 1;
  }

  // 2. Look the containers up: a handle from the actor that node::lookup finds.
  auto l = node->lookup("list", patience);
  auto d = node->lookup("dict", patience);
  if (!l || !d) {
    std::cerr << "child: the containers are not published\n";
    return 1;
  }
  auto list = shared_list{*l};
  auto dict = shared_dict{*d};

  // 3. Change them: each call runs on the owner in the parent's process.
  if (auto err = list.append(4)) {
    std::cerr << "child: append: " << troupe::describe(err) << '\n';
    return 1;
  }
  if (auto err = dict.set("key", "value")) {
    std::cerr << "child: set: " << troupe::describe(err) << '\n';
    return 1;
  }

  // 4. Leave the group.
  node->leave();
  return 0;
}

int run_parent() {
  caf::actor_system_config cfg;
  configure(cfg);
  caf::actor_system sys{cfg};

  // 1. A group of our own: the pid in its name keeps concurrent runs apart.
  auto group = "mp-manager-" + std::to_string(::getpid());
  auto node = troupe::ipc::node::create(sys, group);
  if (!node) {
    std::cerr << "cannot create group " << group << ": " << troupe::describe(node.error()) << '\n';
    return 1;
  }

  // 2. The containers: their owners live in this process, published by name.
  auto list = shared_list::make(sys, {1, 2, 3});
  auto dict = shared_dict::make(sys);
  // Published owners live until stopped; stop them however we leave.
  struct stopper {
    shared_list& list;
    shared_dict& dict;
    ~stopper() {
      list.stop();
      dict.stop();
    }
  } stop_owners{list, dict};
  if (auto err = node->publish("list", list.handle()); err) {
    std::cerr << troupe::describe(err) << '\n';
    return 1;
  }
  if (auto err = node->publish("dict", dict.handle()); err) {
    std::cerr << troupe::describe(err) << '\n';
    return 1;
  }

  // 3. Start this program again as the child and wait for it, as join() does.
  auto child = node->spawn_self();
  if (!child) {
    std::cerr << troupe::describe(child.error()) << '\n';
    return 1;
  }
  auto status = child->wait(patience);
  if (!status || !status->success()) {
    std::cerr << "the child failed\n";
    return 1;
  }

  // 4. Print what the child did, read through the same handles.
  auto items = list.snapshot();
  auto pairs = dict.items();
  if (!items || !pairs) {
    std::cerr << "cannot read the containers\n";
    return 1;
  }
  std::cout << show(*items) << '\n';
  std::cout << show(*pairs) << '\n';

  // 5. An error raised in the owner comes back to the caller.
  auto missing = dict.get("missing");
  if (missing) {
    std::cerr << "a missing key was found\n";
    return 1;
  }
  std::cout << "d['missing'] failed: " << troupe::describe(missing.error()) << '\n';

  // 6. Leave the group: we are the last one out, so the segment goes too.
  node->leave();
  return *items == std::vector<int32_t>{1, 2, 3, 4} ? 0 : 1;
}

} // namespace

int main() {
  return troupe::ipc::node::in_spawned_child() ? run_child() : run_parent();
}
