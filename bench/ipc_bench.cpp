// troupe-bench ipc: troupe's cross-process figures next to the anchors of
// ipc_anchors.cpp, measured in the same run, and the ratios between them.
//
// The other processes are this program again (/proc/self/exe ipc-child, or
// ipc-sender for the fan-in figures), started by troupe::ipc::node::spawn
// (posix_spawn) and joined to the bench's group.

#include "ipc_bench.hpp"

#include "ipc_anchors.hpp"
#include "report.hpp"
#include "troupe/ipc/configure.hpp"
#include "troupe/ipc/error.hpp"
#include "troupe/ipc/isolated.hpp"
#include "troupe/ipc/managed_dict.hpp"
#include "troupe/ipc/node.hpp"
#include "troupe/ipc/process_pool.hpp"
#include "troupe/ipc/program.hpp"

#include <caf/all.hpp>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace troupe_bench {

namespace {

using clock_type = std::chrono::steady_clock;
using count_atom = caf::atom_constant<caf::atom("count")>;
using leave_atom = caf::atom_constant<caf::atom("leave")>;
using done_atom = caf::atom_constant<caf::atom("done")>;
using go_atom = caf::atom_constant<caf::atom("go")>;
using ready_atom = caf::atom_constant<caf::atom("ready")>;

caf::behavior ponger(caf::event_based_actor*);
caf::behavior fanout_counter(caf::event_based_actor*, std::string, int32_t, caf::actor);

/// What every process of the bench registers: the types it spawns in others.
void add_bench_types(caf::actor_system_config& cfg) {
  cfg.set("scheduler.max-threads", 2);
  cfg.add_actor_type("ponger", ponger);                 // spawn_in_us, isolated_start_ms
  cfg.add_actor_type("fanout_counter", fanout_counter); // group_fanout_msgs_per_s
}

struct config : caf::actor_system_config {
  config() {
    troupe::ipc::configure(*this);
    add_bench_types(*this);
  }
};

double median(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  auto n = xs.size();
  return n % 2 == 1 ? xs[n / 2] : (xs[n / 2 - 1] + xs[n / 2]) / 2;
}

/// The median of `repeat` runs of `run()`.
template <class Run>
double median_of(int repeat, Run run) {
  std::vector<double> runs;
  for (int r = 0; r < repeat; ++r)
    runs.push_back(run());
  return median(std::move(runs));
}

double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

template <class T>
T check(caf::expected<T> x, const char* what) {
  if (!x)
    throw std::runtime_error(std::string{what} + ": " + troupe::describe(x.error()));
  return std::move(*x);
}

/// The child's actor: answers an int with itself, counts strings.
caf::behavior ponger(caf::event_based_actor*) {
  auto count = std::make_shared<int64_t>(0);
  return {
    [](int32_t x) { return x; },
    [count](const std::string&) { ++*count; },
    [count](count_atom) { return *count; },
  };
}

/// The pong of the ping-pong figures: sends every int32 back to its sender
/// as a message of its own (not a response).
caf::behavior bouncer(caf::event_based_actor* self) {
  return {
    [self](int32_t x) { self->send(caf::actor_cast<caf::actor>(self->current_sender()), x); },
  };
}

struct ping_state {
  int32_t answered = 0; ///< answers that came back as sent
};

/// The ping of the ping-pong figures: sends 0 to `pong` and, for each answer
/// that is what it sent, the next number, until `rounds` answers came back;
/// then tells `report` (done, answers), also early when an answer was wrong.
caf::behavior pinger(caf::stateful_actor<ping_state>* self, caf::actor pong, int32_t rounds,
                     caf::actor report) {
  self->send(pong, int32_t{0});
  return {
    [=](int32_t x) {
      auto& answered = self->state.answered;
      if (x == answered && ++answered < rounds) {
        self->send(pong, answered);
        return;
      }
      self->send(report, done_atom::value, answered);
      self->quit();
    },
  };
}

/// A subscriber of the fan-out figures: joins process group `name`, says
/// `ready` to `report`, and says `done` each time `per_round` messages came.
caf::behavior fanout_counter(caf::event_based_actor* self, std::string name, int32_t per_round,
                             caf::actor report) {
  auto grp = self->system().groups().get("troupe", name);
  if (!grp) {
    self->quit(grp.error());
    return {};
  }
  self->join(*grp);
  self->send(report, ready_atom::value);
  auto count = std::make_shared<int32_t>(0);
  return {
    [self, count, per_round, report](int32_t) {
      if (++*count == per_round) {
        *count = 0;
        self->send(report, done_atom::value);
      }
    },
  };
}

/// A child process in the bench's group, serving `name` (the ponger),
/// `name.bounce` (a bouncer) and `name.ctl`.
struct peer_process {
  troupe::ipc::child_process proc;
  caf::actor pong;
  caf::actor bounce;
  caf::actor ctl;

