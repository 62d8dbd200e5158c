#include "support.hpp"
#include "troupe/executor.hpp"
#include "troupe/ipc/process_pool.hpp"

#include <signal.h>
#include <unistd.h>

#include <stdexcept>

using troupe::errc;
using troupe::ipc::node;
using troupe::ipc::process_pool;
using troupe::test::ipc::deadline;
using troupe::test::ipc::ipc_fixture;

namespace {

int cube(int x) {
  return x * x * x;
}

int32_t worker_pid(int32_t) {
  return static_cast<int32_t>(::getpid());
}

int refuse(int x) {
  throw std::runtime_error("refused " + std::to_string(x));
}

int die(int) {
  ::raise(SIGKILL);
  return 0;
}

int not_registered(int x) {
  return x;
}

} // namespace

TROUPE_IPC_TASK(cube);
TROUPE_IPC_TASK(worker_pid);
TROUPE_IPC_TASK(refuse);
TROUPE_IPC_TASK(die);

TEST_SUITE("ipc.process_pool") {

  TEST_CASE("a process pool gives the same results as the thread executor") {
    ipc_fixture f{"ppmap"};
    auto group = node::create(f.sys, f.group);
    REQUIRE(group);
    troupe::ipc::process_pool_options options;
    options.workers = 2;
    auto sut = process_pool::make(f.sys, *group, options);
    REQUIRE_MESSAGE(sut, troupe::describe(sut.error()));
    auto threads = troupe::executor::make(f.sys);
    REQUIRE(threads);
    std::vector<int> inputs{-3, 0, 1, 2, 7, 11};
    auto by_processes = sut->map(cube, inputs);
    auto by_threads = threads->map(cube, inputs);
    REQUIRE(by_processes.size() == by_threads.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      REQUIRE(by_processes[i]);
      CHECK(*by_processes[i] == *by_threads[i]);
    }
    // The work really ran in other processes.
    auto pid = sut->submit(worker_pid, int32_t{0}).get(deadline);
    REQUIRE(pid);
    CHECK(*pid != ::getpid());
  }

  TEST_CASE("a task's exception comes back as task_failed with its message") {
    ipc_fixture f{"ppthrow"};
    auto group = node::create(f.sys, f.group);
    REQUIRE(group);
    troupe::ipc::process_pool_options options;
    options.workers = 1;
    auto sut = process_pool::make(f.sys, *group, options);
    REQUIRE(sut);
    auto res = sut->submit(refuse, 5).get(deadline);
    REQUIRE_FALSE(res);
    CHECK(troupe::is(res.error(), errc::task_failed));
    CHECK(troupe::describe(res.error()).find("refused 5") != std::string::npos);
    auto unknown = sut->submit(not_registered, 1).get(deadline);
    CHECK(troupe::is(unknown.error(), errc::invalid_argument));
  }

  TEST_CASE("a worker process that dies fails its task and is replaced") {
    ipc_fixture f{"ppdie"};
    auto group = node::create(f.sys, f.group);
    REQUIRE(group);
    troupe::ipc::process_pool_options options;
    options.workers = 1;
    auto sut = process_pool::make(f.sys, *group, options);
    REQUIRE(sut);
    auto before = sut->submit(worker_pid, int32_t{0}).get(deadline);
    REQUIRE(before);
    auto res = sut->submit(die, 0).get(deadline);
    REQUIRE_FALSE(res);
    CHECK_MESSAGE(troupe::is(res.error(), errc::worker_crashed), troupe::describe(res.error()));
    auto after = sut->submit(worker_pid, int32_t{0}).get(deadline);
    REQUIRE(after);
    CHECK(*after != *before);
    CHECK(sut->submit(cube, 3).get(deadline) == 27);
  }

} // TEST_SUITE
