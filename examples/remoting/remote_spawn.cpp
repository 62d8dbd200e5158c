// CAF's remoting/remote_spawn example (CAF 0.17, in Debian's libcaf-doc) with
// troupe: a calculator of a type registered by name is spawned in another
// process, on this host in one call, and the same type over CAF's TCP
// middleman as it would be on another host.
//
// What changed from CAF's version:
// - The server is a process this program starts (`program`'s role "server")
//   instead of a second run of it with `--server-mode`.
// - On this host the calculator is made with `spawn_in<calculator>(pid,
//   "calculator")`: no port, no `connect`; messages go over shared memory.
// - The server also opens a port, as CAF's does, and the client spawns the
//   same registered type there with CAF's own `remote_spawn` (over loopback
//   here; another host's name works the same): a program that outgrows one
//   host changes how it connects, not what it spawns.
// - Input: lines `X + Y` or `X - Y` (CAF's REPL) go to both calculators;
//   `--demo` plays a short script instead of reading stdin.
// The calculator and its registration (`add_actor_type`) are CAF's.
//
//   $ remote_spawn --demo
//   *** calculator spawned in process 4712 (spawn_in, shared memory)
//   *** calculator spawned over TCP (remote_spawn, port 40123)
//   12 + 30 = 42 (shared memory), 42 (TCP)
//   ...

#include <troupe/ipc/program.hpp>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <iostream>
#include <sstream>
#include <string>

namespace {

using calculator =
  caf::typed_actor<caf::replies_to<caf::add_atom, int32_t, int32_t>::with<int32_t>,
                   caf::replies_to<caf::sub_atom, int32_t, int32_t>::with<int32_t>>;
using port_atom = caf::atom_constant<caf::atom("port")>;

calculator::behavior_type calculator_fun(calculator::pointer) {
  return {
    [](caf::add_atom, int32_t a, int32_t b) { return a + b; },
    [](caf::sub_atom, int32_t a, int32_t b) { return a - b; },
  };
}

/// The server's process: opens a middleman port and says which, until the
/// program ends it.
int server(troupe::ipc::process_context& ctx) {
  auto port = ctx.check(ctx.system().middleman().open(0, "127.0.0.1"), "open a port");
  auto teller = ctx.system().spawn([port](caf::event_based_actor*) -> caf::behavior {
    return {[port](port_atom) { return port; }};
  });
  auto published = ctx.check(ctx.group().publish("server", teller), "publish");
  caf::scoped_actor self{ctx.system()};
  self->monitor(teller);
  self->receive([](caf::down_msg&) {});
  return 0;
}

/// `X + Y` or `X - Y` on both calculators, or why not.
std::string evaluate(const std::string& line, const calculator& here, const calculator& tcp,
                     caf::scoped_actor& self) {
  std::istringstream words{line};
  int32_t x = 0;
  int32_t y = 0;
  std::string op;
  std::string rest;
  if (!(words >> x >> op >> y) || (words >> rest) || (op != "+" && op != "-"))
    return "usage: X + Y | X - Y | quit";
  auto ask = [&](const calculator& calc) {
    std::string res;
    auto on_result = [&](int32_t z) { res = std::to_string(z); };
    auto on_error = [&](caf::error& err) { res = self->system().render(err); };
    if (op == "+")
      self->request(calc, std::chrono::seconds(10), caf::add_atom::value, x, y)
        .receive(on_result, on_error);
    else
      self->request(calc, std::chrono::seconds(10), caf::sub_atom::value, x, y)
        .receive(on_result, on_error);
    return res;
  };
  return line + " = " + ask(here) + " (shared memory), " + ask(tcp) + " (TCP)";
}

int client(troupe::ipc::process_context& ctx) {
  auto& sys = ctx.system();
  auto server_process = ctx.check(ctx.spawn("server"), "start the server");
  // On this host: one call, by pid.
  auto here =
    ctx.check(ctx.group().spawn_in<calculator>(server_process.pid(), "calculator"), "spawn_in");
  std::cout << "*** calculator spawned in process " << server_process.pid()
            << " (spawn_in, shared memory)" << std::endl;
  // As on another host: CAF's middleman, the same registered type.
  auto teller =
    ctx.check(ctx.group().lookup("server", std::chrono::seconds(10)), "find the server");
  caf::scoped_actor self{sys};
  uint16_t port = 0;
  self->request(teller, std::chrono::seconds(10), port_atom::value)
    .receive([&](uint16_t p) { port = p; },
             [&](caf::error& err) { ctx.check(err, "ask for the port"); });
  auto node = ctx.check(sys.middleman().connect("127.0.0.1", port), "connect");
  auto tcp = ctx.check(sys.middleman().remote_spawn<calculator>(
                         node, "calculator", caf::make_message(), std::chrono::seconds(30)),
                       "remote_spawn");
  std::cout << "*** calculator spawned over TCP (remote_spawn, port " << port << ")" << std::endl;
  bool demo = !ctx.args().empty() && ctx.args()[0] == "--demo";
  std::istringstream script{"12 + 30\n100 - 58\n7 * 6\nquit\n"};
  auto& input = demo ? static_cast<std::istream&>(script) : std::cin;
  for (std::string line; std::getline(input, line) && line != "quit";)
    std::cout << evaluate(line, here, tcp, self) << std::endl;
  // Good citizens, as in CAF's: end what was spawned elsewhere.
  self->send_exit(here, caf::exit_reason::user_shutdown);
  self->send_exit(tcp, caf::exit_reason::user_shutdown);
  self->send_exit(teller, caf::exit_reason::user_shutdown);
  server_process.wait(std::chrono::seconds(10));
  std::cout << "*** done" << std::endl;
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  return troupe::ipc::program{argc, argv}
    .configure([](caf::actor_system_config& cfg) {
      cfg.add_actor_type("calculator", calculator_fun);
      cfg.add_message_type<calculator>("calculator");
    })
    .role("server", server)
    .run(client);
}