  peer_process(troupe::ipc::node& n, const std::string& name) {
    proc = check(n.spawn_self({"ipc-child", name}), "spawn");
    pong = check(n.lookup(name, std::chrono::seconds(10)), "lookup");
    bounce = check(n.lookup(name + ".bounce", std::chrono::seconds(10)), "lookup");
    ctl = check(n.lookup(name + ".ctl", std::chrono::seconds(10)), "lookup");
  }

  void stop(caf::scoped_actor& self) {
    self->send(ctl, leave_atom::value);
    if (!proc.wait(std::chrono::seconds(10)))
      proc.kill(SIGKILL);
  }
};

/// An actor spawned in process `where` (`node::spawn_in`) until it answered
/// a request; the median of `samples` in µs. The actors are stopped after
/// the round, as `caf_remote_spawn_us` does: an actor's end sends a kill
/// notice, which a blocking call that meets it leaves to the reader thread.
double spawn_in_us(troupe::ipc::node& n, caf::scoped_actor& self, pid_t where, int samples) {
  std::vector<double> xs;
  std::vector<caf::actor> spawned;
  for (int i = 0; i < samples; ++i) {
    auto start = clock_type::now();
    spawned.push_back(check(n.spawn_in(where, "ponger"), "spawn_in"));
    caf::error failure;
    self->request(spawned.back(), caf::infinite, int32_t{1})
      .receive([](int32_t) {}, [&](caf::error& err) { failure = std::move(err); });
    if (failure)
      throw std::runtime_error("spawned actor: " + troupe::describe(failure));
    xs.push_back(seconds_since(start) * 1e6);
  }
  for (auto& x : spawned)
    self->send_exit(x, caf::exit_reason::user_shutdown);
  return median(xs);
}

/// A process of its own started for an actor (`spawn_isolated`) until that
/// actor answered a request; the median of `samples` in ms. Each is stopped
/// (its process ends) before the next starts.
double isolated_start_ms(troupe::ipc::node& n, caf::scoped_actor& self, int samples) {
  std::vector<double> xs;
  for (int i = 0; i < samples; ++i) {
    auto start = clock_type::now();
    auto isolated = check(troupe::ipc::spawn_isolated(n, "ponger"), "spawn_isolated");
    caf::error failure;
    self->request(isolated.actor(), caf::infinite, int32_t{1})
      .receive([](int32_t) {}, [&](caf::error& err) { failure = std::move(err); });
    if (failure)
      throw std::runtime_error("isolated actor: " + troupe::describe(failure));
    xs.push_back(seconds_since(start) * 1e3);
    if (auto err = isolated.stop())
      throw std::runtime_error("isolated actor: " + troupe::describe(err));
  }
  return median(xs);
}

/// One publisher (here) and a subscriber in each of `hosts` (0: this
/// process) of the process group `name`: `messages` sent to the group per
/// round until every subscriber had them all; messages published per second.
double group_fanout_msgs_per_s(caf::actor_system& sys, troupe::ipc::node& n,
                               const std::vector<pid_t>& hosts, const std::string& name,
                               const anchor_options& opt) {
  caf::scoped_actor coord{sys};
  auto per_round = static_cast<int32_t>(opt.messages);
  std::vector<caf::actor> counters;
  for (auto host : hosts)
    counters.push_back(
      host == 0 ? sys.spawn(fanout_counter, name, per_round, caf::actor{coord})
                : check(n.spawn_in(host, "fanout_counter", name, per_round, caf::actor{coord}),
                        "spawn_in"));
  auto await_all = [&](auto atom, const char* what) {
    for (size_t i = 0; i < counters.size(); ++i)
      coord->receive([](decltype(atom)) {},
                     caf::after(std::chrono::seconds(60)) >>
                       [&] { throw std::runtime_error(std::string{"group fan-out: no "} + what); });
  };
  await_all(ready_atom::value, "subscriber joined");
  auto grp = check(sys.groups().get("troupe", name), "group");
  std::vector<double> rates;
  for (int r = 0; r < opt.repeat; ++r) {
    auto start = clock_type::now();
    for (int32_t i = 0; i < per_round; ++i)
      coord->send(grp, i);
    await_all(done_atom::value, "round finished");
    rates.push_back(per_round / seconds_since(start));
  }
  for (auto& c : counters)
    coord->send_exit(c, caf::exit_reason::user_shutdown);
  return median(rates);
}

double rtt_us(caf::scoped_actor& self, const caf::actor& pong, int samples) {
  std::vector<double> rtts;
  rtts.reserve(static_cast<size_t>(samples));
  bool failed = false;
  for (int i = 0; i < samples + samples / 10; ++i) {
    auto start = clock_type::now();
    self->request(pong, caf::infinite, int32_t{i})
      .receive([](int32_t) {}, [&](caf::error&) { failed = true; });
    if (failed)
      throw std::runtime_error("a round trip failed");
    if (i >= samples / 10) // the first tenth warms up
      rtts.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - start).count());
  }
  keep_samples("ipc_rtt_us", rtts);
  return median(rtts);
}

