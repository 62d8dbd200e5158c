#pragma once

// The fixture of the managed containers' tests (managed_*_test.cpp and
// manager_test.cpp): one process's actor system with a unique group name,
// and the steps that start, find and stop owners in other processes.

#include "manager_workload.hpp"
#include "support.hpp"
#include "troupe/ipc/node.hpp"

#include <string>
#include <utility>
#include <vector>

namespace troupe::test::ipc {

using std::chrono::milliseconds;
using troupe::errc;
using troupe::ipc::managed_array;
using troupe::ipc::managed_dict;
using troupe::ipc::managed_list;
using troupe::ipc::managed_namespace;
using troupe::ipc::managed_queue;
using troupe::ipc::managed_value;
using troupe::ipc::node;

/// One process's actor system, with a unique group name and a shm guard.
struct manager_fixture {
  std::string group;
  shm_guard guard{group};
  manager_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};

  /// Owners the test published: stopped when the test ends, however it
  /// ends, so that the actor system can shut down.
  std::vector<caf::actor> published;

  explicit manager_fixture(const char* tag) : group(unique_group(tag)) {}

  ~manager_fixture() {
    for (auto& x : published)
      caf::anon_send_exit(x, caf::exit_reason::kill);
  }

  /// Publishes the owner of `x` as `name`.
  template <class Handle>
  void publish(node& n, const std::string& name, const Handle& x) {
    published.push_back(x.handle());
    auto publication = n.publish(name, x.handle());
    REQUIRE_MESSAGE(publication, troupe::describe(publication.error()));
    publication->release(); // ends with the node, or with the test
  }

  node make_node(troupe::ipc::group_options opts = {}) {
    auto n = node::create(sys, group, opts);
    REQUIRE_MESSAGE(n, troupe::describe(n.error()));
    return std::move(*n);
  }

  troupe::ipc::child_process start(node& n, const std::vector<std::string>& args) {
    auto child = n.spawn(TROUPE_IPC_CHILD, args);
    REQUIRE_MESSAGE(child, troupe::describe(child.error()));
    return std::move(*child);
  }

  caf::actor find(node& n, const std::string& name) {
    auto x = n.lookup(name, deadline);
    REQUIRE_MESSAGE(x, troupe::describe(x.error()));
    return *x;
  }

  /// Tells a `host m` child to leave; it must exit cleanly.
  void stop_host(node& n, troupe::ipc::child_process& child);
};

inline void check_exits_cleanly(troupe::ipc::child_process& child) {
  auto status = child.wait(deadline);
  REQUIRE_MESSAGE(status, troupe::describe(status.error()));
  CHECK(status->success());
}

/// `check_exits_cleanly` for a child that runs a workload: its length grows
/// with the machine's load, so the deadline is on progress, not on the whole
/// of it. Fails once `progress()` (a count the workload raises) stood still
/// for a whole `deadline`.
template <class Progress>
void check_exits_cleanly_while(troupe::ipc::child_process& child, Progress progress) {
  auto seen = progress();
  for (;;) {
    auto status = child.wait(deadline);
    if (status) {
      CHECK(status->success());
      return;
    }
    auto now = progress();
    REQUIRE_MESSAGE(now != seen, "no progress for " << deadline.count()
                                                    << " s: " << troupe::describe(status.error()));
    seen = now;
  }
}

/// Group options whose readers, and blocking callers, spin for `spin`.
inline troupe::ipc::group_options spinning(caf::timespan spin) {
  troupe::ipc::group_options opts;
  opts.spin = spin;
  return opts;
}

inline void manager_fixture::stop_host(node& n, troupe::ipc::child_process& child) {
  self->send(find(n, "m.ctl"), leave_atom::value);
  check_exits_cleanly(child);
}

} // namespace troupe::test::ipc
