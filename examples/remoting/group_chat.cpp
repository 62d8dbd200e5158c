// CAF's remoting/group_chat example (CAF 0.17, in Debian's libcaf-doc) on one
// host with troupe: every participant is a process, and the chat room is a
// process group that reaches them all.
//
// What changed from CAF's version:
// - The room is `sys.groups().get("troupe", "lobby")`, a process group (the
//   module troupe::ipc::configure adds), not a group of a server process that
//   publishes its local groups over TCP (`publish_local_groups`, `--server`,
//   `--port`): no server, no port.
// - Participants are processes this program starts (`program`'s role
//   "client", one per name on the command line) instead of programs started
//   by hand with `--name`; each publishes its client actor under its name.
// - Input: a line `NAME: TEXT` makes NAME say TEXT (CAF's `broadcast_atom`),
//   `/join NAME ROOM` moves NAME to another room, `/quit` ends the chat.
//   `--demo` plays a short script instead of reading stdin.
// - The program itself listens in the room, so what it prints is what the
//   room carried, in order; each participant prints what it hears, marked
//   with its name.
// The client's behaviour (broadcast, join, print, leave) is CAF's.
//
//   $ group_chat --demo alice bob
//   alice has entered the chatroom
//   bob has entered the chatroom
//   alice: hello, bob
//   [bob] alice: hello, bob
//   ...
//   *** chat over: 2 participants, 3 lines said

#include <troupe/ipc/program.hpp>

#include <caf/all.hpp>

#include <unistd.h>

#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

using broadcast_atom = caf::atom_constant<caf::atom("broadcast")>;

/// One line on stdout in one write: processes share the terminal.
void say(const std::string& text) {
  auto line = text + "\n";
  [[maybe_unused]] auto n = ::write(STDOUT_FILENO, line.data(), line.size());
}

caf::behavior client(caf::event_based_actor* self, const std::string& name) {
  return {
    [=](broadcast_atom, const std::string& message) {
      for (auto& dest : self->joined_groups())
        self->send(dest, name + ": " + message);
    },
    [=](caf::join_atom, const caf::group& what) {
      // A copy: `leave` erases from the set (CAF's version loops over the
      // set itself).
      auto joined = self->joined_groups();
      for (const auto& g : joined) {
        self->send(g, name + " has left the chatroom");
        self->leave(g);
      }
      self->join(what);
      self->send(what, name + " has entered the chatroom");
    },
    [=](const std::string& txt) {
      if (self->current_sender() != self->ctrl())
        say("[" + name + "] " + txt);
    },
  };
}

/// A participant's process: its client in room `args[1]`, published as
/// `args[0]`, until the client is told to leave.
int participant(troupe::ipc::process_context& ctx) {
  auto name = ctx.args().at(0);
  auto room = ctx.check(ctx.system().groups().get("troupe", ctx.args().at(1)), "room");
  auto me = ctx.system().spawn(client, name);
  caf::anon_send(me, caf::join_atom::value, room);
  auto published = ctx.check(ctx.group().publish(name, me), "publish");
  caf::scoped_actor self{ctx.system()};
  self->monitor(me);
  self->receive([](caf::down_msg&) {});
  return 0;
}

/// The room as the program hears it: waits for `line`, printing what came.
void await_line(caf::scoped_actor& listener, const std::string& line) {
  for (bool heard = false; !heard;)
    listener->receive(
      [&](const std::string& txt) {
        say(txt);
        heard = txt == line;
      },
      caf::after(std::chrono::seconds(10)) >>
        [&] { throw std::runtime_error("the room did not carry '" + line + "'"); });
}

int chat(troupe::ipc::process_context& ctx) {
  std::vector<std::string> names;
  bool demo = false;
  for (auto& arg : ctx.args()) {
    if (arg == "--demo")
      demo = true;
    else
      names.push_back(arg);
  }
  if (names.empty())
    names = {"alice", "bob"};
  auto lobby = ctx.check(ctx.system().groups().get("troupe", "lobby"), "room");
  caf::scoped_actor listener{ctx.system()};
  listener->join(lobby);
  std::map<std::string, caf::actor> clients;
  std::vector<troupe::ipc::child_process> processes;
  for (auto& name : names) {
    processes.push_back(ctx.check(ctx.spawn("client", {name, "lobby"}), "start " + name));
    clients[name] = ctx.check(ctx.group().lookup(name, std::chrono::seconds(10)), "find " + name);
    await_line(listener, name + " has entered the chatroom");
  }
  std::istringstream script{"alice: hello, bob\nbob: hi alice\n/join bob attic\n"
                            "alice: anyone there?\n/quit\n"};
  auto& input = demo ? static_cast<std::istream&>(script) : std::cin;
  int lines = 0;
  for (std::string line; std::getline(input, line) && line != "/quit";) {
    std::istringstream words{line};
    std::string first, second, third;
    words >> first >> second >> third;
    if (first == "/join" && clients.count(second) != 0 && !third.empty()) {
      auto room = ctx.check(ctx.system().groups().get("troupe", third), "room");
      caf::anon_send(clients[second], caf::join_atom::value, room);
      await_line(listener, second + " has left the chatroom");
    } else if (auto colon = line.find(": ");
               colon != std::string::npos && clients.count(line.substr(0, colon)) != 0) {
      caf::anon_send(clients[line.substr(0, colon)], broadcast_atom::value, line.substr(colon + 2));
      await_line(listener, line);
      ++lines;
    } else {
      say("*** say `NAME: TEXT`, `/join NAME ROOM` or `/quit`");
    }
  }
  for (auto& [name, client] : clients)
    caf::anon_send_exit(client, caf::exit_reason::user_shutdown);
  for (auto& p : processes)
    p.wait(std::chrono::seconds(10));
  say("*** chat over: " + std::to_string(names.size()) + " participants, " + std::to_string(lines)
      + " lines said");
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  return troupe::ipc::program{argc, argv}.role("client", participant).run(chat);
}