/// Seconds from the first of `count` sends of `payload` (a std::string, or
/// a caf::message holding one) to the ponger `pong` until it has counted the
/// last; `total` is what it has counted before, and is updated.
template <class Payload>
double one_way_seconds(caf::scoped_actor& self, const caf::actor& pong, const Payload& payload,
                       int count, int64_t& total) {
  auto start = clock_type::now();
  for (int i = 0; i < count; ++i)
    self->send(pong, payload);
  total += count;
  // Messages from one sender arrive in order: this answer comes after the
  // last string was counted.
  int64_t seen = -1;
  self->request(pong, caf::infinite, count_atom::value)
    .receive([&](int64_t n) { seen = n; }, [](caf::error&) {});
  auto elapsed = seconds_since(start);
  if (seen != total)
    throw std::runtime_error("messages were lost: counted " + std::to_string(seen) + " of "
                             + std::to_string(total));
  return elapsed;
}

/// 64-byte std::string messages per second one way to the ponger `pong`.
double msgs_per_s(caf::scoped_actor& self, const caf::actor& pong, int messages, int64_t& total) {
  const std::string payload(64, 'x');
  return messages / one_way_seconds(self, pong, payload, messages, total);
}

/// GB/s (10^9 bytes per second) of `count` messages of `bytes` bytes each (one
/// std::string in one caf::message, built once and shared by every send, as
/// a moved buffer would be: no copy before the transport's) one way to the ponger
/// `pong`, from the first send until it has counted the last.
double large_gb_per_s(caf::scoped_actor& self, const caf::actor& pong, size_t bytes, int count,
                      int64_t& total) {
  auto msg = caf::make_message(std::string(bytes, 'x'));
  return static_cast<double>(bytes) * count / one_way_seconds(self, pong, msg, count, total) / 1e9;
}

/// GB/s (10^9 bytes per second) of memcpy from one 16 MiB buffer into another
/// (both already written to), 16 copies in a row.
double memcpy_gb_per_s() {
  constexpr size_t bytes = size_t{16} << 20;
  constexpr int copies = 16;
  std::vector<char> from(bytes, 'x');
  std::vector<char> to(bytes, 'y');
  auto start = clock_type::now();
  for (int i = 0; i < copies; ++i) {
    from[0] = static_cast<char>('a' + i);
    std::memcpy(to.data(), from.data(), bytes);
    // The copy is observed: the compiler may not drop or merge it.
    asm volatile("" : : "r"(to.data()) : "memory");
  }
  auto elapsed = seconds_since(start);
  if (to[0] != 'a' + copies - 1 || to[bytes - 1] != 'x')
    throw std::runtime_error("memcpy: the copy is not what was copied");
  return static_cast<double>(bytes) * copies / elapsed / 1e9;
}

/// Messages per second of the Savina ping-pong: an event-based ping actor
/// spawned here bounces an int32 counter off the bouncer `pong` (an actor of
/// this process or of another) `rounds` times; two messages per round trip.
double pingpong_msgs_per_s(caf::actor_system& sys, const caf::actor& pong, int rounds) {
  caf::scoped_actor self{sys};
  self->monitor(pong);
  auto start = clock_type::now();
  auto ping = sys.spawn(pinger, pong, int32_t{rounds}, caf::actor{self});
  self->monitor(ping);
  int32_t answered = -1;
  std::string failure;
  self->receive([&](done_atom, int32_t n) { answered = n; },
                [&](caf::down_msg& dm) {
                  failure = "an actor of the ping-pong is gone: " + troupe::describe(dm.reason);
                });
  auto elapsed = seconds_since(start);
  if (!failure.empty())
    throw std::runtime_error(failure);
  if (answered != rounds)
    throw std::runtime_error("ping-pong: " + std::to_string(answered) + " of "
                             + std::to_string(rounds) + " answers came back as sent");
  return 2.0 * rounds / elapsed;
}

