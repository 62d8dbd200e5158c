// shared_value: multiprocessing.Value and multiprocessing.Array, a counter and
// an array whose data live in shared memory.
//
// The chapter has four processes add 1 to a shared Value a thousand times
// each: with `v.value += 1` updates get lost, with `with v.get_lock():` they
// do not. Here the parent creates a shared_value<int64_t> and a
// shared_array<int64_t> in its group and starts itself four times in the role
// "adder". Each child adds 1 a thousand times to the counter with the
// lock-free `add` (an atomic instruction: no lock needed for an integer) and
// to array[0] under the array's lock (a robust lock: a child killed while
// holding it would not wedge the others). The parent waits for the children
// and prints both totals: exactly 4000, nothing lost.

#include "troupe/ipc/program.hpp"
#include "troupe/ipc/shared_memory.hpp"

#include <caf/all.hpp>

#include <chrono>
#include <cstdint>
#include <iostream>
#include <vector>

namespace {

using troupe::ipc::process_context;
using troupe::ipc::shared_array;
using troupe::ipc::shared_value;

constexpr int processes = 4;
constexpr int adds = 1000;

int adder(process_context& ctx) {
  // Open the parent's counter and array by name (the type is checked).
  auto counter = ctx.check(shared_value<int64_t>::open(ctx.group(), "counter"), "no counter");
  auto array = ctx.check(shared_array<int64_t>::open(ctx.group(), "array"), "no array");
  for (int i = 0; i < adds; ++i) {
    counter.add(1);
    // As `with arr.get_lock(): arr[0] += 1`.
    ctx.check(array.with_lock([](caf::span<int64_t> xs) { xs[0] += 1; }), "array[0] += 1");
  }
  return 0;
}

int parent(process_context& ctx) {
  // Value('q', 0) and Array('q', [0, 0]): each its own shared memory,
  // /dev/shm/troupe.<group>.v.<name>, removed when these objects go.
  auto counter = ctx.check(shared_value<int64_t>::create(ctx.group(), "counter", 0), "counter");
  auto array = ctx.check(shared_array<int64_t>::create(ctx.group(), "array", 2), "array");
  std::vector<troupe::ipc::child_process> children;
  for (int i = 0; i < processes; ++i)
    children.push_back(ctx.check(ctx.spawn("adder"), "cannot start a child"));
  // Wait for all of them, as join() does.
  bool ok = true;
  for (auto& child : children) {
    auto status = ctx.check(child.wait(std::chrono::seconds(30)), "a child did not exit");
    if (!status.success())
      std::cerr << "child process " << child.pid() << ' ' << to_string(status) << '\n';
    ok = ok && status.success();
  }
  auto total = ctx.check(counter.get(), "counter");
  auto cell = ctx.check(array.get(0), "array[0]");
  std::cout << "counter = " << total << '\n';
  std::cout << "array[0] = " << cell << '\n';
  return ok && total == processes * adds && cell == processes * adds ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
  return troupe::ipc::program{argc, argv}.role("adder", adder).run(parent);
}
