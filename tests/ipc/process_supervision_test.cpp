// Tests of troupe/ipc/process_supervision.hpp: processes as children of a
// troupe::supervisor.

#include "support.hpp"
#include "troupe/ipc/node.hpp"
#include "troupe/ipc/process_supervision.hpp"
#include "troupe/supervisor.hpp"

#include <signal.h>

#include <filesystem>

using namespace troupe::test::ipc;
using troupe::errc;
using troupe::ipc::node;

TEST_SUITE("ipc.process_supervision") {

  TEST_CASE("a supervised process killed with SIGKILL is restarted and its name follows") {
    ipc_fixture f{"supproc"};
    auto group = node::create(f.sys, f.group);
    REQUIRE(group);
    auto spec = echo_process("w");
    troupe::supervisor_flags flags;
    flags.max_restarts = 3;
    auto sut = troupe::supervisor::make(f.sys, flags, {troupe::ipc::process_child(*group, spec)});
    REQUIRE_MESSAGE(sut, troupe::describe(sut.error()));
    auto handle = sut->child("w");
    REQUIRE(handle);
    auto first = f.ask<int32_t>(*handle, pid_atom::value);
    REQUIRE(first);
    REQUIRE(::kill(*first, SIGKILL) == 0);
    // The stable handle reaches the new process; so does the published name.
    int32_t second = 0;
    REQUIRE(eventually([&] {
      auto pid = f.ask<int32_t>(*handle, pid_atom::value);
      second = pid ? *pid : 0;
      return pid && *pid != *first;
    }));
    auto by_name = f.find(*group, "w");
    CHECK(f.ask<int32_t>(by_name, pid_atom::value) == second);
    CHECK_FALSE(sut->stop(deadline));
  }

  TEST_CASE("a request a killed supervised process did not answer fails with child_down") {
    ipc_fixture f{"supdown"};
    auto group = node::create(f.sys, f.group);
    REQUIRE(group);
    auto spec = echo_process("w");
    auto sut = troupe::supervisor::make(f.sys, {}, {troupe::ipc::process_child(*group, spec)});
    REQUIRE_MESSAGE(sut, troupe::describe(sut.error()));
    auto handle = *sut->child("w");
    auto a = f.spawn(asker, caf::actor{f.self});
    f.self->send(a, handle, hold_atom::value);
    // The request is in the process's hands once it answers one sent later.
    auto pid = f.ask<int32_t>(handle, pid_atom::value);
    REQUIRE(pid);
    REQUIRE(::kill(*pid, SIGKILL) == 0);
    std::string outcome;
    f.self->receive([&](std::string& x) { outcome = x; },
                    caf::after(deadline) >> [] { FAIL("the pending request was never answered"); });
    // The same error as for a crashed actor child: a caller retries on it.
    CHECK_MESSAGE(outcome.find("child_down") != std::string::npos, outcome);
    CHECK_FALSE(sut->stop(deadline));
  }

  TEST_CASE("once a supervisor of processes has stopped, they have exited and left the group") {
    ipc_fixture f{"supstop"};
    auto group = node::create(f.sys, f.group);
    REQUIRE(group);
    std::vector<troupe::child_spec> children;
    for (auto name : {"a", "b"}) {
      auto spec = echo_process(name);
      children.push_back(troupe::ipc::process_child(*group, spec));
    }
    auto sut = troupe::supervisor::make(f.sys, {}, children);
    REQUIRE_MESSAGE(sut, troupe::describe(sut.error()));
    children.clear(); // the supervisor holds the only copies
    std::vector<int32_t> pids;
    for (auto name : {"a", "b"}) {
      auto pid = f.ask<int32_t>(*sut->child(name), pid_atom::value);
      REQUIRE(pid);
      pids.push_back(*pid);
    }
    REQUIRE_FALSE(sut->stop(deadline));
    // Exited and reaped, not merely their actors gone.
    for (auto pid : pids)
      CHECK_MESSAGE(::kill(pid, 0) == -1, "process " << pid << " still exists");
    group->leave(); // the last one out
    CHECK_FALSE(std::filesystem::exists("/dev/shm/troupe." + f.group));
  }

  TEST_CASE("a process that keeps dying makes its supervisor give up with restart_intensity") {
    ipc_fixture f{"supgive"};
    auto group = node::create(f.sys, f.group);
    REQUIRE(group);
    auto spec = echo_process("w");
    troupe::supervisor_flags flags;
    flags.max_restarts = 1;
    flags.period = std::chrono::seconds(30);
    auto sut = troupe::supervisor::make(f.sys, flags, {troupe::ipc::process_child(*group, spec)});
    REQUIRE(sut);
    f.self->monitor(sut->handle());
    auto handle = *sut->child("w");
    for (int kill = 0; kill < 2; ++kill) {
      int32_t pid = 0;
      REQUIRE(eventually([&] {
        auto p = f.ask<int32_t>(handle, pid_atom::value);
        pid = p ? *p : 0;
        return static_cast<bool>(p);
      }));
      REQUIRE(::kill(pid, SIGKILL) == 0);
      if (kill == 0) // wait for the restart before the second crash
        REQUIRE(eventually([&] {
          auto p = f.ask<int32_t>(handle, pid_atom::value);
          return p && *p != pid;
        }));
    }
    caf::error reason;
    f.self->receive([&](caf::down_msg& dm) { reason = dm.reason; },
                    caf::after(deadline) >> [] { FAIL("the supervisor did not give up"); });
    CHECK(troupe::is(reason, errc::restart_intensity));
  }

} // TEST_SUITE
