// CAF's remoting/distributed_calculator example (CAF 0.17, in Debian's
// libcaf-doc) on one host with troupe: a client actor sends tasks to a
// calculator in another process, keeps them while it has none, and goes on
// when a new one comes up.
//
// What changed from CAF's version:
// - The server is a process this program starts (`program::serve`, role
//   "calculator", which publishes its actor under that name), instead of a
//   second run with `--server-mode` that publishes it on a port.
// - The client connects by name (`lookup`, shared memory) instead of
//   `connect HOST PORT` over TCP; `connect` with no arguments looks again.
// - Losing the server is a `down_msg` with `errc::peer_lost` (the process
//   died), where CAF's sees the connection drop; the client's states
//   (unconnected, running) and its buffering of tasks are CAF's.
// - It prints with one write per line where CAF's uses `aout`, so that its
//   lines keep their order.
// - Input: CAF's REPL (`X + Y`, `X - Y`, `connect`, `quit`) plus `kill`
//   (SIGKILL the server) and `start` (a new server process); `--demo` plays
//   a script instead of reading stdin.
//
//   $ distributed_calculator --demo
//   *** successfully connected to server
//   1 + 2 = 3
//   *** lost connection to server
//   ...

#include <troupe/ipc/error.hpp>
#include <troupe/ipc/program.hpp>

#include <caf/all.hpp>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using connect_atom = caf::atom_constant<caf::atom("connect")>;
using done_atom = caf::atom_constant<caf::atom("done")>;
using lost_atom = caf::atom_constant<caf::atom("lost")>;
constexpr auto task_timeout = std::chrono::seconds(10);

/// One line on stdout now (CAF's `aout` prints later, from an actor of its
/// own: a result would come after the program's next line).
void say(const std::string& text) {
  auto line = text + "\n";
  std::cout.flush();
  [[maybe_unused]] auto n = ::write(STDOUT_FILENO, line.data(), line.size());
}

caf::behavior calculator_fun() {
  return {
    [](caf::add_atom, int32_t a, int32_t b) { return a + b; },
    [](caf::sub_atom, int32_t a, int32_t b) { return a - b; },
  };
}

namespace client {

struct task {
  caf::atom_value op;
  int32_t lhs;
  int32_t rhs;
};

struct state {
  caf::actor_addr current_server;
  std::vector<task> tasks;
  caf::actor reporter;                ///< told `done` per result, `lost` per lost server
  troupe::ipc::node* group = nullptr; ///< where "calculator" is looked up
};

using client_actor = caf::stateful_actor<state>;

caf::behavior unconnected(client_actor* self);
caf::behavior running(client_actor* self, const caf::actor& calculator);

/// Looks the calculator up by name (CAF's version connects to HOST:PORT);
/// an actor does not wait, so a server still starting is not found yet.
void connecting(client_actor* self) {
  auto found = self->state.group->lookup("calculator", caf::timespan{0});
  if (!found) {
    say("*** no server found: " + troupe::describe(found.error()));
    self->become(unconnected(self));
    return;
  }
  say("*** successfully connected to server");
  self->state.current_server = found->address();
  self->monitor(*found);
  self->become(running(self, *found));
}

caf::behavior init(client_actor* self, troupe::ipc::node* group, caf::actor reporter) {
  self->state.reporter = std::move(reporter);
  self->state.group = group;
  self->set_down_handler([=](const caf::down_msg& dm) {
    if (dm.source == self->state.current_server) {
      say("*** lost connection to server");
      self->send(self->state.reporter, lost_atom::value);
      self->state.current_server = nullptr;
      self->become(unconnected(self));
    }
  });
  return unconnected(self);
}

caf::behavior unconnected(client_actor* self) {
  return {
    [=](caf::add_atom op, int32_t x, int32_t y) {
      self->state.tasks.push_back(task{op, x, y});
    },
    [=](caf::sub_atom op, int32_t x, int32_t y) {
      self->state.tasks.push_back(task{op, x, y});
    },
    [=](connect_atom) { connecting(self); },
  };
}

caf::behavior running(client_actor* self, const caf::actor& calculator) {
  auto send_task = [=](caf::atom_value op, int32_t x, int32_t y) {
    self->request(calculator, task_timeout, op, x, y)
      .then(
        [=](int32_t result) {
          say(std::to_string(x) + (op == caf::add_atom::value ? " + " : " - ") + std::to_string(y)
              + " = " + std::to_string(result));
          self->send(self->state.reporter, done_atom::value);
        },
        // Lost with the server: sent again, kept until a new one is there.
        [=](const caf::error&) { self->send(self, op, x, y); });
  };
  for (auto& t : self->state.tasks)
    send_task(t.op, t.lhs, t.rhs);
  self->state.tasks.clear();
  return {
    [=](caf::add_atom op, int32_t x, int32_t y) { send_task(op, x, y); },
    [=](caf::sub_atom op, int32_t x, int32_t y) { send_task(op, x, y); },
    [=](connect_atom) { connecting(self); },
  };
}

} // namespace client

