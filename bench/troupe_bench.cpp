// troupe-bench: figures for troupe next to the baselines they replace, all
// measured in the same run on the same machine.
//
//   troupe-bench local [--repeat N] [--increments N] [--samples N]
//   troupe-bench anchors [--repeat N] [--samples N] [--messages N]
//   troupe-bench ipc [--repeat N] [--samples N] [--messages N] [--idle-seconds N]
//   ... --csv FILE: the figures and the round trips' distributions as CSV too
//
// Prints one line per figure, `<name> <value> <unit>`, then ratio lines
// `<name> <ratio> x`. Every figure is the median of its runs; the machines
// this runs on are shared and noisy, so compare ratios, not absolute values.

#include "ipc_anchors.hpp"
#include "ipc_bench.hpp"
#include "report.hpp"
#include "troupe/bounded_queue.hpp"
#include "troupe/configure.hpp"
#include "troupe/guarded.hpp"
#include "troupe/ipc/isolated.hpp"
#include "troupe/ipc/process_pool.hpp"
#include "troupe/worker_pool.hpp"

#include <caf/all.hpp>

#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;
using run_atom = caf::atom_constant<caf::atom("run")>;

struct options {
  int repeat = 5;
  int64_t increments = 1'000'000; // per producer; two producers
  int samples = 20'000;           // round trips per RTT figure
  int messages = 100'000;         // one-way messages per throughput figure
  int idle_seconds = 10;          // each idle interval of the idle CPU figure
};

double median(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  auto n = xs.size();
  return n % 2 == 1 ? xs[n / 2] : (xs[n / 2 - 1] + xs[n / 2]) / 2;
}

double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

void print(const std::string& name, double value, const char* unit) {
  troupe_bench::report(name, value, unit);
}

// -- counters: 2 x N increments ----------------------------------------------

struct counter_state {
  int64_t value = 0;
};

caf::behavior counter_actor(caf::stateful_actor<counter_state>* self) {
  return {
    [self](caf::add_atom, int64_t n) { self->state.value += n; },
    [self](caf::get_atom) { return self->state.value; },
  };
}

caf::behavior producer(caf::event_based_actor* self, caf::actor target, int64_t n) {
  return {[=](run_atom) {
    for (int64_t i = 0; i < n; ++i)
      self->send(target, caf::add_atom::value, int64_t{1});
    return caf::ok_atom::value;
  }};
}

double counter_with_actor(caf::actor_system& sys, int64_t n) {
  caf::scoped_actor self{sys};
  auto start = clock_type::now();
  auto c = sys.spawn(counter_actor);
  self->send(sys.spawn(producer, c, n), run_atom::value);
  self->send(sys.spawn(producer, c, n), run_atom::value);
  for (int done = 0; done < 2; ++done) // both producers have sent everything
    self->receive([](caf::ok_atom) {});
  int64_t total = 0;
  self->request(c, caf::infinite, caf::get_atom::value)
    .receive([&](int64_t x) { total = x; }, [](caf::error&) {});
  auto elapsed = seconds_since(start);
  if (total != 2 * n) {
    std::cerr << "counter_actor lost updates: " << total << '\n';
    std::exit(1);
  }
  return elapsed;
}

double counter_with_threads(int64_t n, const std::function<void()>& increment) {
  auto start = clock_type::now();
  auto work = [&] {
    for (int64_t i = 0; i < n; ++i)
      increment();
  };
  std::thread a{work};
  std::thread b{work};
  a.join();
  b.join();
  return seconds_since(start);
}

// -- request round trips ---------------------------------------------------

caf::behavior echo() {
  return {[](int x) { return x; }};
}

struct rtt_pair {
  double caf_us;
  double guarded_us;
};

