// The `troupe` tool (tools/troupe), run as a subprocess against real groups.

#include "support.hpp"
#include "troupe/ipc/inspect.hpp"
#include "troupe/ipc/process.hpp"
#include "troupe/ipc/shared_memory.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#ifndef TROUPE_TOOL
#error "TROUPE_TOOL must name the troupe tool"
#endif

using troupe::errc;
using troupe::ipc::node;
using namespace troupe::test::ipc;

namespace {

/// Runs `troupe ARGS` and collects its exit status and output.
program_result run_tool(const std::string& args) {
  return run_program(TROUPE_TOOL, args);
}

std::string value_path(const std::string& group, const std::string& name) {
  return shm_path(group) + ".v." + name;
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

/// Removes a path when the test ends, however it ends.
struct path_guard {
  std::string path;
  ~path_guard() {
    std::remove(path.c_str());
  }
};

} // namespace

TEST_SUITE("ipc.tool") {

  TEST_CASE(
    "tool: troupe ls shows a running group's nodes, their pids and the names they published") {
    ipc_fixture f{"tool-ls"};
    auto n = node::create(f.sys, f.group);
    REQUIRE_MESSAGE(n, troupe::describe(n.error()));
    auto child = f.serve(*n, "echo");
    auto ctl = f.find(*n, "echo.ctl");
    auto sut = run_tool("ls " + f.group);
    CHECK(sut.status == 0);
    INFO(sut.output);
    CHECK(contains(sut.output, "group " + f.group));
    CHECK(contains(sut.output, "running (pids "));
    CHECK(contains(sut.output, " " + std::to_string(::getpid()) + " "));
    CHECK(contains(sut.output, " " + std::to_string(child.pid()) + " "));
    CHECK(contains(sut.output, "alive"));
    CHECK(contains(sut.output, "troupe-ipc-child serve echo"));
    CHECK(contains(sut.output, "    echo  slot "));
    CHECK(contains(sut.output, "    echo.ctl  slot "));
    CHECK(contains(sut.output, "0->1  "));
    auto json = run_tool("ls --json " + f.group);
    CHECK(json.status == 0);
    CHECK(contains(json.output, "\"name\":\"echo\""));
    CHECK(contains(json.output, "\"running\":true"));
    f.self->send(ctl, leave_atom::value);
    auto status = child.wait(deadline);
    REQUIRE(status);
    CHECK(status->success());
  }

  TEST_CASE("tool: troupe clean refuses a running group, names the live pids and exits with 1") {
    ipc_fixture f{"tool-live"};
    auto n = node::create(f.sys, f.group);
    REQUIRE_MESSAGE(n, troupe::describe(n.error()));
    auto sut = run_tool("clean " + f.group);
    INFO(sut.output);
    CHECK(sut.status == 1);
    CHECK(contains(sut.output, "refused: group '" + f.group + "' is running"));
    CHECK(contains(sut.output, std::to_string(::getpid())));
    CHECK(shm_exists(f.group));
  }

  TEST_CASE("tool: troupe clean removes a group whose processes were all killed with SIGKILL") {
    ipc_fixture f{"tool-dead"};
    auto key_file = "/tmp/troupe-" + f.group + ".key";
    path_guard key_guard{key_file};
    auto child = troupe::ipc::spawn_process(TROUPE_IPC_CHILD, {"create", f.group, key_file});
    REQUIRE(child);
    REQUIRE(eventually([&] { return exists(key_file); }));
    REQUIRE_FALSE(child->kill(SIGKILL));
    REQUIRE(child->wait(deadline));
    REQUIRE(shm_exists(f.group));
    auto before = run_tool("ls " + f.group);
    INFO(before.output);
    CHECK(before.status == 0);
    CHECK(contains(before.output, "not running (all 1 node dead)"));
    CHECK(contains(before.output, " dead "));
    auto sut = run_tool("clean " + f.group);
    INFO(sut.output);
    CHECK(sut.status == 0);
    CHECK(contains(sut.output, "removed group '" + f.group + "'"));
    CHECK_FALSE(shm_exists(f.group));
    auto after = run_tool("ls " + f.group);
    CHECK(after.status == 1);
    CHECK(contains(after.output, "no group '" + f.group + "'"));
  }

  TEST_CASE(
    "tool: troupe clean keeps a dead creator's shared value while its group runs, then removes "
    "it") {
    ipc_fixture f{"tool-value"};
    path_guard value_guard{value_path(f.group, "left")};
    auto key_file = "/tmp/troupe-" + f.group + ".key";
    path_guard key_guard{key_file};
    // The group's creator is a child; this process joins, and so does the
    // value's creator.
    auto host = troupe::ipc::spawn_process(TROUPE_IPC_CHILD, {"create", f.group, key_file});
    REQUIRE(host);
    REQUIRE(eventually([&] { return exists(key_file); })); // written whole, then renamed
    std::string key;
    std::getline(std::ifstream{key_file}, key);
    auto n = node::join(f.sys, f.group, key);
    REQUIRE_MESSAGE(n, troupe::describe(n.error()));
    auto creator = n->spawn(TROUPE_IPC_CHILD, {"shm-create", "left"});
    REQUIRE_MESSAGE(creator, troupe::describe(creator.error()));
    REQUIRE(eventually([&] { return process_state(creator->pid()) == 'T'; }));
    REQUIRE_FALSE(creator->kill(SIGKILL));
    REQUIRE(creator->wait(deadline));
    REQUIRE(exists(value_path(f.group, "left")));
    auto kept = run_tool("clean " + f.group);
    INFO(kept.output);
    CHECK(kept.status == 1); // the group itself runs
    CHECK(contains(kept.output, "in use (creator pid " + std::to_string(creator->pid())
                                  + " gone, but group '" + f.group + "' runs"));
    CHECK(exists(value_path(f.group, "left")));
    // Not the last one out: the group and the value stay. Then the group's
    // last process is killed, and nobody is left to sweep them.
    n->leave();
    REQUIRE_FALSE(host->kill(SIGKILL));
    REQUIRE(host->wait(deadline));
    REQUIRE(shm_exists(f.group));
    REQUIRE(exists(value_path(f.group, "left")));
    auto sut = run_tool("clean " + f.group);
    INFO(sut.output);
    CHECK(sut.status == 0);
    CHECK(contains(sut.output, "removed group '" + f.group + "'"));
    CHECK(contains(sut.output, "removed /dev/shm/troupe." + f.group + ".v.left"));
    CHECK_FALSE(shm_exists(f.group));
    CHECK_FALSE(exists(value_path(f.group, "left")));
  }

  TEST_CASE("tool: troupe ls shows what shared numbers hold, and no value of another type") {
    ipc_fixture f{"tool-values"};
    auto n = node::create(f.sys, f.group);
    REQUIRE_MESSAGE(n, troupe::describe(n.error()));
    auto hits = troupe::ipc::shared_value<int64_t>::create(*n, "hits", 41);
    REQUIRE_MESSAGE(hits, troupe::describe(hits.error()));
    hits->add(1);
    std::vector<double> halves;
    for (int i = 0; i < 10; ++i)
      halves.push_back(i + 0.5);
    auto xs = troupe::ipc::shared_array<double>::create(*n, "xs", halves);
    REQUIRE_MESSAGE(xs, troupe::describe(xs.error()));
    struct point {
      int32_t x;
      int32_t y;
    };
    auto where = troupe::ipc::shared_value<point>::create(*n, "where", point{1, 2});
    REQUIRE_MESSAGE(where, troupe::describe(where.error()));
    auto sut = run_tool("ls " + f.group);
    INFO(sut.output);
    CHECK(sut.status == 0);
    CHECK(
      contains(sut.output, "value 'hits' of group '" + f.group + "' (long, 1 x 8 bytes) = 42,"));
    CHECK(contains(sut.output,
                   "(double, 10 x 8 bytes) = [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, ...],"));
    CHECK(contains(sut.output, "value 'where' of group '" + f.group + "' ("));
    CHECK_FALSE(contains(sut.output, "8 bytes) = 1")); // a point is no number
    auto json = run_tool("ls --json " + f.group);
    CHECK(contains(json.output, "\"name\":\"hits\""));
    CHECK(contains(json.output, "\"values\":\"42\""));
    CHECK(contains(json.output, "\"values\":\"\""));
  }

  TEST_CASE("tool: a segment that is not troupe's is reported by ls and kept by clean") {
    auto group = unique_group("tool-junk");
    shm_guard guard{group};
    {
      auto fd = ::open(shm_path(group).c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
      REQUIRE(fd >= 0);
      std::string junk(4096, 'j');
      REQUIRE(::write(fd, junk.data(), junk.size()) == static_cast<ssize_t>(junk.size()));
      ::close(fd);
    }
    auto ls = run_tool("ls " + group);
    INFO(ls.output);
    CHECK(ls.status == 1);
    CHECK(contains(ls.output, "troupe." + group + ": not a troupe segment (bad magic)"));
    auto sut = run_tool("clean " + group);
    INFO(sut.output);
    CHECK(sut.status == 1);
    CHECK(contains(sut.output, "kept /dev/shm/troupe." + group));
    CHECK(shm_exists(group));
    CHECK(troupe::is(troupe::ipc::inspect_group(group).error(), troupe::ipc::errc::bad_segment));
  }

  TEST_CASE("tool: troupe exits with 2 and says why on a usage error") {
    auto none = run_tool("");
    CHECK(none.status == 2);
    CHECK(contains(none.output, "a command is needed"));
    auto unknown = run_tool("frobnicate");
    CHECK(unknown.status == 2);
    CHECK(contains(unknown.output, "unknown command 'frobnicate'"));
    auto option = run_tool("ls --bogus");
    CHECK(option.status == 2);
    CHECK(contains(option.output, "ls: unknown option '--bogus'"));
    CHECK(contains(option.output, "troupe ls --help"));
    auto clean_option = run_tool("clean --all-of-it");
    CHECK(clean_option.status == 2);
  }

} // TEST_SUITE
