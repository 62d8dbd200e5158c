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
//   isolated KIND spawn a "fragile" actor isolated, crash its process by
//                 KIND (segv, abort, throw or kill), and print what the
//                 stable handle answers before and after, and the restarts
//   in-flight N   crash an isolated actor while N requests are pending on
//                 it; print how many were answered and how many failed with
//                 child_down, then whether it answers again
//   give-up       an isolated actor whose supervisor allows no restart:
//                 print the stable handle's down reason after a crash
//   bad-type      spawn_isolated an unregistered type and print the error
//   bad-args      spawn_isolated with arguments the type does not take
//   hosts HOW     actors placed on a host_pool of two processes (HOW:
//                 round-robin or least-loaded); one host killed with SIGKILL
//   fork-server   isolated actors' hosts forked by the fork server: whether
//                 they are this process's children, after the server was
//                 killed too; an actor whose arguments are too large for a
//                 request, started anew; the server's pid; then ends
//                 without destructors
//   isolated-group an isolated actor given a process group as an argument:
//                 whether it hears what is sent to the group here

#include "troupe/ipc/error.hpp"
#include "troupe/ipc/host_pool.hpp"
#include "troupe/ipc/isolated.hpp"
#include "troupe/ipc/program.hpp"

#include <caf/all.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using troupe::ipc::process_context;

constexpr auto patience = std::chrono::seconds(10);

caf::behavior echo(caf::event_based_actor*) {
  return {[](int32_t x) { return x; }};
}

using crash_atom = caf::atom_constant<caf::atom("crash")>;
using pid_atom = caf::atom_constant<caf::atom("pid")>;
using hold_atom = caf::atom_constant<caf::atom("hold")>;

/// Multiplies by `factor`; crashes its process the way it is told to.
caf::behavior fragile(caf::event_based_actor* self, int32_t factor) {
  return {
    [factor](int32_t x) { return x * factor; },
    [](pid_atom) { return static_cast<int32_t>(::getpid()); },
    // A request it answers only when its process is gone (never).
    [self](hold_atom) { return self->make_response_promise<int32_t>(); },
    [](crash_atom, const std::string& how) {
      if (how == "segv") {
        volatile int* nowhere = nullptr;
        *nowhere = 1;
      } else if (how == "abort") {
        std::abort();
      } else if (how == "throw") {
        throw std::runtime_error("fragile gave up");
      }
    },
  };
}

using heard_atom = caf::atom_constant<caf::atom("heard")>;

/// Joins `grp`; says the last number it heard there (0 for none yet).
caf::behavior listener(caf::stateful_actor<int32_t>* self, caf::group grp) {
  self->join(grp);
  return {
    [self](int32_t x) { self->state = x; },
    [self](heard_atom) { return self->state; },
  };
}

/// Holds `text`; says its size and its process.
caf::behavior holder(caf::event_based_actor*, std::string text) {
  return {
    [text](int32_t) { return static_cast<int32_t>(text.size()); },
    [](pid_atom) { return static_cast<int32_t>(::getpid()); },
  };
}

void configure(caf::actor_system_config& cfg) {
  cfg.add_actor_type("fragile", fragile);
  cfg.add_actor_type("holder", holder);
  cfg.add_actor_type("listener", listener);
}

int32_t ask_int(process_context& ctx, const caf::actor& dest, caf::message msg) {
  caf::scoped_actor self{ctx.system()};
  int32_t res = -1;
  self->request(dest, patience, std::move(msg))
    .receive([&](int32_t x) { res = x; }, [&](caf::error& err) { ctx.fail("request", err); });
  return res;
}