/// The ping-pong with both actors in this process.
double local_pingpong_msgs_per_s(caf::actor_system& sys, int rounds) {
  auto pong = sys.spawn(bouncer);
  auto rate = pingpong_msgs_per_s(sys, pong, rounds);
  caf::anon_send_exit(pong, caf::exit_reason::user_shutdown);
  return rate;
}

struct fanin_state {
  int64_t count = 0;
  int64_t next_report = 0;
};

/// The counter of the fan-in figures: counts strings, and each time it has
/// counted another `per_round` of them tells `bench` (done, count so far).
caf::behavior fanin_counter(caf::stateful_actor<fanin_state>* self, caf::actor bench,
                            int64_t per_round) {
  self->state.next_report = per_round;
  return {
    [=](const std::string&) {
      auto& st = self->state;
      if (++st.count == st.next_report) {
        self->send(bench, done_atom::value, st.count);
        st.next_report += per_round;
      }
    },
    [=](count_atom) { return self->state.count; },
  };
}

/// Waits for the fan-in counter's (done, `target`); fails when a sender is
/// gone, when the counter reports another count, or when its count stopped
/// moving between two checks 5 s apart (a message was lost).
void await_fanin_count(caf::scoped_actor& coord, const caf::actor& counter, int64_t target) {
  int64_t last_seen = -1;
  for (;;) {
    int64_t reported = -1;
    bool quiet = false;
    std::string failure;
    coord->receive([&](done_atom, int64_t n) { reported = n; },
                   [&](caf::down_msg& dm) {
                     failure = "a fan-in sender is gone: " + troupe::describe(dm.reason);
                   },
                   caf::after(std::chrono::seconds(5)) >> [&] { quiet = true; });
    if (!failure.empty())
      throw std::runtime_error(failure);
    if (reported >= 0 && reported != target)
      throw std::runtime_error("fan-in: the counter reported " + std::to_string(reported)
                               + " messages, expected " + std::to_string(target));
    if (!quiet)
      return;
    int64_t seen = -1;
    coord->request(counter, caf::infinite, count_atom::value)
      .receive([&](int64_t n) { seen = n; }, [](caf::error&) {});
    if (seen == last_seen)
      throw std::runtime_error("fan-in: messages were lost: counted " + std::to_string(seen)
                               + " of " + std::to_string(target));
    last_seen = seen;
  }
}

/// Messages per second into one counting actor of this process from
/// `senders` processes (mode ipc-sender) that each send `opt.messages` 64-byte
/// strings, from the go of a start barrier (every sender has looked the counter
/// up and waits) until the counter has counted every message; the median of
/// `opt.repeat` rounds with the same senders.
double fanin_msgs_per_s(caf::actor_system& sys, troupe::ipc::node& n, int senders,
                        const anchor_options& opt) {
  auto tag = "fanin-" + std::to_string(senders);
  auto per_round = int64_t{senders} * opt.messages;
  caf::scoped_actor coord{sys};
  auto counter = sys.spawn(fanin_counter, caf::actor{coord}, per_round);
  // Both names (and the counter) end with this function.
  auto counter_name = n.publish(tag + ".counter", counter);
  auto coord_name = n.publish(tag + ".coord", caf::actor{coord});
  if (!counter_name || !coord_name) {
    caf::anon_send_exit(counter, caf::exit_reason::user_shutdown);
    throw std::runtime_error("fan-in: publish failed");
  }
  std::vector<troupe::ipc::child_process> procs;
  for (int i = 0; i < senders; ++i)
    procs.push_back(check(
      n.spawn_self({"ipc-sender", tag + ".counter", tag + ".coord", std::to_string(opt.messages)}),
      "spawn"));
  std::vector<caf::actor> ready;
  bool late = false;
  while (!late && ready.size() < static_cast<size_t>(senders))
    coord->receive(
      [&](ready_atom) { ready.push_back(caf::actor_cast<caf::actor>(coord->current_sender())); },
      caf::after(std::chrono::seconds(30)) >> [&] { late = true; });
  if (late)
    throw std::runtime_error("fan-in: the senders were not ready in 30 s");
  for (auto& s : ready)
    coord->monitor(s);
  int64_t target = 0;
  auto rate = median_of(opt.repeat, [&] {
    target += per_round;
    auto start = clock_type::now();
    for (auto& s : ready)
      coord->send(s, go_atom::value);
    await_fanin_count(coord, counter, target);
    return per_round / seconds_since(start);
  });
  for (auto& s : ready) {
    coord->demonitor(s);
    coord->send(s, leave_atom::value);
  }
  for (auto& p : procs) {
    auto status = p.wait(std::chrono::seconds(10));
    if (!status || !status->success())
      throw std::runtime_error("fan-in: a sender did not leave cleanly");
  }
  // Nothing more than was sent was counted either.
  int64_t counted = -1;
  coord->request(counter, caf::infinite, count_atom::value)
    .receive([&](int64_t c) { counted = c; }, [](caf::error&) {});
  caf::anon_send_exit(counter, caf::exit_reason::user_shutdown);
  if (counted != target)
    throw std::runtime_error("fan-in: counted " + std::to_string(counted) + " messages of "
                             + std::to_string(target));
  return rate;
}