// Round trips from one blocking caller to a raw CAF actor and to a guarded
// state, interleaved sample by sample (in alternating order) so that both see
// the same scheduler state (CAF's workers poll, then back off, then sleep).
rtt_pair request_rtts(caf::actor_system& sys, int samples) {
  caf::scoped_actor self{sys};
  auto server = sys.spawn(echo);
  auto state = troupe::guarded<int>::make(sys, 0);
  std::vector<double> caf_rtts;
  std::vector<double> guarded_rtts;
  caf_rtts.reserve(samples);
  guarded_rtts.reserve(samples);
  auto ask_caf = [&](int i) {
    auto start = clock_type::now();
    self->request(server, caf::infinite, i).receive([](int) {}, [](caf::error&) {});
    caf_rtts.push_back(seconds_since(start) * 1e6);
  };
  auto ask_guarded = [&](int i) {
    auto start = clock_type::now();
    auto r = state.update(self, [i](int& x) { return x = i; });
    guarded_rtts.push_back(seconds_since(start) * 1e6);
    if (!r) {
      std::cerr << "guarded update failed\n";
      std::exit(1);
    }
  };
  for (int i = 0; i < samples; ++i) {
    // Alternate which goes first, so neither always follows the other.
    if (i % 2 == 0) {
      ask_caf(i);
      ask_guarded(i);
    } else {
      ask_guarded(i);
      ask_caf(i);
    }
  }
  return {median(std::move(caf_rtts)), median(std::move(guarded_rtts))};
}

// -- suites ----------------------------------------------------------------

int run_local(const options& opt) {
  caf::actor_system_config cfg;
  troupe::configure(cfg);
  caf::actor_system sys{cfg};

  // Variants alternate within each round, so drift hits them alike.
  std::vector<double> actor_s, mutex_s, atomic_s, caf_us, guarded_us;
  for (int r = 0; r < opt.repeat; ++r) {
    actor_s.push_back(counter_with_actor(sys, opt.increments));
    std::mutex mtx;
    int64_t locked = 0;
    mutex_s.push_back(counter_with_threads(opt.increments, [&] {
      std::lock_guard<std::mutex> guard{mtx};
      ++locked;
    }));
    std::atomic<int64_t> atomic{0};
    atomic_s.push_back(counter_with_threads(opt.increments, [&] { ++atomic; }));
    auto rtts = request_rtts(sys, opt.samples);
    caf_us.push_back(rtts.caf_us);
    guarded_us.push_back(rtts.guarded_us);
  }
  auto caf_rtt = median(caf_us);
  auto guarded_rtt = median(guarded_us);
  print("counter_actor_s", median(actor_s), "s");
  print("counter_mutex_s", median(mutex_s), "s");
  print("counter_atomic_s", median(atomic_s), "s");
  print("request_rtt_caf_us", caf_rtt, "us");
  print("request_rtt_guarded_us", guarded_rtt, "us");
  print("guarded_vs_caf", guarded_rtt / caf_rtt, "x");
  return 0;
}

// -- pool suite ------------------------------------------------------------

/// Time for `tasks` tiny requests sent at once through `pool` and answered.
double dispatch_seconds(caf::actor_system& sys, const caf::actor& pool, int tasks) {
  caf::scoped_actor self{sys};
  auto start = clock_type::now();
  std::vector<decltype(self->request(pool, caf::infinite, 0))> pending;
  pending.reserve(tasks);
  for (int i = 0; i < tasks; ++i)
    pending.push_back(self->request(pool, caf::infinite, i));
  for (auto& p : pending)
    p.receive([](int) {},
              [](caf::error& err) {
                std::cerr << "pool task failed: " << troupe::describe(err) << '\n';
                std::exit(1);
              });
  return seconds_since(start);
}

