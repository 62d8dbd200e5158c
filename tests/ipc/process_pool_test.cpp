#include "support.hpp"
#include "troupe/executor.hpp"
#include "troupe/ipc/process_pool.hpp"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

using troupe::errc;
using troupe::ipc::node;
using troupe::ipc::process_pool;
using troupe::test::ipc::deadline;
using troupe::test::ipc::eventually;
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

int64_t twice(int64_t x) {
  return 2 * x;
}

/// Creates `base.started`, then returns once `base.go` exists (at most after
/// 10 s, then -1).
int announce_and_wait(std::string base) {
  std::ofstream{base + ".started"} << "started";
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!std::filesystem::exists(base + ".go"))
    if (std::chrono::steady_clock::now() > until)
      return -1;
  return 1;
}

} // namespace

// Only for the named-task protocol: submit and map need no registration.
TROUPE_IPC_TASK(twice);

/// Whether a segment whose name starts with `prefix` is in /dev/shm.
bool segment_with_prefix(const std::string& prefix) {
  for (auto& entry : std::filesystem::directory_iterator{"/dev/shm"})
    if (entry.path().filename().string().rfind(prefix, 0) == 0)
      return true;
  return false;
}

/// A group with this process as its first node, and a pool of `workers`
/// worker processes in it.
struct pool_fixture : ipc_fixture {
  node n;
  process_pool sut;

  pool_fixture(const char* tag, std::size_t workers)
    : ipc_fixture(tag), n(make_node()), sut(make_pool(workers)) {}

  node make_node() {
    auto res = node::create(sys, group);
    REQUIRE_MESSAGE(res, troupe::describe(res.error()));
    return std::move(*res);
  }

  process_pool make_pool(std::size_t workers) {
    troupe::ipc::process_pool_options options;
    options.workers = workers;
    auto res = process_pool::make(sys, n, options);
    REQUIRE_MESSAGE(res, troupe::describe(res.error()));
    return std::move(*res);
  }
};