/// CPU time that the threads of process `pid` (0: this one) have used so
/// far, in seconds, from /proc/<pid>/task/*/schedstat (nanoseconds).
double cpu_seconds(pid_t pid) {
  // Every thread's time on a CPU in nanoseconds (schedstat's first field):
  // the clock-tick counters of /proc/PID/stat are too coarse for an idle
  // process.
  auto dir = pid == 0 ? std::string{"/proc/self/task"} : "/proc/" + std::to_string(pid) + "/task";
  double total = 0;
  bool any = false;
  for (auto& task : std::filesystem::directory_iterator{dir}) {
    std::ifstream in{task.path() / "schedstat"};
    unsigned long long ns = 0;
    if (in >> ns) {
      total += static_cast<double>(ns) / 1e9;
      any = true;
    }
  }
  if (!any)
    throw std::runtime_error("cannot read " + dir + "/*/schedstat");
  return total;
}

/// CPU time of this process and of an idle child node of its group (no
/// traffic between them) over `seconds`, as a percentage of one core, summed
/// over both processes.
double idle_cpu_pct(caf::scoped_actor& self, const peer_process& peer, int seconds) {
  auto before = cpu_seconds(0) + cpu_seconds(peer.proc.pid());
  std::this_thread::sleep_for(std::chrono::seconds(seconds)); // the idle interval
  auto used = cpu_seconds(0) + cpu_seconds(peer.proc.pid()) - before;
  // The child is still there and answers.
  bool answered = false;
  self->request(peer.pong, caf::infinite, int32_t{7})
    .receive([&](int32_t x) { answered = x == 7; }, [](caf::error&) {});
  if (!answered)
    throw std::runtime_error("idle: the child node does not answer after the idle interval");
  return used / seconds * 100;
}

/// A CPU-bound task for the process pool figure.
int64_t burn(int64_t n) {
  int64_t acc = 0;
  for (int64_t i = 0; i < n; ++i)
    acc += (i * i) % 7;
  return acc;
}

/// Seconds for `tasks` burns through a process pool of `workers` processes.
double pool_map_seconds(caf::actor_system& sys, troupe::ipc::node& group, size_t workers, int tasks,
                        int64_t steps) {
  troupe::ipc::process_pool_options options;
  options.workers = workers;
  auto pool = check(troupe::ipc::process_pool::make(sys, group, options), "process pool");
  // Warm up: every worker process is started and has run a task.
  for (auto& r : pool.map(burn, std::vector<int64_t>(workers, 1000)))
    check(std::move(r), "warm-up");
  std::vector<int64_t> inputs(static_cast<size_t>(tasks), steps);
  auto start = clock_type::now();
  for (auto& r : pool.map(burn, inputs))
    check(std::move(r), "burn");
  auto elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
  (void)pool.stop();
  return elapsed;
}

} // namespace

int run_ipc_child(int argc, char** argv) {
  if (argc != 1) {
    std::cerr << "usage: troupe-bench ipc-child NAME\n";
    return 2;
  }
  std::string name = argv[0];
  config cfg;
  caf::actor_system sys{cfg};
  auto n = troupe::ipc::node::join_from_env(sys);
  if (!n) {
    std::cerr << "ipc-child: " << troupe::describe(n.error()) << '\n';
    return 3;
  }
  auto pong = sys.spawn(ponger);
  auto bounce = sys.spawn(bouncer);
  auto dict = troupe::ipc::managed_dict<std::string, int64_t>::make(sys);
  caf::scoped_actor self{sys};
  std::vector<troupe::ipc::publication> names;
  for (auto& [suffix, x] :
       {std::make_pair("", pong), std::make_pair(".bounce", bounce),
        std::make_pair(".ctl", caf::actor{self}), std::make_pair(".dict", dict.handle())})
    if (auto p = n->publish(name + suffix, x))
      names.push_back(std::move(*p));
  if (names.size() < 4) {
    (void)dict.stop(); // failing anyway: the exit status says so
    self->send_exit(pong, caf::exit_reason::kill);
    self->send_exit(bounce, caf::exit_reason::kill);
    return 3;
  }
  self->receive([](leave_atom) {});
  self->send_exit(pong, caf::exit_reason::kill);
  self->send_exit(bounce, caf::exit_reason::kill);
  return dict.stop() ? 3 : 0;
}

