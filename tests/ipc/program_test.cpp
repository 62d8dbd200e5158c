#include "support.hpp"
#include "troupe/ipc/program.hpp"

#include <signal.h>

#include <filesystem>
#include <fstream>

#ifndef TROUPE_PROGRAM_CHILD
#error "TROUPE_PROGRAM_CHILD must name the program built on troupe::ipc::program"
#endif

using namespace troupe::test::ipc;

namespace {

/// Whether process `pid` has ended (gone, or a zombie nobody reaped yet).
bool ended(pid_t pid) {
  auto state = process_state(pid);
  return state == 0 || state == 'Z';
}

} // namespace

TEST_SUITE("ipc.program") {

  TEST_CASE("a role's function runs in the child with its arguments and gives its exit status") {
    auto sut = run_program(TROUPE_PROGRAM_CHILD, "args one two");
    CHECK_MESSAGE(sut.status == 0, sut.output);
    CHECK_MESSAGE(contains(sut.output, "role show one two\n"), sut.output);
    CHECK_MESSAGE(contains(sut.output, "child exited with status 3"), sut.output);
  }

  TEST_CASE(
    "a failed check is reported with the program's name and exits 1, actors running or not") {
    auto sut = run_program(TROUPE_PROGRAM_CHILD, "check");
    CHECK(sut.status == 1);
    CHECK_MESSAGE(contains(sut.output, "troupe-program-child: checking: troupe.invalid_argument: "
                                       "a bad value"),
                  sut.output);
  }

  TEST_CASE("a process started in a role the program does not define says so and exits 1") {
    auto sut = run_program(TROUPE_PROGRAM_CHILD, "unknown");
    CHECK_MESSAGE(sut.status == 0, sut.output);
    CHECK_MESSAGE(contains(sut.output, "started in role 'nosuch', which this program does not "
                                       "define"),
                  sut.output);
    CHECK_MESSAGE(contains(sut.output, "child exited with status 1"), sut.output);
  }

  TEST_CASE("a served actor is published under its role and its process exits when it ends") {
    auto sut = run_program(TROUPE_PROGRAM_CHILD, "stop-served");
    CHECK_MESSAGE(sut.status == 0, sut.output);
    CHECK_MESSAGE(contains(sut.output, "child exited with status 0"), sut.output);
  }

  TEST_CASE("a child whose parent is killed with SIGKILL leaves the group and exits") {
    auto file = std::filesystem::temp_directory_path()
                / ("troupe-orphan-" + std::to_string(::getpid()) + ".txt");
    struct remove_file {
      std::filesystem::path path;
      ~remove_file() {
        std::error_code ignored;
        std::filesystem::remove(path, ignored);
      }
    } cleanup{file};
    auto parent = troupe::ipc::spawn_process(TROUPE_PROGRAM_CHILD, {"orphan", file.string()});
    REQUIRE_MESSAGE(parent, troupe::describe(parent.error()));
    REQUIRE(eventually([&] { return std::filesystem::exists(file) || !parent->running(); }));
    std::string group;
    pid_t child = 0;
    std::ifstream{file} >> group >> child;
    REQUIRE(child > 0);
    shm_guard guard{group};
    REQUIRE(shm_exists(group));
    REQUIRE_FALSE(parent->kill(SIGKILL));
    REQUIRE(parent->wait(deadline));
    // No user code in the child: it saw its parent go, left, and exited.
    CHECK(eventually([&] { return ended(child); }));
    CHECK(eventually([&] { return !shm_exists(group); }));
    if (!ended(child))
      ::kill(child, SIGKILL);
  }

} // TEST_SUITE
