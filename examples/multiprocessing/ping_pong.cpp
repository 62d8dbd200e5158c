// ping_pong: two processes talking back and forth, as the chapter does with a
// multiprocessing.Pipe, here as requests to an actor in the other process.
//
// One program plays both parts. The parent starts itself again in the role
// "ponger", whose process publishes a ponger actor (troupe::ipc::program does
// the joining and publishing). The parent then makes 10,000 blocking requests
// to it, one after the other, and prints the median and 99th percentile round
// trip; the same loop against a ponger in its own process shows what crossing
// the process boundary costs.

#include "troupe/error.hpp"
#include "troupe/ipc/program.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iomanip>
#include <iostream>
#include <vector>

namespace {

using ping_atom = caf::atom_constant<caf::atom("ping")>;
using pong_atom = caf::atom_constant<caf::atom("pong")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;

constexpr auto patience = std::chrono::seconds(30);
constexpr int warm_up = 1'000;
constexpr int rounds = 10'000;

// Answers each ping with a pong that carries the same number.
caf::behavior ponger(caf::event_based_actor* self) {
  return {
    [](ping_atom, int32_t i) { return std::make_tuple(pong_atom::value, i); },
    [self](stop_atom) { self->quit(); },
  };
}

// Makes `n` requests to `dest`, one at a time, and returns their round trips
// in microseconds (sorted), or nothing if one failed.
std::vector<double> ping(caf::scoped_actor& self, const caf::actor& dest, int n) {
  std::vector<double> res;
  for (int32_t i = 0; i < n; ++i) {
    auto start = std::chrono::steady_clock::now();
    bool ok = false;
    self->request(dest, patience, ping_atom::value, i)
      .receive([&](pong_atom, int32_t j) { ok = j == i; },
               [&](caf::error& err) { std::cerr << "ping: " << troupe::describe(err) << '\n'; });
    if (!ok)
      return {};
    std::chrono::duration<double, std::micro> took = std::chrono::steady_clock::now() - start;
    res.push_back(took.count());
  }
  std::sort(res.begin(), res.end());
  return res;
}

int parent(troupe::ipc::process_context& ctx) {
  auto child = ctx.check(ctx.spawn("ponger"), "cannot start the child");
  auto remote = ctx.check(ctx.group().lookup("ponger", patience), "no ponger");
  // Warm up (the first messages set up the proxies and page in the rings),
  // then measure.
  caf::scoped_actor self{ctx.system()};
  auto trips =
    ping(self, remote, warm_up).empty() ? std::vector<double>{} : ping(self, remote, rounds);
  if (trips.empty())
    return 1;
  std::cout << std::fixed << std::setprecision(1);
  std::cout << "median round trip: " << trips[trips.size() / 2] << " us over " << rounds
            << " requests (p99 " << trips[trips.size() * 99 / 100] << " us)\n";
  // For comparison: the same loop to a ponger in this process.
  auto local = ctx.system().spawn(ponger);
  ping(self, local, warm_up);
  auto local_trips = ping(self, local, rounds);
  self->send(local, stop_atom::value);
  if (local_trips.empty())
    return 1;
  std::cout << "same ponger in this process: median " << local_trips[local_trips.size() / 2]
            << " us\n";
  // Stop the child's ponger; the child then exits.
  self->send(remote, stop_atom::value);
  auto status = ctx.check(child.wait(patience), "the child did not exit");
  std::cout << "child process " << child.pid() << ' ' << to_string(status) << '\n';
  return status.success() ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
  return troupe::ipc::program{argc, argv}
    .serve("ponger", [](auto& ctx) { return ctx.system().spawn(ponger); })
    .run(parent);
}
