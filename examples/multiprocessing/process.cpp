// process: multiprocessing.Process, with the worker as an actor in a child
// process.
//
// The chapter starts a Process that sums range(10_000_000) and hands the sum
// back to the parent. Here one program plays both parts. The parent starts
// itself again in the role "summer" (posix_spawn, never a bare fork, which is
// unsafe once CAF's threads run); troupe::ipc::program makes that child join
// the parent's group and publish its actor as "summer". The parent asks the
// actor, the sum comes back as the reply, and the child exits once its actor
// is told to stop; the parent collects its exit status, as join() does.

#include "troupe/ipc/program.hpp"

#include <caf/all.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <iostream>
#include <tuple>

namespace {

using sum_atom = caf::atom_constant<caf::atom("sum")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;

constexpr auto patience = std::chrono::seconds(30);

// The child's actor: sums range(n); answers with the sum, its process id and
// its parent's.
caf::behavior summer(caf::event_based_actor* self) {
  return {
    [](sum_atom, int64_t n) {
      int64_t sum = 0;
      for (int64_t i = 0; i < n; ++i)
        sum += i;
      return std::make_tuple(sum, int32_t{::getpid()}, int32_t{::getppid()});
    },
    [self](stop_atom) { self->quit(); },
  };
}

int parent(troupe::ipc::process_context& ctx) {
  auto child = ctx.check(ctx.spawn("summer"), "cannot start the child");
  auto worker = ctx.check(ctx.group().lookup("summer", patience), "no worker");
  // A request across processes, as with a local actor.
  caf::scoped_actor self{ctx.system()};
  bool ok = false;
  caf::error failed;
  self->request(worker, patience, sum_atom::value, int64_t{10'000'000})
    .receive(
      [&](int64_t sum, int32_t pid, int32_t ppid) {
        std::cout << "Sum: " << sum << '\n';
        std::cout << "computed in process " << pid << ", a child of process " << ppid << '\n';
        ok = sum == int64_t{49'999'995'000'000} && pid == child.pid() && ppid == ::getpid();
      },
      [&](caf::error& err) { failed = err; });
  ctx.check(failed, "the request failed");
  // Stop the child's actor; the child then exits, and join() collects it.
  self->send(worker, stop_atom::value);
  auto status = ctx.check(child.wait(patience), "the child did not exit");
  std::cout << "child process " << child.pid() << ' ' << to_string(status) << '\n';
  return ok && status.success() ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
  return troupe::ipc::program{argc, argv}
    .serve("summer", [](auto& ctx) { return ctx.system().spawn(summer); })
    .run(parent);
}
