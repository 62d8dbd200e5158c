// troupe-bench ipc: troupe's cross-process figures next to the anchors of
// ipc_anchors.cpp, measured in the same run, and the ratios between them.
//
// The other process is this program again (/proc/self/exe ipc-child), started
// by troupe::ipc::node::spawn (posix_spawn) and joined to the bench's group.

#include "ipc_bench.hpp"

#include "ipc_anchors.hpp"
#include "troupe/error.hpp"
#include "troupe/ipc/configure.hpp"
#include "troupe/ipc/node.hpp"
#include "troupe/ipc/process_pool.hpp"
#include "troupe/ipc/shared_dict.hpp"

#include <caf/all.hpp>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace troupe_bench {

namespace {

using clock_type = std::chrono::steady_clock;
using count_atom = caf::atom_constant<caf::atom("count")>;
using leave_atom = caf::atom_constant<caf::atom("leave")>;

struct config : caf::actor_system_config {
  config() {
    troupe::ipc::configure(*this);
    set("scheduler.max-threads", 2);
  }
};

double median(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  auto n = xs.size();
  return n % 2 == 1 ? xs[n / 2] : (xs[n / 2 - 1] + xs[n / 2]) / 2;
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

/// A child process in the bench's group, serving `name`.
struct peer_process {
  troupe::ipc::child_process proc;
  caf::actor pong;
  caf::actor ctl;

  peer_process(troupe::ipc::node& n, const std::string& name) {
    proc = check(n.spawn_self({"ipc-child", name}), "spawn");
    pong = check(n.lookup(name, std::chrono::seconds(10)), "lookup");
    ctl = check(n.lookup(name + ".ctl", std::chrono::seconds(10)), "lookup");
  }

  void stop(caf::scoped_actor& self) {
    self->send(ctl, leave_atom::value);
    if (!proc.wait(std::chrono::seconds(10)))
      proc.kill(SIGKILL);
  }
};

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
  return median(rtts);
}

double msgs_per_s(caf::scoped_actor& self, const caf::actor& pong, int messages, int64_t& total) {
  const std::string payload(64, 'x');
  auto start = clock_type::now();
  for (int i = 0; i < messages; ++i)
    self->send(pong, payload);
  total += messages;
  // Messages from one sender arrive in order: this answer comes after the
  // last string was counted.
  int64_t seen = -1;
  self->request(pong, caf::infinite, count_atom::value)
    .receive([&](int64_t n) { seen = n; }, [](caf::error&) {});
  if (seen != total)
    throw std::runtime_error("messages were lost: counted " + std::to_string(seen) + " of "
                             + std::to_string(total));
  return messages / std::chrono::duration<double>(clock_type::now() - start).count();
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
  pool.shutdown();
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
  auto dict = troupe::ipc::shared_dict<std::string, int64_t>::make(sys);
  caf::scoped_actor self{sys};
  if (n->publish(name, pong) || n->publish(name + ".ctl", caf::actor{self})
      || n->publish(name + ".dict", dict.handle())) {
    dict.stop();
    self->send_exit(pong, caf::exit_reason::kill);
    return 3;
  }
  self->receive([](leave_atom) {});
  self->send_exit(pong, caf::exit_reason::kill);
  dict.stop();
  return 0;
}

int run_ipc(const anchor_options& opt) {
  auto print = [](const std::string& name, double value, const char* unit) {
    std::cout << name << ' ' << value << ' ' << unit << std::endl;
  };
  double ipc_rtt = 0;
  double ipc_msgs = 0;
  double lost_ms = 0;
  double pool_one_s = 0;
  double dict_set_us = 0;
  double pool_two_s = 0;
  try {
    config cfg;
    caf::actor_system sys{cfg};
    caf::scoped_actor self{sys};
    auto group = "bench-" + std::to_string(::getpid());
    troupe::ipc::group_options gopts;
    gopts.quiet = true;
    gopts.max_nodes = 32; // victims and pool workers come and go
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
      // A shared dict in the child, set from here (the Manager().dict() case).
      troupe::ipc::shared_dict<std::string, int64_t> dict{
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
        sets.push_back(median(run));
      }
      // Every set reached the owner: the last one is what it holds.
      if (auto last = dict.get("key"); !last || *last != opt.samples - 1)
        throw std::runtime_error("dict set: the owner does not hold the last value set");
      dict_set_us = median(sets);
      peer.stop(self);
    }
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
  measure("bip_mq_rtt_us", "us", bip_mq_rtt_us, opt);
  measure("bip_mq_msgs_per_s", "msgs/s", bip_mq_msgs_per_s, opt);
  // CAF with its default scheduler, and with the setting troupe::ipc::configure
  // makes (like for like: the ratios below use these).
  measure("caf_tcp_rtt_us", "us", caf_tcp_rtt_us, opt);
  measure("caf_local_rtt_us", "us", caf_local_rtt_us, opt);
  measure("caf_local_msgs_per_s", "msgs/s", caf_local_msgs_per_s, opt);
  auto tcp = measure("caf_tcp_same_sched_rtt_us", "us", caf_tcp_rtt_us, tuned);
  auto local = measure("caf_local_same_sched_rtt_us", "us", caf_local_rtt_us, tuned);
  measure("caf_local_same_sched_msgs_per_s", "msgs/s", caf_local_msgs_per_s, tuned);
  auto py_rtt = measure_py("py_manager_rtt_us", "us", py_manager_rtt_us);
  auto py_queue = measure_py("py_queue_msgs_per_s", "msgs/s", py_queue_msgs_per_s);
  auto ratio = [&](const char* name, std::optional<double> num, std::optional<double> den) {
    if (num && den && *den > 0)
      print(name, *num / *den, "x");
    else
      std::cout << name << " n/a" << std::endl;
  };
  ratio("ipc_rtt_vs_py_manager", ipc_rtt, py_rtt);
  ratio("ipc_rtt_vs_caf_tcp", ipc_rtt, tcp);
  ratio("ipc_rtt_vs_caf_local", ipc_rtt, local);
  ratio("ipc_msgs_vs_py_queue", ipc_msgs, py_queue);
  ratio("manager_vs_py_manager", dict_set_us, py_rtt);
  ratio("pool_map_speedup_2", pool_one_s, pool_two_s);
  return rc;
}

} // namespace troupe_bench
