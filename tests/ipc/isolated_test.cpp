// Tests of isolated.hpp: an actor in a process of its own survives that
// process's crashes. Each case runs troupe-program-child (a program built on
// troupe::ipc::program, whose processes host the isolated actors) in a mode
// and reads what it printed.

#include "support.hpp"

#include <string>

#ifndef TROUPE_PROGRAM_CHILD
#error "TROUPE_PROGRAM_CHILD must name the program built on troupe::ipc::program"
#endif

using namespace troupe::test::ipc;

namespace {

/// Runs the program in `mode` and checks that it exited 0. Its host
/// processes crash on purpose: under AddressSanitizer and ThreadSanitizer
/// they die of the SIGSEGV itself (`handle_segv=0`), not of a report that
/// would count as a finding.
std::string run_mode(const std::string& mode) {
  auto res = run_program("ASAN_OPTIONS=\"$ASAN_OPTIONS:handle_segv=0\" "
                         "TSAN_OPTIONS=\"$TSAN_OPTIONS:handle_segv=0\" " TROUPE_PROGRAM_CHILD,
                         mode);
  INFO(res.output);
  CHECK(res.status == 0);
  return res.output;
}

void check_survives(const std::string& how) {
  auto out = run_mode("isolated " + how);
  INFO(out);
  CHECK(contains(out, "before 4\n"));
  CHECK(contains(out, "after 6\n"));
  CHECK(contains(out, "new process yes\n"));
  CHECK(contains(out, "restarts 1\n"));
  CHECK(contains(out, "host gone yes\n"));
}

} // namespace

TEST_SUITE("ipc.isolated") {

  TEST_CASE("an isolated actor survives its process dying of SIGSEGV") {
    check_survives("segv");
  }

  TEST_CASE("an isolated actor survives its process calling abort") {
    check_survives("abort");
  }

  TEST_CASE("an isolated actor survives an exception that ends it") {
    check_survives("throw");
  }

  TEST_CASE("an isolated actor survives its process being killed with SIGKILL") {
    check_survives("kill");
  }

  TEST_CASE("requests pending on a crashing isolated actor are each answered or fail with "
            "child_down") {
    auto out = run_mode("in-flight 40");
    INFO(out);
    CHECK(contains(out, "answered 20 child_down 20 other 0\n"));
    CHECK(contains(out, "then 5\n"));
  }

  TEST_CASE("a monitor of the stable handle sees the end only when the supervisor gives up") {
    auto out = run_mode("give-up");
    INFO(out);
    CHECK(contains(out, "down troupe.restart_intensity"));
  }

  TEST_CASE("spawn_isolated refuses an unregistered type, and arguments the type does not take") {
    auto unknown = run_mode("bad-type");
    INFO(unknown);
    CHECK(contains(unknown, "caf.unknown_type"));
    CHECK(contains(unknown, "'nosuch'"));
    auto bad_args = run_mode("bad-args");
    INFO(bad_args);
    CHECK(contains(bad_args, "troupe.start_failed"));
  }

  TEST_CASE("hosts are forked by a fork server as children of the process that asked, a dead "
            "server is replaced, and the server ends with its program") {
    auto out = run_mode("fork-server");
    INFO(out);
    CHECK(contains(out, "forked child yes\n"));
    CHECK(contains(out, "servers 1\n"));
    CHECK(contains(out, "server killed yes\n"));
    CHECK(contains(out, "forked again yes\n"));
    CHECK(contains(out, "answers 10 15\n"));
    CHECK(contains(out, "new server yes\n"));
    CHECK(contains(out, "large started anew yes\n"));
    CHECK(contains(out, "large holds 40000\n"));
    CHECK(contains(out, "key hidden yes\n"));
    auto at = out.find("server pid ");
    REQUIRE(at != std::string::npos);
    auto server = static_cast<pid_t>(std::stoi(out.substr(at + 11)));
    // The program ended without destructors: the server saw its socket
    // close. Gone, or a zombie its new parent has yet to reap.
    CHECK(
      eventually([server] { return process_state(server) == 0 || process_state(server) == 'Z'; }));
  }

  TEST_CASE("a process group given to an isolated actor is the same group in its host") {
    auto out = run_mode("isolated-group");
    INFO(out);
    CHECK(contains(out, "heard yes\n"));
  }

} // TEST_SUITE

TEST_SUITE("ipc.host_pool") {

  TEST_CASE("a host pool places actors round robin, and a host's crash moves only its actors") {
    auto out = run_mode("hosts round-robin");
    INFO(out);
    CHECK(contains(out, "hosts 2\n"));
    CHECK(contains(out, "alternate yes\n"));
    CHECK(contains(out, "in turn yes\n"));
    CHECK(contains(out, "answer after host crash yes\n"));
    CHECK(contains(out, "moved off the dead host yes\n"));
    CHECK(contains(out, "others kept their host yes\n"));
    CHECK(contains(out, "host restarted yes\n"));
    CHECK(contains(out, "hosts gone yes\n"));
  }

  TEST_CASE("a host pool places an actor on the host with the fewest live actors") {
    auto out = run_mode("hosts least-loaded");
    INFO(out);
    CHECK(contains(out, "hosts 2\n"));
    CHECK(contains(out, "spread yes\n"));
    CHECK(contains(out, "least loaded yes\n"));
    CHECK(contains(out, "balanced yes\n"));
    CHECK(contains(out, "answer after host crash yes\n"));
    CHECK(contains(out, "moved off the dead host yes\n"));
    CHECK(contains(out, "others kept their host yes\n"));
    CHECK(contains(out, "host restarted yes\n"));
    CHECK(contains(out, "hosts gone yes\n"));
  }

} // TEST_SUITE