int run_isolated_host(int argc, char** argv) {
  return troupe::ipc::program{argc, argv}.configure(add_bench_types).run(nullptr);
}

int run_ipc_sender(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: troupe-bench ipc-sender COUNTER COORD MESSAGES\n";
    return 2;
  }
  std::string counter_name = argv[0];
  std::string coord_name = argv[1];
  auto messages = std::strtol(argv[2], nullptr, 10);
  config cfg;
  caf::actor_system sys{cfg};
  auto n = troupe::ipc::node::join_from_env(sys);
  if (!n) {
    std::cerr << "ipc-sender: " << troupe::describe(n.error()) << '\n';
    return 3;
  }
  auto counter = n->lookup(counter_name, std::chrono::seconds(10));
  auto coord = n->lookup(coord_name, std::chrono::seconds(10));
  if (!counter || !coord) {
    std::cerr << "ipc-sender: lookup failed\n";
    return 3;
  }
  caf::scoped_actor self{sys};
  self->monitor(*coord); // gone with the bench
  self->send(*coord, ready_atom::value);
  const std::string payload(64, 'x');
  bool leave = false;
  bool bench_gone = false;
  while (!leave && !bench_gone)
    self->receive(
      [&](go_atom) {
        for (long i = 0; i < messages; ++i)
          self->send(*counter, payload);
      },
      [&](leave_atom) { leave = true; }, [&](caf::down_msg&) { bench_gone = true; });
  if (bench_gone)
    std::cerr << "ipc-sender: the bench is gone\n";
  return bench_gone ? 1 : 0;
}

