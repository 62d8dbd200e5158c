#pragma once

// Every operation of every managed container, in a mix that several processes
// run at once against the same owners (manager_test.cpp runs it in the test
// process and in two `troupe-ipc-child mixed` children). Each round leaves a
// known trace, so the end state says whether any step was lost or torn.

#include "messages.hpp"
#include "troupe/ipc/error.hpp"
#include "troupe/ipc/managed_array.hpp"
#include "troupe/ipc/managed_dict.hpp"
#include "troupe/ipc/managed_list.hpp"
#include "troupe/ipc/managed_namespace.hpp"
#include "troupe/ipc/managed_queue.hpp"
#include "troupe/ipc/managed_types.hpp"
#include "troupe/ipc/managed_value.hpp"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace troupe::test::ipc {

/// The config of every process that uses the managed containers.
struct manager_config : config {
  manager_config() {
    troupe::ipc::add_managed_types(*this);
  }
};

using sdict = troupe::ipc::managed_dict<std::string, std::string>;
using slist = troupe::ipc::managed_list<int32_t>;
using svalue = troupe::ipc::managed_value<int64_t>;
using sarray = troupe::ipc::managed_array<int64_t>;
using squeue = troupe::ipc::managed_queue<int32_t>;

/// Cells of the mixed workload's array: 0 is added to by everyone, cell
/// 1 + k belongs to the k-th process.
constexpr int64_t mixed_array_cells = 4;

/// Handles of the containers the mixed workload uses.
struct mixed_containers {
  sdict dict;
  slist list;
  svalue value;
  sarray array;
  squeue queue;
  troupe::ipc::managed_namespace ns;
};

/// Runs `rounds` rounds of every container operation as process `tag`, which
/// owns array cell `cell` (1 to 3). What the end state holds afterwards, for
/// P processes that ran it (see `check_mixed`):
/// - dict: `shared`, and per process `<tag>sd` and `<tag>u<i>` for each round;
/// - list: the appended and extended `0..rounds-1`, three times per process,
///   and none of the -1s that each round inserts and takes out again;
/// - value: 2 * P * rounds (one `add`, one `compare_and_set` per round);
/// - array: cell 0 is P * rounds, a process's own cell `rounds - 1`;
/// - queue: empty, nothing leased, `join` returns at once;
/// - namespace: `<tag>f` is `rounds - 1`, no `<tag>tmp`.
/// Returns the first error, or `troupe::ipc::errc::value_error` for a wrong answer.
inline caf::error run_mixed(const mixed_containers& c, int32_t rounds, const std::string& tag,
                            int64_t cell) {
  caf::error err;
  // Keeps the first error; `what` says which step saw it.
  auto fail = [&](const std::string& what, caf::error e) {
    if (!err)
      err = make_error(troupe::ipc::errc::value_error, tag + ": " + what + ": " + describe(e));
    return false;
  };
  auto wrong = [&](const std::string& what) {
    return fail(what, make_error(troupe::ipc::errc::value_error, "wrong answer"));
  };
  auto ok = [&](const std::string& what, caf::error e) {
    return e ? fail(what, std::move(e)) : true;
  };
  auto equal = [&](const std::string& what, auto res, const auto& want) {
    if (!res)
      return fail(what, std::move(res.error()));
    return *res == want ? true : wrong(what);
  };
  auto done = [&](const std::string& what, auto res) {
    return res ? true : fail(what, std::move(res.error()));
  };
  auto run = [](bool) {}; // runs a chain of steps; `err` has the outcome
  for (int32_t i = 0; i < rounds && !err; ++i) {
    auto n = std::to_string(i);
    auto key = tag + n;
    // dict: every operation but clear (the test clears at the end).
    run(ok("dict.set", c.dict.set(key, "v" + n)) && equal("dict.at", c.dict.at(key), "v" + n)
        && equal("dict.contains", c.dict.contains(key), true)
        && equal("dict.setdefault", c.dict.setdefault(tag + "sd", tag), tag)
        && done("dict.setdefault shared", c.dict.setdefault("shared", tag))
        && equal("dict.pop", c.dict.pop(key), "v" + n)
        && equal("dict.contains after pop", c.dict.contains(key), false)
        && ok("dict.update", c.dict.update({{tag + "u" + n, "u"}}))
        && done("dict.len", c.dict.len()) && done("dict.keys", c.dict.keys())
        && done("dict.items", c.dict.items()));
    // list: the -1s sit at the front (inserted at 0), the numbers behind.
    run(!err && ok("list.append", c.list.append(i)) && ok("list.extend", c.list.extend({i, i}))
        && ok("list.insert", c.list.insert(0, -1)) && ok("list.insert", c.list.insert(0, -1))
        && equal("list.get", c.list.get(0), -1) && ok("list.set", c.list.set(0, -1))
        && equal("list.index", c.list.index(-1), int64_t{0}) && ok("list.remove", c.list.remove(-1))
        && equal("list.pop", c.list.pop(0), -1) && done("list.len", c.list.len())
        && done("list.slice", c.list.slice(0, 2)));
    run(i % 50 != 0 || err || done("list.snapshot", c.list.snapshot()));
    // value: add, and an increment by compare-and-set.
    if (!err && done("value.add", c.value.add(1))) {
      for (int attempt = 0;; ++attempt) {
        auto x = c.value.get();
        if (!done("value.get", x))
          break;
        auto swapped = c.value.compare_and_set(*x, *x + 1);
        if (!done("value.compare_and_set", swapped) || *swapped)
          break;
        if (attempt == 10000) {
          wrong("value.compare_and_set never succeeded");
          break;
        }
      }
    }
    // array: a shared cell and one of this process's own.
    run(!err && done("array.add", c.array.add(0, 1)) && ok("array.set", c.array.set(cell, i))
        && equal("array.get", c.array.get(cell), int64_t{i})
        && equal("array.len", c.array.len(), mixed_array_cells)
        && done("array.slice", c.array.slice(0, 2)) && done("array.snapshot", c.array.snapshot()));
    // queue: what goes in comes out, by get and task_done or by lease and ack.
    if (!err && ok("queue.put", c.queue.put(i)) && done("queue.get", c.queue.get())
        && ok("queue.task_done", c.queue.task_done()) && ok("queue.put", c.queue.put(i))) {
      auto item = c.queue.get_leased();
      run(done("queue.get_leased", item) && ok("queue.ack", c.queue.ack(item->id))
          && done("queue.qsize", c.queue.qsize())
          && done("queue.leased_count", c.queue.leased_count()));
    }
    // namespace: a field of this process's own, and one made and erased.
    run(!err && ok("ns.set", c.ns.set(tag + "f", i))
        && equal("ns.get", c.ns.get<int32_t>(tag + "f"), i)
        && ok("ns.set tmp", c.ns.set(tag + "tmp", n))
        && equal("ns.contains", c.ns.contains(tag + "tmp"), true)
        && ok("ns.erase", c.ns.erase(tag + "tmp")) && done("ns.names", c.ns.names()));
  }
  return err;
}

} // namespace troupe::test::ipc
