#include "flood.hpp"

#include "troupe/ipc/configure.hpp"
#include "troupe/ipc/error.hpp"
#include "troupe/ipc/node.hpp"
#include "usage_log.hpp"

#include <caf/all.hpp>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <iomanip>
#include <iostream>

namespace troupe_soak {

namespace {

namespace tipc = troupe::ipc;
using clock_type = std::chrono::steady_clock;
using credit_atom = caf::atom_constant<caf::atom("credit")>;
using done_atom = caf::atom_constant<caf::atom("done")>;

/// Messages the sender may have sent ahead of the sink's last credit.
constexpr int64_t window = 1 << 16;
/// The sink grants credit every `batch` messages.
constexpr int64_t batch = 1 << 12;

/// A message's payload: 0 to 224 bytes, so that frames of every size wrap
/// the ring at every offset.
std::string payload(int64_t seq) {
  return std::string(static_cast<size_t>(seq % 8) * 32, static_cast<char>('a' + seq % 26));
}

struct sink_state {
  int64_t expected = 0; // the next sequence number
  int64_t out_of_order = 0;
  int64_t bad_payloads = 0;
  static inline const char* name = "flood.sink";
};

/// Counts the messages, checks their order and payload, grants credit, and
/// tells `done_to` once the last one came.
caf::behavior sink(caf::stateful_actor<sink_state>* self, int64_t messages, caf::actor done_to) {
  return {
    [=](int64_t seq, const std::string& text) {
      auto& st = self->state;
      if (seq != st.expected)
        ++st.out_of_order;
      if (text != payload(seq))
        ++st.bad_payloads;
      st.expected = seq + 1;
      if (st.expected % batch == 0 || st.expected == messages)
        self->send(caf::actor_cast<caf::actor>(self->current_sender()), credit_atom::value,
                   st.expected);
      if (st.expected == messages)
        self->send(done_to, done_atom::value, st.out_of_order, st.bad_payloads);
    },
  };
}

struct sender_state {
  int64_t sent = 0;
  int64_t credited = 0;
  static inline const char* name = "flood.sender";
};

/// Sends `messages` messages to `to`, at most `window` ahead of its credit;
/// quits once all are credited.
caf::behavior sender(caf::stateful_actor<sender_state>* self, caf::actor to, int64_t messages) {
  auto fill = [=] {
    auto& st = self->state;
    while (st.sent < messages && st.sent - st.credited < window) {
      self->send(to, st.sent, payload(st.sent));
      ++st.sent;
    }
  };
  self->set_down_handler([=](caf::down_msg& dm) { self->quit(dm.reason); });
  self->monitor(to);
  fill();
  return {
    [=](credit_atom, int64_t n) {
      self->state.credited = n;
      if (n == messages)
        self->quit();
      else
        fill();
    },
  };
}

} // namespace

int run_flood_sender(const flood_options& o) {
  caf::actor_system_config cfg;
  tipc::configure(cfg);
  caf::actor_system sys{cfg};
  tipc::group_options gopts;
  gopts.quiet = true;
  auto group = tipc::node::join_from_env(sys, gopts);
  if (!group) {
    std::cerr << "flood sender: cannot join: " << troupe::describe(group.error()) << '\n';
    return 3;
  }
  auto to = group->lookup("sink", std::chrono::seconds(10));
  if (!to) {
    std::cerr << "flood sender: no sink: " << troupe::describe(to.error()) << '\n';
    return 3;
  }
  auto s = sys.spawn(sender, *to, o.messages);
  caf::scoped_actor self{sys};
  self->wait_for(s);
  group->leave();
  return 0;
}

int run_flood(const flood_options& o) {
  caf::actor_system_config cfg;
  tipc::configure(cfg);
  caf::actor_system sys{cfg};
  auto group_name = "soak-" + std::to_string(::getpid()) + "-flood";
  tipc::group_options gopts;
  gopts.quiet = true;
  auto group = tipc::node::create(sys, group_name, gopts);
  if (!group) {
    std::cerr << "troupe-soak: cannot create the group: " << troupe::describe(group.error())
              << '\n';
    return 1;
  }
  std::cout << "troupe-soak: a flood of " << o.messages
            << " messages from a child to this process, a sample every " << o.sample_every << " s"
            << std::endl;
  caf::scoped_actor self{sys};
  auto sk = sys.spawn(sink, o.messages, caf::actor{self});
  auto name = group->publish("sink", sk);
  auto child = group->spawn_self({"--role", "flood", "--flood", std::to_string(o.messages)});
  if (!name || !child) {
    std::cerr << "troupe-soak: cannot start the flood: "
              << troupe::describe(name ? child.error() : name.error()) << '\n';
    self->send_exit(sk, caf::exit_reason::user_shutdown);
    return 1;
  }
  usage_log log{{{"receiver", ::getpid()}, {"sender", child->pid()}}, group_name};
  std::vector<std::string> problems;
  auto started = clock_type::now();
  auto every =
    std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(o.sample_every));
  auto next_sample = started;
  auto elapsed = [&] { return std::chrono::duration<double>(clock_type::now() - started).count(); };
  bool done = false;
  // A flood that has not ended by then is stuck: a problem, not a hang (the
  // slowest build, ASan's, moves some hundred thousand messages a second).
  auto deadline = started + std::chrono::seconds(60) + o.messages * std::chrono::microseconds(20);
  while (!done) {
    auto now = clock_type::now();
    if (now >= next_sample) {
      log.sample(elapsed());
      next_sample += every;
      continue;
    }
    self->receive(
      [&](done_atom, int64_t out_of_order, int64_t bad_payloads) {
        done = true;
        if (out_of_order > 0)
          problems.push_back(std::to_string(out_of_order) + " messages out of order");
        if (bad_payloads > 0)
          problems.push_back(std::to_string(bad_payloads) + " messages with a wrong payload");
      },
      caf::after(std::chrono::duration_cast<std::chrono::microseconds>(next_sample - now)) >>
        [&] {
          if (clock_type::now() >= deadline) {
            problems.push_back("the flood did not end in time");
            done = true;
          }
        });
  }
  auto took = elapsed();
  log.sample(took);
  auto status = child->wait(std::chrono::seconds(30));
  if (!status) {
    problems.push_back("the sender did not exit");
    child->kill(SIGKILL);
    (void)child->wait(std::chrono::seconds(30));
  } else if (!status->success()) {
    problems.push_back("the sender " + tipc::to_string(*status));
  }
  self->send_exit(sk, caf::exit_reason::user_shutdown);
  name->stop();
  group->leave();
  std::cout << std::fixed << std::setprecision(1) << o.messages << " messages in " << took << " s ("
            << std::setprecision(0) << static_cast<double>(o.messages) / took << " a second), "
            << log.rows() << " samples" << std::endl;
  for (auto& p : check_growth(log, took / 6, std::cout))
    problems.push_back(std::move(p));
  if (!log.write_csv(o.samples))
    problems.push_back("cannot write the samples to " + o.samples);
  if (auto left = shm_leftovers(group_name); !left.empty())
    problems.push_back("left in /dev/shm: " + left.front() + (left.size() > 1 ? " and more" : ""));
  for (auto& p : problems)
    std::cout << "  problem: " << p << '\n';
  std::cout << "flood: " << (problems.empty() ? "PASS" : "FAIL") << std::endl;
  return problems.empty() ? 0 : 1;
}

} // namespace troupe_soak