int run_ipc(const anchor_options& opt) {
  auto print = [](const std::string& name, double value, const char* unit) {
    report(name, value, unit);
  };
  double ipc_rtt = 0;
  double ipc_msgs = 0;
  double lost_ms = 0;
  double pool_one_s = 0;
  double dict_set_us = 0;
  double pool_two_s = 0;
  double ipc_pingpong = 0;
  double local_pingpong = 0;
  double fanin_4 = 0;
  double fanin_1 = 0;
  double large_1mib = 0;
  double large_16mib = 0;
  double memcpy_rate = 0;
  double idle_pct = 0;
  double spawn_in = 0;
  double isolated_start = 0;
  double fanout_3 = 0;
  double fanout_1 = 0;
  try {
    config cfg;
    caf::actor_system sys{cfg};
    caf::scoped_actor self{sys};
    auto group = "bench-" + std::to_string(::getpid());
    troupe::ipc::group_options gopts;
    gopts.quiet = true;
    // Victims, pool workers and isolated hosts come and go, and a slot rests
    // for `slot_grace` (1 s) before it is used again: isolated_start_ms
    // starts about 40 processes a second.
    gopts.max_nodes = 64;
    // A 16 MiB payload plus its header is more than the default 16 MiB.
    gopts.max_message_bytes = uint64_t{64} << 20;
    auto n = check(troupe::ipc::node::create(sys, group, gopts), "create");
    {
      peer_process peer{n, "pong"};
      std::vector<double> rtts;
      std::vector<double> rates;
      int64_t total = 0;
      for (int r = 0; r < opt.repeat; ++r) {
        rtts.push_back(rtt_us(self, peer.pong, opt.samples));
        rates.push_back(msgs_per_s(self, peer.pong, opt.messages, total));
      }
      ipc_rtt = median(rtts);
      ipc_msgs = median(rates);
      ipc_pingpong =
        median_of(opt.repeat, [&] { return pingpong_msgs_per_s(sys, peer.bounce, opt.messages); });
      // 256 MiB per round of each size: about 0.1 to 0.3 s at 1 to 2 GB/s.
      large_1mib = median_of(
        opt.repeat, [&] { return large_gb_per_s(self, peer.pong, size_t{1} << 20, 256, total); });
      large_16mib = median_of(
        opt.repeat, [&] { return large_gb_per_s(self, peer.pong, size_t{16} << 20, 16, total); });
      // A shared dict in the child, set from here (the Manager().dict() case).
      troupe::ipc::managed_dict<std::string, int64_t> dict{
        check(n.lookup("pong.dict", std::chrono::seconds(10)), "lookup")};
      std::vector<double> sets;
      for (int r = 0; r < opt.repeat; ++r) {
        std::vector<double> run;
        for (int i = 0; i < opt.samples; ++i) {
          auto start = clock_type::now();
          if (auto err = dict.set("key", i))
            throw std::runtime_error("dict set: " + troupe::describe(err));
          run.push_back(
            std::chrono::duration<double, std::micro>(clock_type::now() - start).count());
        }
        keep_samples("manager_dict_set_us", run);
        sets.push_back(median(run));
      }
      // Every set reached the owner: the last one is what it holds.
      if (auto last = dict.at("key"); !last || *last != opt.samples - 1)
        throw std::runtime_error("dict set: the owner does not hold the last value set");
      dict_set_us = median(sets);
      auto spawns = std::min(opt.samples, 1000);
      spawn_in =
        median_of(opt.repeat, [&] { return spawn_in_us(n, self, peer.proc.pid(), spawns); });
      peer.stop(self);
    }
    // The same ping-pong with both actors here, on the same scheduler.
    local_pingpong =
      median_of(opt.repeat, [&] { return local_pingpong_msgs_per_s(sys, opt.messages); });
    // kill -9 to down_msg: a fresh child per run.
    std::vector<double> losses;
    for (int r = 0; r < opt.repeat; ++r) {
      peer_process peer{n, "victim-" + std::to_string(r)};
      self->monitor(peer.pong);
      // Make sure the child is fully connected before killing it.
      self->request(peer.pong, caf::infinite, int32_t{1})
        .receive([](int32_t) {}, [](caf::error&) {});
      auto start = clock_type::now();
      peer.proc.kill(SIGKILL);
      bool seen = false;
      self->receive(
        [&](caf::down_msg& dm) { seen = troupe::is(dm.reason, troupe::errc::peer_lost); },
        caf::after(std::chrono::seconds(10)) >> [] {});
      if (!seen)
        throw std::runtime_error("no down_msg with peer_lost after kill -9");
      losses.push_back(
        std::chrono::duration<double, std::milli>(clock_type::now() - start).count());
      peer.proc.wait(std::chrono::seconds(10));
    }
    lost_ms = median(losses);
    // The same CPU-bound map on 1 and on 2 worker processes.
    std::vector<double> one;
    std::vector<double> two;
    for (int r = 0; r < opt.repeat; ++r) {
      one.push_back(pool_map_seconds(sys, n, 1, 8, opt.samples * 4000LL));
      two.push_back(pool_map_seconds(sys, n, 2, 8, opt.samples * 4000LL));
    }
    pool_one_s = median(one);
    pool_two_s = median(two);
    fanin_4 = fanin_msgs_per_s(sys, n, 4, opt);
    fanin_1 = fanin_msgs_per_s(sys, n, 1, opt);
    {
      // Three subscribers: one in each of three processes, then all three
      // in the publisher's.
      std::vector<std::unique_ptr<peer_process>> subscribers;
      std::vector<pid_t> hosts;
      for (int i = 0; i < 3; ++i) {
        subscribers.push_back(std::make_unique<peer_process>(n, "fanout-" + std::to_string(i)));
        hosts.push_back(subscribers.back()->proc.pid());
      }
      fanout_3 = group_fanout_msgs_per_s(sys, n, hosts, "fanout-3", opt);
      fanout_1 = group_fanout_msgs_per_s(sys, n, {0, 0, 0}, "fanout-1", opt);
      for (auto& s : subscribers)
        s->stop(self);
    }
    isolated_start = median_of(opt.repeat, [&] { return isolated_start_ms(n, self, 10); });
    {
      // The group is down to this process and one child; a round trip makes
      // sure both are connected both ways before the first idle interval.
      peer_process peer{n, "idle"};
      self->request(peer.pong, caf::infinite, int32_t{1})
        .receive([](int32_t) {}, [](caf::error&) {});
      idle_pct = median_of(opt.repeat, [&] { return idle_cpu_pct(self, peer, opt.idle_seconds); });
      peer.stop(self);
    }
    memcpy_rate = median_of(opt.repeat, memcpy_gb_per_s);
  } catch (const std::exception& e) {
    std::cerr << "troupe-bench ipc: " << e.what() << '\n';
    return 1;
  }
  print("ipc_rtt_us", ipc_rtt, "us");
  print("ipc_msgs_per_s", ipc_msgs, "msgs/s");
  print("peer_lost_ms", lost_ms, "ms");
  print("manager_dict_set_us", dict_set_us, "us");
  print("pool_map_1_process_s", pool_one_s, "s");
  print("pool_map_2_processes_s", pool_two_s, "s");
  print("ipc_pingpong_msgs_per_s", ipc_pingpong, "msgs/s");
  print("local_pingpong_msgs_per_s", local_pingpong, "msgs/s");
  print("ipc_fanin_4_msgs_per_s", fanin_4, "msgs/s");
  print("ipc_fanin_1_msgs_per_s", fanin_1, "msgs/s");
  print("ipc_large_1mib_gb_per_s", large_1mib, "GB/s");
  print("ipc_large_16mib_gb_per_s", large_16mib, "GB/s");
  print("memcpy_gb_per_s", memcpy_rate, "GB/s");
  print("idle_cpu_pct", idle_pct, "%");
  print("spawn_in_us", spawn_in, "us");
  print("isolated_start_ms", isolated_start, "ms");
  print("group_fanout_msgs_per_s", fanout_3, "msgs/s");
  print("group_fanout_one_process_msgs_per_s", fanout_1, "msgs/s");
  // The anchors, in the same run.
  int rc = 0;
  auto tuned = opt;
  tuned.latency_scheduler = true;
  auto measure = [&](const char* name, const char* unit, double (*figure)(const anchor_options&),
                     const anchor_options& with) {
    return measure_figure(name, unit, figure, with, rc);
  };
  auto measure_py = [&](const char* name, const char* unit,
                        std::optional<double> (*figure)(const anchor_options&)) {
    return measure_python_figure(name, unit, figure, opt);
  };
  measure("futex_rtt_us", "us", futex_rtt_us, opt);
  measure("cacheline_hop_ns", "ns", cacheline_hop_ns, opt);
  measure("bip_mq_rtt_us", "us", bip_mq_rtt_us, opt);
  measure("bip_mq_msgs_per_s", "msgs/s", bip_mq_msgs_per_s, opt);
  measure("zmq_rtt_us", "us", zmq_rtt_us, opt);
  auto zmq_msgs = measure("zmq_msgs_per_s", "msgs/s", zmq_msgs_per_s, opt);
  // CAF with its default scheduler, and with the setting troupe::ipc::configure
  // makes (like for like: the ratios below use these).
  measure("caf_tcp_rtt_us", "us", caf_tcp_rtt_us, opt);
  measure("caf_local_rtt_us", "us", caf_local_rtt_us, opt);
  auto remote_spawn = measure("caf_remote_spawn_us", "us", caf_remote_spawn_us, tuned);
  measure("caf_local_msgs_per_s", "msgs/s", caf_local_msgs_per_s, opt);
  auto tcp = measure("caf_tcp_same_sched_rtt_us", "us", caf_tcp_rtt_us, tuned);
  auto local = measure("caf_local_same_sched_rtt_us", "us", caf_local_rtt_us, tuned);
  auto local_msgs =
    measure("caf_local_same_sched_msgs_per_s", "msgs/s", caf_local_msgs_per_s, tuned);
  auto py_rtt = measure_py("py_manager_rtt_us", "us", py_manager_rtt_us);
  auto py_queue = measure_py("py_queue_msgs_per_s", "msgs/s", py_queue_msgs_per_s);
  auto py_start = measure_py("py_process_start_ms", "ms", py_process_start_ms);
  auto ratio = [&](const char* name, std::optional<double> num, std::optional<double> den) {
    if (num && den && *den > 0)
      print(name, *num / *den, "x");
    else
      report_na(name);
  };
  ratio("ipc_rtt_vs_py_manager", ipc_rtt, py_rtt);
  ratio("ipc_rtt_vs_caf_tcp", ipc_rtt, tcp);
  ratio("ipc_rtt_vs_caf_local", ipc_rtt, local);
  ratio("ipc_msgs_vs_py_queue", ipc_msgs, py_queue);
  ratio("manager_vs_py_manager", dict_set_us, py_rtt);
  ratio("pool_map_speedup_2", pool_one_s, pool_two_s);
  ratio("ipc_msgs_vs_zmq", ipc_msgs, zmq_msgs);
  ratio("ipc_msgs_vs_caf_local", ipc_msgs, local_msgs);
  ratio("ipc_pingpong_vs_local", ipc_pingpong, local_pingpong);
  ratio("ipc_fanin_vs_one", fanin_4, fanin_1);
  ratio("spawn_in_vs_caf_remote_spawn", spawn_in, remote_spawn);
  ratio("isolated_start_vs_py_process", isolated_start, py_start);
  ratio("group_fanout_vs_one_process", fanout_3, fanout_1);
  ratio("ipc_large_vs_memcpy", std::min(large_1mib, large_16mib), memcpy_rate);
  return rc;
}

} // namespace troupe_bench
