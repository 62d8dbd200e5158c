// A program built on troupe::ipc::program, for program_test.cpp. The parent's
// part depends on its first argument:
//
//   orphan FILE   start a child in role "echo" (a served actor), write
//                 "<group> <child pid>" to FILE once the child's actor is
//                 published, then wait to be killed
//   check         fail a `check` while an actor runs on (exit 1, the failure on
//                 stderr, no hang)
//   unknown       start a child in a role this program does not define, and
//                 print its exit status
//   args A B      start a child in role "show", which prints its role and
//                 arguments; print its exit status
//   stop-served   start a child in role "echo", stop its actor, and print
//                 the child's exit status

#include "troupe/ipc/error.hpp"
#include "troupe/ipc/program.hpp"

#include <caf/all.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

namespace {

using troupe::ipc::process_context;

constexpr auto patience = std::chrono::seconds(10);

caf::behavior echo(caf::event_based_actor*) {
  return {[](int32_t x) { return x; }};
}

int report(process_context& ctx, troupe::ipc::child_process& child) {
  auto status = ctx.check(child.wait(patience), "wait");
  std::cout << "child " << to_string(status) << std::endl;
  return 0;
}

int parent(process_context& ctx) {
  auto mode = ctx.args().empty() ? std::string{} : ctx.args()[0];
  if (mode == "orphan" && ctx.args().size() == 2) {
    auto child = ctx.check(ctx.spawn("echo"), "spawn");
    [[maybe_unused]] auto up = ctx.check(ctx.group().lookup("echo", patience), "lookup");
    auto tmp = ctx.args()[1] + ".tmp";
    std::ofstream{tmp} << ctx.group().group() << ' ' << child.pid() << '\n';
    std::rename(tmp.c_str(), ctx.args()[1].c_str());
    child.detach(); // what happens to it is the test's question
    for (;;)
      ::pause();
  }
  if (mode == "check") {
    // An actor that never ends must not hold up the failure's exit.
    // (Its behaviour holds the actor itself, so it is never unreachable:
    // the actor system's shutdown would wait for it.)
    ctx.system().spawn([](caf::event_based_actor* self) -> caf::behavior {
      auto me = caf::actor_cast<caf::actor>(self);
      return {[me](int32_t) {}};
    });
    ctx.check(troupe::make_error(troupe::errc::invalid_argument, "a bad value"), "checking");
  }
  if (mode == "unknown") {
    auto child = ctx.check(ctx.spawn("nosuch"), "spawn");
    return report(ctx, child);
  }
  if (mode == "args") {
    auto child = ctx.check(ctx.spawn("show", {ctx.args().begin() + 1, ctx.args().end()}), "spawn");
    return report(ctx, child);
  }
  if (mode == "stop-served") {
    auto child = ctx.check(ctx.spawn("echo"), "spawn");
    auto actor = ctx.check(ctx.group().lookup("echo", patience), "lookup");
    caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
    return report(ctx, child);
  }
  std::cerr << "usage: troupe-program-child orphan FILE | check | unknown | args A... | "
               "stop-served\n";
  return 2;
}

int show(process_context& ctx) {
  std::cout << "role " << ctx.role();
  for (auto& arg : ctx.args())
    std::cout << ' ' << arg;
  std::cout << std::endl;
  return 3;
}

} // namespace

int main(int argc, char** argv) {
  return troupe::ipc::program{argc, argv}
    .serve("echo", [](auto& ctx) { return ctx.system().spawn(echo); })
    .role("show", show)
    .run(parent);
}
