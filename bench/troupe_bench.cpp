// troupe-bench: figures for troupe next to the baselines they replace, all
// measured in the same run on the same machine.
//
//   troupe-bench local [--repeat N] [--increments N] [--samples N]
//
// Prints one line per figure, `<name> <value> <unit>`, then ratio lines
// `<name> <ratio> x`. Every figure is the median of its runs; the machines
// this runs on are shared and noisy, so compare ratios, not absolute values.

#include "troupe/configure.hpp"
#include "troupe/guarded.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
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
  std::cout << name << ' ' << value << ' ' << unit << std::endl;
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
  troupe::guarded<int> state{sys, 0};
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

void usage(std::ostream& out) {
  out << "usage: troupe-bench SUITE [options]\n"
         "\n"
         "suites:\n"
         "  local   counters (actor, std::mutex, std::atomic) and request round trips\n"
         "          (raw CAF actor, troupe::guarded)\n"
         "\n"
         "options:\n"
         "  --repeat N      rounds per figure; the median is printed (default 5)\n"
         "  --increments N  increments per producer in the counter figures (default 1000000)\n"
         "  --samples N     round trips per RTT figure (default 20000)\n";
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
  if (argc < 2) {
    usage(std::cerr);
    return 2;
  }
  std::string suite = argv[1];
  if (suite == "--help" || suite == "-h") {
    usage(std::cout);
    return 0;
  }
  if (suite != "local") {
    std::cerr << "troupe-bench: unknown suite '" << suite << "'\n";
    usage(std::cerr);
    return 2;
  }
  constexpr int64_t int_max = std::numeric_limits<int>::max();
  options opt;
  for (int i = 2; i < argc; ++i) {
    std::string flag = argv[i];
    int64_t max = 0;
    if (flag == "--repeat" || flag == "--samples")
      max = int_max;
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
    else
      opt.samples = static_cast<int>(value);
  }
  return run_local(opt);
}