int isolated(process_context& ctx, const std::string& how) {
  std::atomic<int> restarts{0};
  std::promise<void> restarted;
  troupe::ipc::isolation_options opts;
  opts.flags.on_event = [&](const troupe::supervisor_event& ev) {
    if (ev.what == troupe::supervisor_event::kind::restarted && ++restarts == 1)
      restarted.set_value();
  };
  auto sut = ctx.check(troupe::ipc::spawn_isolated(ctx.group(), opts, "fragile", int32_t{2}),
                       "spawn_isolated");
  auto& handle = sut.actor();
  std::cout << "before " << ask_int(ctx, handle, caf::make_message(int32_t{2})) << std::endl;
  auto first = ask_int(ctx, handle, caf::make_message(pid_atom::value));
  if (how == "kill")
    ::kill(first, SIGKILL);
  else
    caf::anon_send(handle, crash_atom::value, how);
  // A request that reached the crashed incarnation fails with child_down;
  // once the supervisor restarted it, the same handle reaches the new one.
  if (restarted.get_future().wait_for(patience) != std::future_status::ready)
    ctx.fail("waiting for the restart", troupe::errc::timeout);
  std::cout << "after " << ask_int(ctx, handle, caf::make_message(int32_t{3})) << std::endl;
  auto second = ask_int(ctx, handle, caf::make_message(pid_atom::value));
  std::cout << "new process " << (second != first && second > 0 ? "yes" : "no") << std::endl;
  std::cout << "restarts " << restarts.load() << std::endl;
  ctx.check(sut.stop(patience), "stop");
  std::cout << "host gone " << (::kill(second, 0) != 0 ? "yes" : "no") << std::endl;
  return 0;
}

int in_flight(process_context& ctx, int count) {
  auto sut =
    ctx.check(troupe::ipc::spawn_isolated(ctx.group(), "fragile", int32_t{1}), "spawn_isolated");
  auto& handle = sut.actor();
  caf::scoped_actor self{ctx.system()};
  ask_int(ctx, handle, caf::make_message(int32_t{0})); // the host is up
  // Half answered before the crash, half held until it: none may be lost.
  using pending_request = decltype(self->request(handle, patience, int32_t{0}));
  std::vector<pending_request> pending;
  for (int i = 0; i < count; ++i) {
    if (i % 2 == 0)
      pending.push_back(self->request(handle, patience, int32_t{i}));
    else
      pending.push_back(self->request(handle, patience, hold_atom::value));
  }
  caf::anon_send(handle, crash_atom::value, std::string{"segv"});
  int answered = 0;
  int child_down = 0;
  int other = 0;
  for (auto& request : pending)
    request.receive([&](int32_t) { ++answered; },
                    [&](caf::error& err) {
                      if (troupe::is(err, troupe::errc::child_down))
                        ++child_down;
                      else
                        ++other;
                    });
  std::cout << "answered " << answered << " child_down " << child_down << " other " << other
            << std::endl;
  std::cout << "then " << ask_int(ctx, handle, caf::make_message(int32_t{5})) << std::endl;
  ctx.check(sut.stop(patience), "stop");
  return 0;
}

int give_up(process_context& ctx) {
  troupe::ipc::isolation_options opts;
  opts.flags.max_restarts = 0;
  auto sut = ctx.check(troupe::ipc::spawn_isolated(ctx.group(), opts, "fragile", int32_t{1}),
                       "spawn_isolated");
  caf::scoped_actor self{ctx.system()};
  self->monitor(sut.actor());
  caf::anon_send(sut.actor(), crash_atom::value, std::string{"abort"});
  self->receive(
    [&](caf::down_msg& msg) { std::cout << "down " << troupe::describe(msg.reason) << std::endl; },
    caf::after(patience) >> [&] { ctx.fail("waiting for the down", troupe::errc::timeout); });
  return 0;
}

/// What `dest` answers to `msg`, asked until it answers (a request that
/// met a crashed incarnation fails with child_down; the next one reaches
/// the restarted one).
int32_t ask_until_answered(process_context& ctx, const caf::actor& dest, caf::message msg) {
  caf::scoped_actor self{ctx.system()};
  auto until = std::chrono::steady_clock::now() + patience;
  for (;;) {
    int32_t res = -1;
    caf::error failure;
    self->request(dest, patience, msg)
      .receive([&](int32_t x) { res = x; }, [&](caf::error& err) { failure = std::move(err); });
    if (!failure)
      return res;
    if (!troupe::is(failure, troupe::errc::child_down) || std::chrono::steady_clock::now() > until)
      ctx.fail("request", failure);
  }
}