TEST_SUITE("ipc.process_pool") {

  TEST_CASE("a process pool gives the same results as the thread executor") {
    pool_fixture f{"ppmap", 2};
    auto& sut = f.sut;
    auto threads = troupe::executor::make(f.sys);
    REQUIRE(threads);
    std::vector<int> inputs{-3, 0, 1, 2, 7, 11};
    auto by_processes = sut.map(cube, inputs);
    auto by_threads = threads->map(cube, inputs);
    REQUIRE(by_processes.size() == by_threads.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      REQUIRE(by_processes[i]);
      CHECK(*by_processes[i] == *by_threads[i]);
    }
    // The work really ran in other processes.
    auto pid = sut.submit(worker_pid, int32_t{0}).get(deadline);
    REQUIRE(pid);
    CHECK(*pid != ::getpid());
  }

  TEST_CASE("a task's exception comes back as task_failed with its message") {
    pool_fixture f{"ppthrow", 1};
    auto& sut = f.sut;
    auto res = sut.submit(refuse, 5).get(deadline);
    REQUIRE_FALSE(res);
    CHECK(troupe::is(res.error(), errc::task_failed));
    CHECK(troupe::describe(res.error()).find("refused 5") != std::string::npos);
  }

  TEST_CASE("switching the executor from threads to processes is one line") {
    ipc_fixture f{"ppline"};
    auto prefix = "troupe.pool-" + std::to_string(::getpid()) + "-";
    std::vector<int> inputs{4, -1, 9};
    std::vector<caf::expected<int>> by_threads;
    std::vector<caf::expected<int>> by_processes;
    {
      auto pool = troupe::executor::make(f.sys);
      REQUIRE(pool);
      by_threads = pool->map(cube, inputs);
    }
    {
      auto pool = troupe::ipc::process_pool::make(f.sys); // the one line
      REQUIRE_MESSAGE(pool, troupe::describe(pool.error()));
      by_processes = pool->map(cube, inputs);
      // A captureless lambda is code of this program too.
      auto negated = pool
                       ->submit(
                         +[](int x) { return -x; }, 5)
                       .get(deadline);
      REQUIRE(negated);
      CHECK(*negated == -5);
      CHECK(segment_with_prefix(prefix));
    }
    REQUIRE(by_processes.size() == inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      REQUIRE(by_processes[i]);
      CHECK(*by_processes[i] == *by_threads[i]);
    }
    // The pool's own group went with it.
    CHECK_FALSE(segment_with_prefix(prefix));
  }

  TEST_CASE("stop runs the queued tasks, or cancels them when asked, as the executor's does") {
    {
      pool_fixture f{"ppwait", 1};
      std::vector<troupe::future<int>> queued;
      for (int x = 1; x <= 4; ++x)
        queued.push_back(f.sut.submit(cube, x));
      REQUIRE_FALSE(f.sut.stop()); // shutdown_mode::wait, as executor's default
      for (int x = 1; x <= 4; ++x)
        CHECK(queued[static_cast<size_t>(x - 1)].get(caf::timespan{0}) == x * x * x);
      auto late = f.sut.submit(cube, 5).get(deadline);
      REQUIRE_FALSE(late);
      CHECK(troupe::is(late.error(), errc::cancelled));
    }
    pool_fixture f{"ppcancel", 1};
    auto gate =
      (std::filesystem::temp_directory_path() / ("troupe-gate-" + std::to_string(::getpid())))
        .string();
    struct remove_gate {
      std::string base;
      ~remove_gate() {
        std::error_code ignored;
        std::filesystem::remove(base + ".started", ignored);
        std::filesystem::remove(base + ".go", ignored);
      }
    } cleanup{gate};
    // Queued behind a task that is known to run on the only worker.
    auto running = f.sut.submit(announce_and_wait, gate);
    REQUIRE(eventually([&] { return std::filesystem::exists(gate + ".started"); }));
    std::vector<troupe::future<int>> queued;
    for (int x = 1; x <= 3; ++x)
      queued.push_back(f.sut.submit(cube, x));
    std::thread stopper{[&] { CHECK_FALSE(f.sut.stop(troupe::shutdown_mode::cancel)); }};
    // The queued tasks fail while the running one still runs.
    for (auto& q : queued) {
      auto res = q.get(deadline);
      REQUIRE_FALSE(res);
      CHECK_MESSAGE(troupe::is(res.error(), errc::cancelled), troupe::describe(res.error()));
    }
    std::ofstream{gate + ".go"} << "go";
    stopper.join();
    CHECK(running.get(caf::timespan{0}) == 1);
  }

  TEST_CASE("actors run registered tasks by name, and bad task references are refused") {
    pool_fixture f{"ppname", 1};
    auto& sut = f.sut;
    auto ask = [&](const std::string& name) {
      caf::expected<int64_t> res{int64_t{0}};
      f.self
        ->request(sut.workers().handle(), deadline, troupe::ipc::task_atom::value, name,
                  caf::make_message(int64_t{21}))
        .receive([&](int64_t x) { res = x; }, [&](caf::error& err) { res = std::move(err); });
      return res;
    };
    CHECK(ask("twice") == 42);
    for (auto name : {"no-such-task", "@", "@x|y|1|x|y|2", "@|-|12|", "@|0123|16|x|y|9"}) {
      auto res = ask(name);
      REQUIRE_FALSE_MESSAGE(res, name);
      CHECK_MESSAGE(troupe::is(res.error(), errc::invalid_argument), troupe::describe(res.error()));
    }
  }

  TEST_CASE("a worker process that dies fails its task and is replaced") {
    pool_fixture f{"ppdie", 1};
    auto& sut = f.sut;
    auto before = sut.submit(worker_pid, int32_t{0}).get(deadline);
    REQUIRE(before);
    auto res = sut.submit(die, 0).get(deadline);
    REQUIRE_FALSE(res);
    CHECK_MESSAGE(troupe::is(res.error(), errc::worker_crashed), troupe::describe(res.error()));
    auto after = sut.submit(worker_pid, int32_t{0}).get(deadline);
    REQUIRE(after);
    CHECK(*after != *before);
    CHECK(sut.submit(cube, 3).get(deadline) == 27);
  }

} // TEST_SUITE
