#include "churn.hpp"

#include "troupe/ipc/configure.hpp"
#include "troupe/ipc/error.hpp"
#include "troupe/ipc/inspect.hpp"
#include "troupe/ipc/node.hpp"
#include "usage_log.hpp"

#include <caf/all.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>

namespace troupe_soak {

namespace {

namespace tipc = troupe::ipc;
using clock_type = std::chrono::steady_clock;

constexpr uint32_t slots = 64;

/// Waits for any child of this process to end, without reaping it (its
/// `child_process` does); the pid, or -1 when there is none.
pid_t next_exited_child() {
  siginfo_t info{};
  while (::waitid(P_ALL, 0, &info, WEXITED | WNOWAIT) != 0)
    if (errno != EINTR)
      return -1;
  return info.si_pid;
}

/// What a node that got no answer from the echo (in slot 0) sees of the two
/// rings between them and of both slots: where the request or its answer
/// stopped.
std::string where_it_stopped(tipc::node& group) {
  auto me = group.slot();
  auto stats = group.stats();
  std::ostringstream out;
  out << "pid " << ::getpid() << " in slot " << me << ", frames sent " << stats.frames_sent
      << ", received " << stats.frames_received << ", rejected " << stats.frames_rejected
      << ", late wake-ups " << stats.late_wakeups;
  auto info = tipc::inspect_group(group.group());
  if (!info)
    return out.str() + "; cannot inspect the group: " + troupe::describe(info.error());
  for (auto& r : info->rings)
    if ((r.writer == me && r.reader == 0) || (r.writer == 0 && r.reader == me))
      out << "; ring " << r.writer << "->" << r.reader << " holds " << r.used << " bytes";
  for (auto& s : info->slots)
    if (s.slot == me || s.slot == 0)
      out << "; slot " << s.slot << " " << s.state << " epoch " << s.epoch << " pid " << s.pid
          << " received " << s.frames_received << " rejected " << s.frames_rejected
          << (s.parked ? " parked" : " not parked");
  return out.str();
}

} // namespace

int run_churn_node() {
  caf::actor_system_config cfg;
  tipc::configure(cfg);
  caf::actor_system sys{cfg};
  tipc::group_options gopts;
  gopts.quiet = true;
  // Sixty nodes ask for slots that rest a second after each use: a joiner
  // may wait its turn for a few seconds (and would fail with group_full
  // after join_timeout).
  gopts.join_timeout = std::chrono::seconds(30);
  auto group = tipc::node::join_from_env(sys, gopts);
  if (!group) {
    std::cerr << "churn node: cannot join: " << troupe::describe(group.error()) << '\n';
    return 3;
  }
  auto echo = group->lookup("echo", std::chrono::seconds(10));
  if (!echo) {
    std::cerr << "churn node: no echo: " << troupe::describe(echo.error()) << '\n';
    return 3;
  }
  caf::scoped_actor self{sys};
  int status = 0;
  self->request(*echo, std::chrono::seconds(30), int32_t{::getpid()})
    .receive(
      [&](int32_t x) {
        if (x != ::getpid())
          status = 4; // another node's answer
      },
      [&](caf::error& err) {
        std::cerr << "churn node: no answer: " << troupe::describe(err) << " ("
                  << where_it_stopped(*group) << ")\n";
        status = 3;
      });
  group->leave();
  return status;
}

int run_churn(double seconds, int lanes) {
  caf::actor_system_config cfg;
  tipc::configure(cfg);
  caf::actor_system sys{cfg};
  auto group_name = "soak-" + std::to_string(::getpid()) + "-churn";
  tipc::group_options gopts;
  gopts.max_nodes = slots;
  gopts.quiet = true;
  auto fds_before = usage_of(::getpid()).fds;
  auto group = tipc::node::create(sys, group_name, gopts);
  if (!group) {
    std::cerr << "troupe-soak: cannot create the group: " << troupe::describe(group.error())
              << '\n';
    return 1;
  }
  std::cout << "troupe-soak: churn of " << lanes << " nodes in a group of " << slots
            << " slots for " << seconds << " s" << std::endl;
  auto echo = sys.spawn([]() -> caf::behavior { return {[](int32_t x) { return x; }}; });
  auto name = group->publish("echo", echo);
  std::vector<std::string> problems;
  auto problem = [&](std::string what) {
    if (problems.size() < 20)
      problems.push_back(std::move(what));
  };
  if (!name)
    problem("cannot publish the echo: " + troupe::describe(name.error()));
  std::map<pid_t, tipc::child_process> running;
  int64_t started = 0;
  int64_t passed = 0;
  auto spawn_one = [&] {
    auto p = group->spawn_self({"--role", "churn"});
    if (!p) {
      problem("cannot start a node: " + troupe::describe(p.error()));
      return;
    }
    ++started;
    auto pid = p->pid();
    running.emplace(pid, std::move(*p));
  };
  auto begin = clock_type::now();
  auto end =
    begin
    + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
  for (int i = 0; i < lanes; ++i)
    spawn_one();
  while (!running.empty()) {
    auto pid = next_exited_child();
    auto i = running.find(pid);
    if (pid < 0 || i == running.end()) {
      problem("a child ended that this run did not start (or none is left)");
      break;
    }
    auto st = i->second.wait(std::chrono::seconds(5));
    if (!st)
      problem("cannot reap node " + std::to_string(pid) + ": " + troupe::describe(st.error()));
    else if (!st->success())
      problem("node " + std::to_string(pid) + " " + tipc::to_string(*st));
    else
      ++passed;
    running.erase(i);
    if (clock_type::now() < end)
      spawn_one();
  }
  auto took = std::chrono::duration<double>(clock_type::now() - begin).count();
  // What the group held while it ran, then nothing once it ends.
  auto values = shm_leftovers(group_name).size();
  if (values != 1)
    problem(std::to_string(values - 1) + " files of the group besides its segment");
  caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
  if (name)
    name->stop();
  group->leave();
  group = troupe::make_error(troupe::errc::invalid_argument, "ended"); // the node's fds go with it
  if (auto left = shm_leftovers(group_name); !left.empty())
    problem("left in /dev/shm: " + left.front());
  auto fds_after = usage_of(::getpid()).fds;
  if (fds_after > fds_before)
    problem(std::to_string(fds_after - fds_before)
            + " more descriptors open than before the group");
  if (started <= slots)
    problem("only " + std::to_string(started) + " nodes joined: no slot was reused");
  std::cout << std::fixed << std::setprecision(1) << started << " nodes joined and left in " << took
            << " s (" << static_cast<double>(started) / took << " a second), " << passed
            << " exited with status 0; descriptors " << fds_before << " before, " << fds_after
            << " after" << std::endl;
  for (auto& p : problems)
    std::cout << "  problem: " << p << '\n';
  std::cout << "churn: " << (problems.empty() ? "PASS" : "FAIL") << std::endl;
  return problems.empty() ? 0 : 1;
}

} // namespace troupe_soak
