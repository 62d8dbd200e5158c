// Other users are kept out of a group: its segment and its shared values are
// 0600 and checked when opened, names planted under /dev/shm are refused, and
// the key travels on a pipe, never in a process's environment or command
// line. The cases that need another user run commands as `nobody` through
// setpriv; they are skipped, with a message, where that is not allowed.

#include "support.hpp"
#include "troupe/ipc/node.hpp"
#include "troupe/ipc/shared_memory.hpp"

#include <doctest/doctest.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#ifndef TROUPE_TOOL
#error "TROUPE_TOOL must name the troupe tool"
#endif

using namespace troupe::test::ipc;
using troupe::ipc::node;

namespace {

/// Runs the rest of a command line as user and group nobody, no other groups.
const std::string as_nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups ";

/// Whether commands can run as another user here (root, and setpriv).
bool can_change_uid() {
  if (::geteuid() != 0)
    return false;
  auto res = run_program(as_nobody + "id", "-u");
  return res.status == 0 && res.output == "65534\n";
}

#define SKIP_UNLESS_OTHER_USER()                                                                   \
  if (!can_change_uid()) {                                                                         \
    MESSAGE("skipped: this machine does not let the test run commands as another user (it "        \
            "needs root and setpriv)");                                                            \
    return;                                                                                        \
  }

std::string read_all(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

/// The processes of this machine whose environment or command line holds
/// `text` (of those this user may read).
std::vector<std::string> processes_showing(const std::string& text) {
  std::vector<std::string> res;
  for (auto& entry : std::filesystem::directory_iterator{"/proc"}) {
    auto pid = entry.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos)
      continue;
    for (auto file : {"/environ", "/cmdline"})
      if (read_all(entry.path().string() + file).find(text) != std::string::npos)
        res.push_back(pid + file);
  }
  return res;
}

bool is_symlink(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}

uid_t owner_of(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 ? st.st_uid : static_cast<uid_t>(-1);
}

} // namespace

TEST_SUITE("ipc.other_user") {

  TEST_CASE("another user can neither join, open, map, read nor remove a group's segment or its "
            "shared values, and the troupe tool leaves them to their owner") {
    SKIP_UNLESS_OTHER_USER();
    ipc_fixture f{"otheruser"};
    auto n = node::create(f.sys, f.group);
    REQUIRE(n);
    auto balance = troupe::ipc::shared_value<int64_t>::create(*n, "balance", 5);
    REQUIRE_MESSAGE(balance, troupe::describe(balance.error()));
    auto segment = "troupe." + f.group;
    auto value_segment = segment + ".v.balance";
    REQUIRE(owner_of("/dev/shm/" + value_segment) == 0);
    auto res = run_program(as_nobody + TROUPE_IPC_CHILD, "intrude " + f.group + " " + n->key() + " "
                                                           + segment + " " + value_segment);
    INFO(res.output);
    CHECK(res.status == 0);
    CHECK(contains(res.output, "join " + f.group + ": refused: "));
    for (auto& name : {segment, value_segment})
      for (std::string what : {"open for write ", "open for read ", "remove "})
        CHECK_MESSAGE(contains(res.output, what + name + ": refused: "), what << name);
    CHECK_FALSE(contains(res.output, "DONE"));
    // The tool, run by that user: listed as not readable, kept by clean.
    auto ls = run_program(as_nobody + TROUPE_TOOL, "ls");
    INFO(ls.output);
    CHECK(contains(ls.output, f.group));
    CHECK(contains(ls.output, "permission denied"));
    auto clean = run_program(as_nobody + TROUPE_TOOL, "clean");
    INFO(clean.output);
    CHECK(shm_exists(f.group));
    CHECK(owner_of("/dev/shm/" + value_segment) == 0);
    auto now = balance->get();
    REQUIRE(now);
    CHECK(*now == 5);
  }

  TEST_CASE("a symlink or a file another user planted under a group's name is refused, neither "
            "followed nor adopted") {
    SKIP_UNLESS_OTHER_USER();
    config cfg;
    caf::actor_system sys{cfg};
    auto linked = unique_group("planted-link");
    auto filed = unique_group("planted-file");
    shm_guard link_guard{linked};
    shm_guard file_guard{filed};
    auto target = std::filesystem::temp_directory_path()
                  / ("troupe-planted-target-" + std::to_string(::getpid()));
    std::ofstream{target} << "untouched\n";
    REQUIRE(run_program(as_nobody + "ln", "-s " + target.string() + " " + shm_path(linked)).status
            == 0);
    REQUIRE(
      run_program(as_nobody + "sh", "-c 'umask 077; echo planted > " + shm_path(filed) + "'").status
      == 0);
    REQUIRE(is_symlink(shm_path(linked)));
    REQUIRE(owner_of(shm_path(filed)) == 65534);
    auto via_link = node::create(sys, linked);
    REQUIRE_FALSE(via_link);
    MESSAGE(troupe::describe(via_link.error()));
    auto over_file = node::create(sys, filed);
    REQUIRE_FALSE(over_file);
    MESSAGE(troupe::describe(over_file.error()));
    auto joined = node::join(sys, filed, std::string(32, '0'));
    REQUIRE_FALSE(joined);
    CHECK(troupe::is(joined.error(), troupe::ipc::errc::bad_segment));
    // Nothing followed, nothing replaced.
    CHECK(read_all(target.string()) == "untouched\n");
    CHECK(is_symlink(shm_path(linked)));
    CHECK(owner_of(shm_path(filed)) == 65534);
    CHECK(read_all(shm_path(filed)) == "planted\n");
    std::filesystem::remove(target);
  }

  TEST_CASE("the group's key shows in no process's environment or command line, nor in what the "
            "troupe tool prints") {
    ipc_fixture f{"keyhidden"};
    auto n = node::create(f.sys, f.group);
    REQUIRE(n);
    auto child = f.serve(*n, "k1");
    f.find(*n, "k1"); // the child joined: it had the key
    auto key = n->key();
    auto showing = processes_showing(key);
    INFO(doctest::toString(showing));
    CHECK(showing.empty());
    for (std::string args : {"ls", "ls --json"}) {
      auto out = run_program(TROUPE_TOOL, args);
      CHECK(contains(out.output, f.group));
      CHECK_FALSE(contains(out.output, key));
    }
  }

  TEST_CASE("at the user's process limit, starting a process is a resource_limit error, a "
            "supervisor's restarts count against its intensity, and the group goes on") {
    SKIP_UNLESS_OTHER_USER();
    // Root is not held to RLIMIT_NPROC: the child runs as another user.
    auto group = unique_group("nproc");
    shm_guard guard{group};
    auto res = run_program(as_nobody + TROUPE_IPC_CHILD, "at-process-limit " + group);
    INFO(res.output);
    CHECK(res.status == 0);
    for (auto what : {"spawn_process: ", "node spawn: "}) {
      auto at = res.output.find(what);
      REQUIRE_MESSAGE(at != std::string::npos, what);
      auto line = res.output.substr(at, res.output.find('\n', at) - at);
      CHECK_MESSAGE(contains(line, "resource_limit"), line);
      CHECK_MESSAGE(contains(line, "ulimit -u is 1"), line);
    }
    // The restart failed for the same reason, and so did the ones after it
    // until the intensity was exceeded.
    CHECK(contains(res.output, "supervisor: "));
    CHECK(contains(res.output, "restart_intensity"));
    CHECK(contains(res.output, "ulimit -u is 1"));
    CHECK(contains(res.output, "group: works"));
  }
} // TEST_SUITE