/// Time for `tasks` tiny requests sent at once through `pool` by an
/// event-based actor, which takes each answer as it comes: CAF keeps an
/// event-based actor's pending answers in a map, so unlike a blocking caller
/// it never searches early answers again, and the time is the pool's
/// dispatch and the workers' answers.
double event_dispatch_seconds(caf::actor_system& sys, const caf::actor& pool, int tasks) {
  caf::scoped_actor self{sys};
  auto start = clock_type::now();
  auto me = caf::actor{self};
  sys.spawn([pool, tasks, me](caf::event_based_actor* client) {
    auto answered = std::make_shared<int>(0);
    for (int i = 0; i < tasks; ++i)
      client->request(pool, caf::infinite, i)
        .then(
          [client, answered, tasks, me](int) {
            if (++*answered == tasks) {
              client->send(me, caf::ok_atom::value);
              client->quit();
            }
          },
          [](caf::error& err) {
            std::cerr << "pool task failed: " << troupe::describe(err) << '\n';
            std::exit(1);
          });
  });
  self->receive([](caf::ok_atom) {});
  return seconds_since(start);
}

/// Time for `tasks` tiny requests through `pool`, at most `window` of them
/// unanswered at a time, each answer taken in order. Answers then arrive
/// nearly in order: unlike `dispatch_seconds`, the time says little about
/// how a blocking caller skips answers that came early (CAF 0.17 searches
/// them again on every receive), which varies a lot from run to run.
double window_seconds(caf::actor_system& sys, const caf::actor& pool, int tasks, int window) {
  caf::scoped_actor self{sys};
  auto start = clock_type::now();
  std::deque<decltype(self->request(pool, caf::infinite, 0))> pending;
  int sent = 0;
  while (sent < tasks || !pending.empty()) {
    while (sent < tasks && static_cast<int>(pending.size()) < window)
      pending.push_back(self->request(pool, caf::infinite, sent++));
    pending.front().receive([](int) {},
                            [](caf::error& err) {
                              std::cerr << "pool task failed: " << troupe::describe(err) << '\n';
                              std::exit(1);
                            });
    pending.pop_front();
  }
  return seconds_since(start);
}

/// CPU-bound work of about `iterations` steps.
int64_t burn(int64_t iterations) {
  volatile int64_t acc = 0;
  for (int64_t i = 0; i < iterations; ++i)
    acc = acc + i * i;
  return acc;
}

double cpu_seconds(caf::actor_system& sys, std::size_t workers, int tasks, int64_t iterations) {
  troupe::pool_options opts;
  opts.workers = workers;
  auto pool = troupe::worker_pool::make(
    sys,
    [](caf::actor_system& s) {
      return s.spawn<caf::detached>(
        []() -> caf::behavior { return {[](int64_t n) { return burn(n); }}; });
    },
    opts);
  if (!pool)
    std::exit(1);
  caf::scoped_actor self{sys};
  auto start = clock_type::now();
  std::vector<decltype(self->request(pool->handle(), caf::infinite, int64_t{0}))> pending;
  for (int i = 0; i < tasks; ++i)
    pending.push_back(self->request(pool->handle(), caf::infinite, iterations));
  for (auto& p : pending)
    p.receive([](int64_t) {}, [](caf::error&) { std::exit(1); });
  auto elapsed = seconds_since(start);
  if (auto err = pool->stop()) {
    std::cerr << "stopping the pool: " << troupe::describe(err) << '\n';
    std::exit(1);
  }
  return elapsed;
}

/// Runs this program again as `troupe-bench flood MODE` and returns the
/// peak resident memory it reports, in MiB.
double flood_rss_mb(const char* self_path, const char* mode) {
  int fds[2];
  if (pipe(fds) != 0)
    std::exit(1);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  std::string flood = "flood";
  std::string m = mode;
  char* argv[] = {const_cast<char*>(self_path), flood.data(), m.data(), nullptr};
  pid_t pid = 0;
  if (posix_spawn(&pid, self_path, &actions, nullptr, argv, environ) != 0)
    std::exit(1);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  std::string out;
  char buf[256];
  for (ssize_t n; (n = read(fds[0], buf, sizeof(buf))) > 0;)
    out.append(buf, static_cast<std::size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::cerr << "flood child failed: " << out << '\n';
    std::exit(1);
  }
  return std::strtod(out.c_str(), nullptr);
}