/// Whether process `pid` has ended (reaped or not) or ends within
/// `patience`: its pidfd turns readable when it exits.
bool ends_in_time(pid_t pid) {
  auto fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0)
    return errno == ESRCH;
  pollfd exited{fd, POLLIN, 0};
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(patience).count();
  auto res = ::poll(&exited, 1, static_cast<int>(ms)) == 1;
  ::close(fd);
  return res;
}

const char* yes_no(bool x) {
  return x ? "yes" : "no";
}

/// Actors placed on a pool of two host processes by `how` (round-robin or
/// least-loaded); one host killed with SIGKILL.
int hosts(process_context& ctx, const std::string& how) {
  troupe::ipc::host_pool_options opts;
  opts.place = how == "least-loaded" ? troupe::ipc::placement::least_loaded
                                     : troupe::ipc::placement::round_robin;
  auto pool = ctx.check(troupe::ipc::host_pool::make(ctx.group(), opts), "host_pool");
  auto pool_pids = pool.pids();
  std::cout << "hosts " << pool_pids.size() << std::endl;
  std::vector<troupe::ipc::isolated_actor> actors;
  std::vector<int32_t> on;
  auto place = [&] {
    actors.push_back(ctx.check(pool.spawn("fragile", int32_t{2}), "spawn"));
    on.push_back(ask_int(ctx, actors.back().actor(), caf::make_message(pid_atom::value)));
  };
  auto on_pool = [&](int32_t pid) {
    return std::find(pool_pids.begin(), pool_pids.end(), pid) != pool_pids.end();
  };
  if (how == "least-loaded") {
    place();
    place();
    std::cout << "spread " << yes_no(on[0] != on[1]) << std::endl;
    // The second one's host has nothing left: the next goes there (where
    // round robin would take the first's).
    ctx.check(actors[1].stop(patience), "stop");
    place();
    std::cout << "least loaded " << yes_no(on[2] == on[1]) << std::endl;
    // One each now: the next two go one to each.
    place();
    place();
    std::cout << "balanced " << yes_no(on[3] != on[4]) << std::endl;
  } else {
    for (int i = 0; i < 4; ++i)
      place();
    std::cout << "alternate "
              << yes_no(on[0] != on[1] && on[0] == on[2] && on[1] == on[3] && on_pool(on[0])
                        && on_pool(on[1]))
              << std::endl;
    // In turn, whatever the load: the second's host has one actor fewer
    // now, and the fifth still goes to the first's.
    ctx.check(actors[1].stop(patience), "stop");
    place();
    std::cout << "in turn " << yes_no(on[4] == on[0]) << std::endl;
  }
  // A host dies: the actors on it come back on a live host; the others
  // keep their process.
  auto victim = on.back();
  ::kill(victim, SIGKILL);
  bool answer = true;
  bool moved = true;
  bool kept = true;
  for (size_t i = 0; i < actors.size(); ++i) {
    if (i == 1)
      continue; // stopped above
    answer &= ask_until_answered(ctx, actors[i].actor(), caf::make_message(int32_t{21})) == 42;
    auto now = ask_until_answered(ctx, actors[i].actor(), caf::make_message(pid_atom::value));
    if (on[i] == victim)
      moved &= now != victim;
    else
      kept &= now == on[i];
  }
  std::cout << "answer after host crash " << yes_no(answer) << std::endl;
  std::cout << "moved off the dead host " << yes_no(moved) << std::endl;
  std::cout << "others kept their host " << yes_no(kept) << std::endl;
  for (auto& a : actors)
    (void)a.stop(patience);
  // The pool restarts the dead host (its actors did not wait for it).
  auto until = std::chrono::steady_clock::now() + patience;
  auto last_pids = pool.pids();
  while (last_pids.size() < 2 && std::chrono::steady_clock::now() < until) {
    std::this_thread::yield();
    last_pids = pool.pids();
  }
  auto victim_back = std::find(last_pids.begin(), last_pids.end(), victim) != last_pids.end();
  std::cout << "host restarted " << yes_no(last_pids.size() == 2 && !victim_back) << std::endl;
  ctx.check(pool.stop(patience), "stop the pool");
  // Stopped in order; the last one's reaping may come a moment after.
  bool gone = true;
  for (auto pid : last_pids)
    gone &= ends_in_time(pid);
  std::cout << "hosts gone " << yes_no(gone) << std::endl;
  return 0;
}