int repl(troupe::ipc::process_context& ctx) {
  // Starts a server process and waits until its calculator is published.
  auto start_server = [&ctx] {
    auto proc = ctx.check(ctx.spawn("calculator"), "start the server");
    ctx.check(ctx.group().lookup("calculator", std::chrono::seconds(10)), "find the server");
    return proc;
  };
  auto server = start_server();
  caf::scoped_actor self{ctx.system()};
  auto calc = ctx.system().spawn(client::init, &ctx.group(), caf::actor{self});
  self->send(calc, connect_atom::value);
  bool demo = !ctx.args().empty() && ctx.args()[0] == "--demo";
  std::istringstream script{"1 + 2\nkill\n10 - 4\n20 + 22\nstart\nconnect\n5 - 5\nquit\n"};
  auto& input = demo ? static_cast<std::istream&>(script) : std::cin;
  int pending = 0;
  for (std::string line; std::getline(input, line) && line != "quit";) {
    std::istringstream words{line};
    int32_t x = 0;
    int32_t y = 0;
    std::string op;
    if (line == "kill") {
      ::kill(server.pid(), SIGKILL);
      (void)server.wait(std::chrono::seconds(10));
      // The demo's next tasks wait in the client's queue, in order: without
      // this, one could still go to the dead server and be resent after.
      if (demo)
        self->receive([](lost_atom) {},
                      caf::after(task_timeout) >>
                        [] { throw std::runtime_error("the client did not see the server go"); });
    } else if (line == "start") {
      server = start_server();
    } else if (line == "connect") {
      self->send(calc, connect_atom::value);
    } else if (words >> x >> op >> y && (op == "+" || op == "-")) {
      auto what = op == "+" ? caf::atom_value{caf::add_atom::value} : caf::sub_atom::value;
      self->send(calc, what, x, y);
      ++pending;
    } else {
      std::cout << "usage: X + Y | X - Y | connect | kill | start | quit" << std::endl;
    }
    // In the demo, a task waits for its result while a server runs, so
    // the output keeps its order; without one it stays queued.
    if (demo && pending > 0 && line != "kill" && (line == "1 + 2" || line == "connect"))
      for (; pending > 0; --pending)
        self->receive([](done_atom) {},
                      caf::after(task_timeout) >>
                        [&] { throw std::runtime_error("no result within 10 s"); });
  }
  for (; pending > 0; --pending)
    self->receive(
      [](done_atom) {},
      caf::after(task_timeout) >>
        [&] { throw std::runtime_error(std::to_string(pending) + " tasks got no result"); });
  self->send_exit(calc, caf::exit_reason::user_shutdown);
  std::cout << "*** done" << std::endl;
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  return troupe::ipc::program{argc, argv}
    .serve("calculator", [](auto& ctx) { return ctx.system().spawn(calculator_fun); })
    .run(repl);
}