/// This process's peak resident memory in KiB: VmHWM, the high-water mark
/// of its own memory since its exec. (`getrusage`'s ru_maxrss also counts
/// the memory the spawning parent had before the exec.)
double peak_rss_kb() {
  std::ifstream status{"/proc/self/status"};
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmHWM:", 0) == 0)
      return std::strtod(line.c_str() + 6, nullptr);
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss);
}

/// The child side: 4 producers put `items` strings of 256 bytes into a
/// bounded queue (capacity 1,000) or send them to a raw CAF actor, while
/// one consumer takes them at its own pace. Prints the peak RSS in MiB.
int run_flood(const std::string& mode) {
  constexpr int producers = 4;
  constexpr int per_producer = 50'000;
  caf::actor_system_config cfg;
  troupe::configure(cfg);
  caf::actor_system sys{cfg};
  std::string payload(256, 'x');
  std::vector<std::thread> threads;
  if (mode == "bounded") {
    auto q = troupe::bounded_queue<std::string>::make(sys, 1000);
    if (!q)
      return 1;
    for (int p = 0; p < producers; ++p)
      threads.emplace_back([&] {
        caf::scoped_actor me{sys};
        for (int i = 0; i < per_producer; ++i)
          if (q->put(me, payload))
            std::exit(1);
      });
    caf::scoped_actor me{sys};
    for (int i = 0; i < producers * per_producer; ++i) {
      auto item = q->get(me);
      if (!item)
        return 1;
      burn(200);
    }
  } else {
    std::atomic<int> consumed{0};
    auto sink = sys.spawn([&consumed]() -> caf::behavior {
      return {[&consumed](const std::string&) {
        burn(200);
        ++consumed;
      }};
    });
    for (int p = 0; p < producers; ++p)
      threads.emplace_back([&] {
        for (int i = 0; i < per_producer; ++i)
          caf::anon_send(sink, payload);
      });
    while (consumed < producers * per_producer)
      std::this_thread::yield();
    caf::anon_send_exit(sink, caf::exit_reason::user_shutdown);
  }
  for (auto& t : threads)
    t.join();
  std::cout << peak_rss_kb() / 1024.0 << std::endl;
  return 0;
}