/// The fields of /proc/PID/stat after the command name (state, ppid...),
/// and the command name; empty for a process that is gone.
std::pair<std::string, std::vector<std::string>> stat_of(pid_t pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/stat"};
  std::string line;
  std::getline(in, line);
  auto open = line.find('(');
  auto close = line.rfind(')');
  if (open == std::string::npos || close == std::string::npos)
    return {};
  std::istringstream rest{line.substr(close + 1)};
  std::vector<std::string> fields;
  for (std::string field; rest >> field;)
    fields.push_back(field);
  return {line.substr(open + 1, close - open - 1), fields};
}

pid_t parent_of(pid_t pid) {
  auto fields = stat_of(pid).second;
  return fields.size() > 1 ? std::stoi(fields[1]) : 0;
}

/// How many arguments (argv[0] included) process `pid` was started with.
size_t argument_count(pid_t pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/cmdline"};
  size_t count = 0;
  for (std::string arg; std::getline(in, arg, '\0');)
    ++count;
  return count;
}

/// This process's children named `name`.
std::vector<pid_t> children_named(const std::string& name) {
  std::vector<pid_t> res;
  for (auto& entry : std::filesystem::directory_iterator{"/proc"}) {
    auto file = entry.path().filename().string();
    if (file.find_first_not_of("0123456789") != std::string::npos)
      continue;
    auto pid = static_cast<pid_t>(std::stoi(file));
    auto [comm, fields] = stat_of(pid);
    if (comm == name && fields.size() > 1 && std::stoi(fields[1]) == ::getpid())
      res.push_back(pid);
  }
  return res;
}

