#include "stall.hpp"

#include "troupe/ipc/configure.hpp"
#include "troupe/ipc/error.hpp"
#include "troupe/ipc/node.hpp"
#include "troupe/ipc/process.hpp"
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
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using tally_atom = caf::atom_constant<caf::atom("tally")>;
using bye_atom = caf::atom_constant<caf::atom("bye")>;
using drop_atom = caf::atom_constant<caf::atom("drop")>;
using press_atom = caf::atom_constant<caf::atom("press")>;

/// How long a sender waits for room in the full ring before `errc::full`.
constexpr auto full_timeout = std::chrono::seconds(1);
/// Requests the writer keeps outstanding while it is not pressing.
constexpr int64_t window = 32;

/// What the writer counted.
struct writer_counts {
  int64_t requests = 0;
  int64_t answered = 0;
  int64_t values = 0;
  int64_t full = 0;  // answered with errc::full
  int64_t other = 0; // any other error (a problem)
  int64_t async_sent = 0;
  int64_t async_full = 0; // asynchronous sends that came back as errc::full
  int64_t longest_ms = 0; // the longest wait for an answer
  std::string first_other;
};

struct writer_state {
  writer_counts n;
  // Who waits for how many answers with a value (see `tally_atom`).
  std::vector<std::pair<int64_t, caf::response_promise>> waiters;
  bool ticking = false; // a tick is in the mailbox
  // Sending regardless of the window. While the reader is stopped, the
  // requests outstanding may all sit in its mailbox rather than in the ring;
  // a writer held to its window would then never find the ring full.
  bool pressing = false;
  static inline const char* name = "stall.writer";
};

caf::message counts_message(const writer_counts& n) {
  return caf::make_message(n.requests, n.answered, n.values, n.full, n.other, n.async_sent,
                           n.async_full, n.longest_ms, n.first_other);
}

/// Answers those who wait for fewer answers than there are now.
void answer_waiters(caf::stateful_actor<writer_state>* self) {
  auto& st = self->state;
  for (auto i = st.waiters.begin(); i != st.waiters.end();)
    if (st.n.values >= i->first) {
      i->second.deliver(counts_message(st.n));
      i = st.waiters.erase(i);
    } else {
      ++i;
    }
}

/// Keeps `window` requests of 4 KiB outstanding to `to`, and sends it an
/// asynchronous message of 4 KiB every 16 requests; `(press, true)` makes it
/// send without that limit until `(press, false)`; `(tally, n)` is answered
/// with its counts once `n` requests had a value.
caf::behavior writer(caf::stateful_actor<writer_state>* self, caf::actor to) {
  // An asynchronous send that failed comes back as an error message.
  self->set_error_handler([self](caf::error& err) {
    auto& n = self->state.n;
    if (troupe::is(err, troupe::errc::full))
      ++n.async_full;
    else if (n.other++ == 0)
      n.first_other = "an asynchronous send: " + troupe::describe(err);
  });
  // One send per tick, so that a send that waits for room (up to the
  // full_timeout) holds up nothing else: the next tick queues behind the
  // other messages. A tick that finds the window full waits for an answer.
  auto next_tick = [self] {
    auto& st = self->state;
    if (!st.ticking && (st.pressing || st.n.requests - st.n.answered < window)) {
      st.ticking = true;
      self->send(self, tick_atom::value);
    }
  };
  self->state.ticking = true;
  self->send(self, tick_atom::value);
  return {
    [=](tick_atom) {
      auto& n = self->state.n;
      self->state.ticking = false;
      if (n.requests % 16 == 0) {
        self->send(to, drop_atom::value, std::string(4096, 'a'));
        ++n.async_sent;
      }
      ++n.requests;
      auto sent = clock_type::now();
      auto note = [=] {
        auto& n = self->state.n;
        ++n.answered;
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - sent);
        n.longest_ms = std::max<int64_t>(n.longest_ms, ms.count());
        next_tick();
      };
      self->request(to, caf::infinite, std::string(4096, 'r'))
        .then(
          [=](const std::string&) {
            ++self->state.n.values;
            note();
            answer_waiters(self);
          },
          [=](caf::error& err) {
            auto& n = self->state.n;
            if (troupe::is(err, troupe::errc::full))
              ++n.full;
            else if (n.other++ == 0)
              n.first_other = "a request: " + troupe::describe(err);
            note();
          });
      next_tick();
    },
    [=](press_atom, bool on) {
      self->state.pressing = on;
      next_tick();
    },
    [=](tally_atom, int64_t values) {
      auto rp = self->make_response_promise();
      self->state.waiters.emplace_back(values, rp);
      answer_waiters(self);
      return rp;
    },
  };
}

/// The writer's counts once `at_least` requests had a value, or with a problem
/// when that takes longer than `patience`.
writer_counts counts_of(caf::scoped_actor& self, const caf::actor& w, int64_t at_least,
                        caf::timespan patience) {
  writer_counts c;
  self->request(w, patience, tally_atom::value, at_least)
    .receive(
      [&](int64_t requests, int64_t answered, int64_t values, int64_t full, int64_t other,
          int64_t async_sent, int64_t async_full, int64_t longest_ms, std::string& first_other) {
        c = writer_counts{requests,   answered,   values,
                          full,       other,      async_sent,
                          async_full, longest_ms, std::move(first_other)};
      },
      [&](caf::error& err) {
        c.other = 1;
        c.first_other = "no counts from the writer: " + troupe::describe(err);
      });
  return c;
}

} // namespace