int run_pool(const options& opt, const char* self_path) {
  caf::actor_system_config cfg;
  troupe::configure(cfg);
  caf::actor_system sys{cfg};
  auto echo_worker = [](caf::actor_system& s) {
    return s.spawn([]() -> caf::behavior { return {[](int x) { return x; }}; });
  };
  constexpr std::size_t workers = 2;
  troupe::pool_options popts;
  popts.workers = workers;
  popts.dispatch = troupe::dispatch_policy::round_robin;
  auto ours = troupe::worker_pool::make(sys, echo_worker, popts);
  if (!ours)
    return 1;
  auto caf_pool = caf::actor_pool::make(
    sys.dummy_execution_unit(), workers, [&] { return echo_worker(sys); },
    caf::actor_pool::round_robin());
  auto tasks = static_cast<int>(std::min<int64_t>(opt.samples, 1'000'000));
  constexpr int window = 64;
  std::vector<double> ours_s, caf_s, ours_e, caf_e, ours_w, caf_w, one_s, two_s;
  for (int r = 0; r < opt.repeat; ++r) {
    // Alternate which goes first in each round.
    if (r % 2 == 0) {
      caf_e.push_back(event_dispatch_seconds(sys, caf_pool, tasks));
      ours_e.push_back(event_dispatch_seconds(sys, ours->handle(), tasks));
      caf_s.push_back(dispatch_seconds(sys, caf_pool, tasks));
      ours_s.push_back(dispatch_seconds(sys, ours->handle(), tasks));
      caf_w.push_back(window_seconds(sys, caf_pool, tasks, window));
      ours_w.push_back(window_seconds(sys, ours->handle(), tasks, window));
    } else {
      ours_e.push_back(event_dispatch_seconds(sys, ours->handle(), tasks));
      caf_e.push_back(event_dispatch_seconds(sys, caf_pool, tasks));
      ours_s.push_back(dispatch_seconds(sys, ours->handle(), tasks));
      caf_s.push_back(dispatch_seconds(sys, caf_pool, tasks));
      ours_w.push_back(window_seconds(sys, ours->handle(), tasks, window));
      caf_w.push_back(window_seconds(sys, caf_pool, tasks, window));
    }
    auto iterations = std::max<int64_t>(opt.increments * 20, 1);
    one_s.push_back(cpu_seconds(sys, 1, 8, iterations));
    two_s.push_back(cpu_seconds(sys, 2, 8, iterations));
  }
  caf::anon_send_exit(caf_pool, caf::exit_reason::user_shutdown);
  if (auto err = ours->stop()) {
    std::cerr << "stopping the pool: " << troupe::describe(err) << '\n';
    std::exit(1);
  }
  auto bounded_mb = flood_rss_mb(self_path, "bounded");
  auto raw_mb = flood_rss_mb(self_path, "caf");
  print("pool_dispatch_caf_s", median(caf_s), "s");
  print("pool_dispatch_troupe_s", median(ours_s), "s");
  print("pool_event_caf_s", median(caf_e), "s");
  print("pool_event_troupe_s", median(ours_e), "s");
  print("pool_window_caf_s", median(caf_w), "s");
  print("pool_window_troupe_s", median(ours_w), "s");
  print("pool_cpu_1_worker_s", median(one_s), "s");
  print("pool_cpu_2_workers_s", median(two_s), "s");
  print("flood_rss_bounded_mb", bounded_mb, "MiB");
  print("flood_rss_caf_mb", raw_mb, "MiB");
  print("pool_vs_caf_pool", median(ours_s) / median(caf_s), "x");
  print("pool_event_vs_caf_pool", median(ours_e) / median(caf_e), "x");
  print("pool_window_vs_caf_pool", median(ours_w) / median(caf_w), "x");
  print("pool_speedup_2", median(one_s) / median(two_s), "x");
  return 0;
}

void usage(std::ostream& out) {
  out << "usage: troupe-bench SUITE [options]\n"
         "\n"
         "suites:\n"
         "  local   counters (actor, std::mutex, std::atomic) and request round trips\n"
         "          (raw CAF actor, troupe::guarded)\n"
         "  pool    dispatch through troupe::worker_pool vs caf::actor_pool (--samples\n"
         "          tasks, all at once from a blocking and from an event-based caller,\n"
         "          and 64 at a time), CPU speed-up of 2 workers over 1\n"
         "          (--increments x 20 steps per task), peak memory of a 4:1 flood into a\n"
         "          bounded queue vs a CAF actor\n"
         "  ipc     troupe::ipc across processes: request round trip, one-way 64-byte\n"
         "          messages, kill -9 to down_msg, ping-pong, fan-in from 4 and 1\n"
         "          processes, 1 and 16 MiB messages (and memcpy), idle CPU, spawn_in,\n"
         "          an isolated actor's start, a process group's fan-out to 3 processes\n"
         "          and to 3 subscribers in one; then the anchors and the ratios\n"
         "  anchors baselines for the ipc figures: futex ping-pong, one cache line\n"
         "          bounced between two processes, Boost message_queue,\n"
         "          ZeroMQ over ipc://, CAF over TCP and in-process, python3\n"
         "          multiprocessing (n/a without it)\n"
         "\n"
         "options:\n"
         "  --repeat N      rounds per figure; the median is printed (default 5)\n"
         "  --increments N  increments per producer in the counter figures (default 1000000)\n"
         "  --samples N     round trips per RTT figure (default 20000)\n"
         "  --messages N    one-way 64-byte messages per throughput figure, per sender\n"
         "                  of a fan-in, and round trips of a ping-pong (default 100000)\n"
         "  --idle-seconds N  seconds of each round of the idle CPU figure (default 10)\n"
         "  --csv FILE      also write the figures to FILE as CSV, with the distribution\n"
         "                  of every round-trip sample (tools/bench-plots.sh plots it)\n";
}