int fork_server(process_context& ctx) {
  // A host forked by the server has the server's command line (no
  // arguments); one started anew has its type and arguments.
  auto forked_child = [&](pid_t pid) {
    return argument_count(pid) == 1 && parent_of(pid) == ::getpid()
           && stat_of(pid).first == stat_of(::getpid()).first;
  };
  auto first = ctx.check(troupe::ipc::spawn_isolated(ctx.group(), "fragile", int32_t{2}), "spawn");
  auto first_pid = ask_int(ctx, first.actor(), caf::make_message(pid_atom::value));
  std::cout << "forked child " << yes_no(forked_child(first_pid)) << std::endl;
  auto servers = children_named("troupe.forks");
  std::cout << "servers " << servers.size() << std::endl;
  if (servers.size() != 1)
    return 1;
  // A server that died is replaced by the next start.
  ::kill(servers[0], SIGKILL);
  std::cout << "server killed " << yes_no(ends_in_time(servers[0])) << std::endl;
  auto second = ctx.check(troupe::ipc::spawn_isolated(ctx.group(), "fragile", int32_t{3}), "spawn");
  auto second_pid = ask_int(ctx, second.actor(), caf::make_message(pid_atom::value));
  std::cout << "forked again " << yes_no(forked_child(second_pid)) << std::endl;
  std::cout << "answers " << ask_int(ctx, first.actor(), caf::make_message(int32_t{5})) << ' '
            << ask_int(ctx, second.actor(), caf::make_message(int32_t{5})) << std::endl;
  auto replaced = children_named("troupe.forks");
  std::cout << "new server " << yes_no(replaced.size() == 1 && replaced[0] != servers[0])
            << std::endl;
  // Arguments too large for a request (80 kB in hex), yet within exec's
  // limit for one argument (128 KiB): started anew, and the same.
  auto large = ctx.check(
    troupe::ipc::spawn_isolated(ctx.group(), "holder", std::string(40'000, 'x')), "spawn");
  auto large_pid = ask_int(ctx, large.actor(), caf::make_message(pid_atom::value));
  std::cout << "large started anew "
            << yes_no(argument_count(large_pid) == 3 && parent_of(large_pid) == ::getpid())
            << std::endl;
  std::cout << "large holds " << ask_int(ctx, large.actor(), caf::make_message(int32_t{0}))
            << std::endl;
  // Forked or started anew, a host got the key without it showing in its
  // first environment or its command line (/proc/PID/environ, cmdline).
  auto shows_key = [key = ctx.group().key()](pid_t pid) {
    for (auto file : {"/environ", "/cmdline"}) {
      std::ifstream in{"/proc/" + std::to_string(pid) + file, std::ios::binary};
      std::string text{std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
      if (text.find(key) != std::string::npos)
        return true;
    }
    return false;
  };
  std::cout << "key hidden " << yes_no(!shows_key(first_pid) && !shows_key(large_pid)) << std::endl;
  for (auto* sut : {&first, &second, &large})
    ctx.check(sut->stop(patience), "stop");
  if (!replaced.empty())
    std::cout << "server pid " << replaced[0] << std::endl;
  // Ends without destructors (as a crash would), so that nothing here
  // stops the server: it must end by itself when its asker is gone.
  ctx.group().leave();
  std::cout.flush();
  std::_Exit(0);
}

/// Asks `dest` for what it last heard until that is `want`, or the patience
/// runs out.
bool hears(process_context& ctx, const caf::actor& dest, int32_t want) {
  auto until = std::chrono::steady_clock::now() + patience;
  while (std::chrono::steady_clock::now() < until)
    if (ask_int(ctx, dest, caf::make_message(heard_atom::value)) == want)
      return true;
  return false;
}

/// A process group handed to an isolated actor as an argument: read in its
/// host, a process of the same troupe group, it is the same group.
int isolated_group(process_context& ctx) {
  auto grp = ctx.check(ctx.system().groups().get("troupe", "board"), "group");
  auto sut = ctx.check(troupe::ipc::spawn_isolated(ctx.group(), "listener", grp), "spawn");
  ask_int(ctx, sut.actor(), caf::make_message(heard_atom::value)); // up and joined
  caf::scoped_actor self{ctx.system()};
  auto until = std::chrono::steady_clock::now() + patience;
  bool heard = false;
  while (!heard && std::chrono::steady_clock::now() < until) {
    self->send(grp, int32_t{7});
    heard = hears(ctx, sut.actor(), 7);
  }
  std::cout << "heard " << yes_no(heard) << std::endl;
  ctx.check(sut.stop(patience), "stop");
  return 0;
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
  if (mode == "isolated" && ctx.args().size() == 2)
    return isolated(ctx, ctx.args()[1]);
  if (mode == "in-flight" && ctx.args().size() == 2)
    return in_flight(ctx, std::stoi(ctx.args()[1]));
  if (mode == "give-up")
    return give_up(ctx);
  if (mode == "hosts" && ctx.args().size() == 2)
    return hosts(ctx, ctx.args()[1]);
  if (mode == "fork-server")
    return fork_server(ctx);
  if (mode == "isolated-group")
    return isolated_group(ctx);
  if (mode == "bad-type" || mode == "bad-args") {
    auto sut = mode == "bad-type"
                 ? troupe::ipc::spawn_isolated(ctx.group(), "nosuch", int32_t{1})
                 : troupe::ipc::spawn_isolated(ctx.group(), "fragile", std::string{"x"});
    std::cout << (sut ? std::string{"made"} : troupe::describe(sut.error())) << std::endl;
    return 0;
  }
  std::cerr
    << "usage: troupe-program-child orphan FILE | check | unknown | args A... | "
       "stop-served | isolated KIND | in-flight N | give-up | bad-type | bad-args | hosts HOW | "
       "fork-server | isolated-group\n";
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
    .configure(configure)
    .serve("echo", [](auto& ctx) { return ctx.system().spawn(echo); })
    .role("show", show)
    .run(parent);
}
