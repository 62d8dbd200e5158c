// manager: multiprocessing.Manager's shared list and dict, as actors reached
// from another process. The chapter's Manager holds a list [1, 2, 3] and a
// dict; a child process appends 4 and sets d['key'] = 'value' through proxies,
// and the parent prints both. Here the parent publishes each container's owner
// actor and starts itself again in the role "child", which calls them through
// the same handle classes: each call is one atomic step on the owner, and an
// error raised there (Python's KeyError) comes back as a troupe error.

#include "troupe/error.hpp"
#include "troupe/ipc/managed_dict.hpp"
#include "troupe/ipc/managed_list.hpp"
#include "troupe/ipc/managed_types.hpp"
#include "troupe/ipc/program.hpp"

#include <caf/all.hpp>

#include <chrono>
#include <cstdint>
#include <iostream>
#include <string>
#include <utility>

namespace {

using troupe::ipc::process_context;
using managed_list = troupe::ipc::managed_list<int32_t>;
using managed_dict = troupe::ipc::managed_dict<std::string, std::string>;

constexpr auto patience = std::chrono::seconds(30);

int child(process_context& ctx) {
  auto list = managed_list{ctx.check(ctx.group().lookup("list", patience), "no list")};
  auto dict = managed_dict{ctx.check(ctx.group().lookup("dict", patience), "no dict")};
  ctx.check(list.append(4), "append");
  ctx.check(dict.set("key", "value"), "set");
  return 0;
}

int parent(process_context& ctx) {
  // The owners live in this process; the publications stop them at the end.
  auto list = managed_list::make(ctx.system(), {1, 2, 3});
  auto dict = managed_dict::make(ctx.system());
  auto published_list = ctx.check(ctx.group().publish("list", list.handle()), "publish");
  auto published_dict = ctx.check(ctx.group().publish("dict", dict.handle()), "publish");
  auto status = ctx.check(ctx.check(ctx.spawn("child"), "spawn").wait(patience), "wait");
  auto items = ctx.check(list.snapshot(), "list");
  auto pairs = ctx.check(dict.items(), "dict");
  const char* sep = "[";
  for (auto x : items)
    std::cout << std::exchange(sep, ", ") << x;
  std::cout << "]\n";
  sep = "{";
  for (auto& [k, v] : pairs)
    std::cout << std::exchange(sep, ", ") << '\'' << k << "': '" << v << '\'';
  std::cout << "}\n";
  // An error raised in the owner comes back to the caller.
  auto missing = dict.at("missing"); // d["missing"]
  if (!missing)
    std::cout << "d['missing'] failed: " << troupe::describe(missing.error()) << '\n';
  return status.success() && !missing && items == std::vector<int32_t>{1, 2, 3, 4} ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
  return troupe::ipc::program{argc, argv}
    .configure(troupe::ipc::add_managed_types) // the containers' elements travel
    .role("child", child)
    .run(parent);
}