int run_stall_node() {
  caf::actor_system_config cfg;
  tipc::configure(cfg);
  caf::actor_system sys{cfg};
  tipc::group_options gopts;
  gopts.quiet = true;
  auto group = tipc::node::join_from_env(sys, gopts);
  if (!group) {
    std::cerr << "stall node: cannot join: " << troupe::describe(group.error()) << '\n';
    return 3;
  }
  caf::scoped_actor self{sys};
  auto echo = sys.spawn([](caf::event_based_actor* echo_self) -> caf::behavior {
    return {
      [](const std::string& x) { return x; },
      [](drop_atom, const std::string&) {}, // the asynchronous ones: no answer
      [echo_self](bye_atom) { echo_self->quit(); },
    };
  });
  auto name = group->publish("echo", echo);
  if (!name) {
    std::cerr << "stall node: cannot publish: " << troupe::describe(name.error()) << '\n';
    return 3;
  }
  self->wait_for(echo); // until the writer's process says bye
  name->stop();
  group->leave();
  return 0;
}

int run_stall(double seconds, double sample_every, const std::string& samples) {
  caf::actor_system_config cfg;
  tipc::configure(cfg);
  caf::actor_system sys{cfg};
  auto group_name = "soak-" + std::to_string(::getpid()) + "-stall";
  tipc::group_options gopts;
  gopts.quiet = true;
  gopts.ring_bytes = uint64_t{64} << 10; // full after a few requests
  gopts.full_timeout = full_timeout;
  auto group = tipc::node::create(sys, group_name, gopts);
  if (!group) {
    std::cerr << "troupe-soak: cannot create the group: " << troupe::describe(group.error())
              << '\n';
    return 1;
  }
  std::cout << "troupe-soak: a reader stopped for " << seconds << " s, full_timeout "
            << full_timeout.count() << " s, a sample every " << sample_every << " s" << std::endl;
  std::vector<std::string> problems;
  auto child = group->spawn_self({"--role", "stall"});
  auto to = child ? group->lookup("echo", std::chrono::seconds(30)) : child.error();
  if (!child || !to) {
    std::cerr << "troupe-soak: cannot start the reader: "
              << troupe::describe(child ? to.error() : child.error()) << '\n';
    return 1;
  }
  caf::scoped_actor self{sys};
  auto w = sys.spawn(writer, *to);
  // Traffic flows first; then the reader stops while the writer goes on.
  auto ran = counts_of(self, w, 1000, std::chrono::seconds(60));
  if (ran.values < 1000)
    problems.push_back("fewer than 1000 answers before the reader stopped");
  child->kill(SIGSTOP);
  self->send(w, press_atom::value, true);
  auto stopped_at = clock_type::now();
  usage_log log{{{"writer", ::getpid()}}, group_name};
  auto every =
    std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(sample_every));
  auto end =
    stopped_at
    + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
  for (auto next = stopped_at; next < end; next += every) {
    // Samples at their times: a receive that times out, not a sleep.
    self->receive(caf::after(std::chrono::duration_cast<std::chrono::microseconds>(
                    next - std::min(next, clock_type::now())))
                  >> [] {});
    log.sample(std::chrono::duration<double>(clock_type::now() - stopped_at).count());
  }
  auto stalled = counts_of(self, w, 0, std::chrono::seconds(30));
  child->kill(SIGCONT);
  self->send(w, press_atom::value, false);
  auto resumed = counts_of(self, w, stalled.values + 1000, std::chrono::seconds(60));
  self->send_exit(w, caf::exit_reason::user_shutdown);
  if (stalled.full == ran.full)
    problems.push_back("no request failed with errc::full while the reader was stopped");
  if (resumed.values < stalled.values + 1000)
    problems.push_back("requests did not succeed again once the reader ran");
  // Every request made while the reader was stopped has its answer.
  if (resumed.answered < stalled.requests)
    problems.push_back(std::to_string(stalled.requests - resumed.answered)
                       + " requests made while the reader was stopped never answered");
  if (resumed.other > 0)
    problems.push_back(std::to_string(resumed.other)
                       + " errors other than errc::full, the first: " + resumed.first_other);
  std::cout << std::fixed << std::setprecision(1) << "while stopped: " << stalled.full - ran.full
            << " requests failed with errc::full, " << stalled.async_full - ran.async_full << " of "
            << stalled.async_sent - ran.async_sent
            << " asynchronous sends came back as errc::full; longest wait for an answer "
            << resumed.longest_ms << " ms; after: " << resumed.values - stalled.values << " answers"
            << std::endl;
  for (auto& p : check_growth(log, seconds / 6, std::cout))
    problems.push_back(std::move(p));
  if (!log.write_csv(samples))
    problems.push_back("cannot write the samples to " + samples);
  self->send(*to, bye_atom::value);
  auto status = child->wait(std::chrono::seconds(30));
  if (!status)
    problems.push_back("the reader did not end within 30 s when told to: "
                       + process_condition(child->pid()));
  else if (!status->success())
    problems.push_back("the reader ended with " + troupe::ipc::to_string(*status)
                       + " when told to");
  group->leave();
  if (auto left = shm_leftovers(group_name); !left.empty())
    problems.push_back("left in /dev/shm: " + left.front());
  for (auto& p : problems)
    std::cout << "  problem: " << p << '\n';
  std::cout << "stall: " << (problems.empty() ? "PASS" : "FAIL") << std::endl;
  return problems.empty() ? 0 : 1;
}

} // namespace troupe_soak
