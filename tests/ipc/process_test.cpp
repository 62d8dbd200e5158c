#include "support.hpp"
#include "troupe/ipc/process.hpp"

#include <signal.h>

using troupe::errc;
using troupe::ipc::spawn_process;
using troupe::test::ipc::deadline;

TEST_SUITE("ipc.process") {

  TEST_CASE("a child's exit status is reported") {
    auto sut = spawn_process("sh", {"-c", "exit 3"});
    REQUIRE(sut);
    auto status = sut->wait(deadline);
    REQUIRE(status);
    CHECK(status->exited);
    CHECK(status->code == 3);
    CHECK_FALSE(status->success());
    CHECK(to_string(*status) == "exited with status 3");
  }

  TEST_CASE("a child killed by a signal says which") {
    auto sut = spawn_process("sleep", {"30"});
    REQUIRE(sut);
    REQUIRE_FALSE(sut->kill(SIGKILL));
    auto status = sut->wait(deadline);
    REQUIRE(status);
    CHECK_FALSE(status->exited);
    CHECK(status->signal == SIGKILL);
  }

  TEST_CASE("waiting with a timeout on a running child fails with timeout") {
    auto sut = spawn_process("sleep", {"30"});
    REQUIRE(sut);
    auto status = sut->wait(std::chrono::milliseconds(10));
    CHECK(troupe::is(status.error(), errc::timeout));
    CHECK(sut->running()); // the destructor kills and reaps it
  }

  TEST_CASE("a program that cannot be started is a clear error") {
    auto sut = spawn_process("/nonexistent/troupe-nothing");
    REQUIRE_FALSE(sut);
    CHECK(troupe::is(sut.error(), troupe::ipc::errc::spawn_failed));
    CHECK(troupe::describe(sut.error()).find("/nonexistent/troupe-nothing") != std::string::npos);
  }

  TEST_CASE("the environment given to a child overrides the parent's") {
    auto sut =
      spawn_process("sh", {"-c", "test \"$TROUPE_TEST_VAR\" = yes"}, {"TROUPE_TEST_VAR=yes"});
    REQUIRE(sut);
    auto status = sut->wait(deadline);
    REQUIRE(status);
    CHECK(status->success());
  }

} // TEST_SUITE