/// Parses a positive count no larger than `max`.
bool parse_count(const char* text, int64_t max, int64_t& out) {
  errno = 0;
  char* end = nullptr;
  auto value = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0' || errno == ERANGE || value <= 0 || value > max)
    return false;
  out = value;
  return true;
}

} // namespace

int main(int argc, char** argv) {
  if (troupe::ipc::is_isolated_host())
    return troupe_bench::run_isolated_host(argc, argv);
  if (argc < 2) {
    usage(std::cerr);
    return 2;
  }
  std::string suite = argv[1];
  if (suite == "--help" || suite == "-h") {
    usage(std::cout);
    return 0;
  }
  if (suite == "flood" && argc == 3)
    return run_flood(argv[2]);
  if (troupe::ipc::process_pool::is_worker())
    return troupe::ipc::process_pool::run_worker(argc, argv);
  if (suite == "ipc-child")
    return troupe_bench::run_ipc_child(argc - 2, argv + 2);
  if (suite == "ipc-sender")
    return troupe_bench::run_ipc_sender(argc - 2, argv + 2);
  if (suite == "anchor-child")
    return troupe_bench::run_anchor_child(argc - 2, argv + 2);
  if (suite != "local" && suite != "pool" && suite != "anchors" && suite != "ipc") {
    std::cerr << "troupe-bench: unknown suite '" << suite << "'\n";
    usage(std::cerr);
    return 2;
  }
  constexpr int64_t int_max = std::numeric_limits<int>::max();
  options opt;
  for (int i = 2; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--csv") {
      if (i + 1 >= argc) {
        std::cerr << "troupe-bench: --csv needs a file name\n";
        return 2;
      }
      if (!troupe_bench::open_csv(argv[++i], suite)) {
        std::cerr << "troupe-bench: cannot write " << argv[i] << ": " << std::strerror(errno)
                  << '\n';
        return 2;
      }
      continue;
    }
    int64_t max = 0;
    if (flag == "--repeat" || flag == "--samples" || flag == "--messages")
      max = int_max;
    else if (flag == "--idle-seconds")
      max = 3600;
    else if (flag == "--increments")
      max = std::numeric_limits<int64_t>::max() / 2;
    else {
      std::cerr << "troupe-bench: unknown option '" << flag << "'\n";
      usage(std::cerr);
      return 2;
    }
    int64_t value = 0;
    if (i + 1 >= argc || !parse_count(argv[i + 1], max, value)) {
      std::cerr << "troupe-bench: " << flag << " needs a number from 1 to " << max << '\n';
      return 2;
    }
    ++i;
    if (flag == "--repeat")
      opt.repeat = static_cast<int>(value);
    else if (flag == "--increments")
      opt.increments = value;
    else if (flag == "--messages")
      opt.messages = static_cast<int>(value);
    else if (flag == "--idle-seconds")
      opt.idle_seconds = static_cast<int>(value);
    else
      opt.samples = static_cast<int>(value);
  }
  troupe_bench::anchor_options ipc_opt;
  ipc_opt.repeat = opt.repeat;
  ipc_opt.samples = opt.samples;
  ipc_opt.messages = opt.messages;
  ipc_opt.idle_seconds = opt.idle_seconds;
  int rc = 0;
  if (suite == "anchors")
    rc = troupe_bench::run_anchors(ipc_opt);
  else if (suite == "ipc")
    rc = troupe_bench::run_ipc(ipc_opt);
  else
    rc = suite == "local" ? run_local(opt) : run_pool(opt, "/proc/self/exe");
  if (!troupe_bench::close_csv() && rc == 0)
    rc = 1;
  return rc;
}
