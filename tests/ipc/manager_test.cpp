// Tests of the managed containers as a whole, Python's Manager: every
// container's handle on an empty handle, owners in another process,
// concurrent writers in three processes, and callers that read their answers
// from the rings themselves without losing a wake-up of the reader thread.
// Each container's own operations are tested in managed_<container>_test.cpp.

#include "manager_fixture.hpp"
#include "troupe/ipc/managed_array.hpp"
#include "troupe/ipc/managed_dict.hpp"
#include "troupe/ipc/managed_list.hpp"
#include "troupe/ipc/managed_namespace.hpp"
#include "troupe/ipc/managed_queue.hpp"
#include "troupe/ipc/managed_value.hpp"
#include "troupe/ipc/sync.hpp"
#include "troupe/ipc/testing/node_hooks.hpp"

#include <signal.h>

#include <future>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace troupe::test::ipc;

TEST_SUITE("ipc.manager") {

  TEST_CASE("a call on an empty handle fails instead of hanging") {
    sdict sut;
    CHECK(troupe::is(sut.at("a").error(), errc::invalid_argument));
    squeue q;
    CHECK(troupe::is(q.get_leased().error(), errc::invalid_argument));
    // The sync primitives answer the same: one error for an empty handle.
    troupe::ipc::event ev;
    CHECK(troupe::is(ev.set(), errc::invalid_argument));
    troupe::ipc::lock lk;
    manager_fixture f{"emptylock"};
    CHECK(troupe::is(lk.acquire(f.self, milliseconds(10)).error(), errc::invalid_argument));
  }

  TEST_CASE("stop ends a container in another process and returns once it has ended") {
    manager_fixture f{"remstop"};
    auto n = f.make_node();
    auto child = f.start(n, {"host", "m"});
    auto d = sdict{f.find(n, "m.dict")};
    auto l = slist{f.find(n, "m.list")};
    REQUIRE_FALSE(d.set("key", "value"));
    REQUIRE_FALSE(d.stop(deadline));
    // Gone for every caller at once, not eventually.
    auto after = d.len(deadline);
    REQUIRE_FALSE(after);
    CHECK(
      (troupe::is(after.error(), errc::owner_down) || troupe::is(after.error(), errc::peer_lost)));
    // The process and its other containers live on.
    CHECK(l.len(deadline) == int64_t{0});
    f.stop_host(n, child);
  }

  TEST_CASE("containers in another process answer and their errors come back") {
    manager_fixture f{"remote"};
    auto n = f.make_node();
    auto child = f.start(n, {"host", "m"});
    auto d = sdict{f.find(n, "m.dict")};
    auto l = slist{f.find(n, "m.list")};
    auto v = svalue{f.find(n, "m.value")};
    auto q = squeue{f.find(n, "m.queue")};
    auto ns = managed_namespace{f.find(n, "m.ns")};
    auto arr = sarray{f.find(n, "m.array")};
    REQUIRE_FALSE(d.set("key", "value"));
    CHECK(d.items() == std::vector<std::pair<std::string, std::string>>{{"key", "value"}});
    CHECK(troupe::describe(d.at("nope").error())
          == "troupe.key_error: key 'nope' is not in the dict");
    REQUIRE_FALSE(l.extend({1, 2}));
    CHECK(l.snapshot() == std::vector<int32_t>{1, 2});
    CHECK(troupe::is(l.get(9).error(), troupe::ipc::errc::index_error));
    CHECK(v.add(2) == int64_t{2});
    CHECK(arr.add(-1, 4) == int64_t{4});
    CHECK(arr.snapshot() == std::vector<int64_t>{0, 0, 4});
    CHECK(troupe::describe(arr.get(3).error())
          == "troupe.index_error: get: index 3 out of range for an array of 3");
    REQUIRE_FALSE(q.put(11));
    CHECK(q.get() == int32_t{11});
    CHECK(troupe::is(q.get(milliseconds(10)).error(), troupe::ipc::errc::empty));
    REQUIRE_FALSE(ns.set("pi", 3.25));
    CHECK(ns.get<double>("pi") == 3.25);
    CHECK(troupe::is(ns.get<double>("e").error(), troupe::ipc::errc::key_error));
    f.stop_host(n, child);
  }

  TEST_CASE(
    "an answer larger than a quarter of a ring comes back from an owner in another process") {
    // The owner runs on the other node's reader thread, which never waits
    // for ring space: its answer (400 KB, a 1 MiB ring takes 256 KiB per
    // record) goes out in pieces as the ring has room.
    manager_fixture f{"bigans"};
    auto n = f.make_node();
    auto child = f.start(n, {"host", "m"});
    auto sut = slist{f.find(n, "m.list")};
    std::vector<int32_t> items(100000);
    for (size_t i = 0; i < items.size(); ++i)
      items[i] = static_cast<int32_t>(i);
    REQUIRE_FALSE(sut.extend(items));
    for (int round = 0; round < 3; ++round) {
      auto got = sut.snapshot(deadline);
      REQUIRE_MESSAGE(got, troupe::describe(got.error()));
      CHECK(*got == items);
      // Later answers to the same caller are not stuck behind it.
      CHECK(sut.len(deadline) == int64_t{100000});
    }
    f.stop_host(n, child);
  }

  TEST_CASE("large answers from this process's reader thread and polling callers reach a child") {
    // A child reads a list owned here (its owner runs on this node's
    // readers, or on a caller of this process that reads the rings) while
    // this thread calls an owner in another child, so that both kinds of
    // reader write the large answers.
    manager_fixture f{"bigout"};
    auto n = f.make_node();
    auto sut = slist::make(f.sys);
    f.publish(n, "p.list", sut);
    std::vector<int32_t> items(100000);
    for (size_t i = 0; i < items.size(); ++i)
      items[i] = static_cast<int32_t>(i);
    REQUIRE_FALSE(sut.extend(items));
    auto host = f.start(n, {"host", "m"});
    auto value = svalue{f.find(n, "m.value")};
    auto reader = f.start(n, {"snapshot", "p", "100000", "5"});
    caf::expected<troupe::ipc::exit_status> status = caf::error{};
    auto until = std::chrono::steady_clock::now() + deadline;
    while (!(status = reader.wait(milliseconds(0))) && std::chrono::steady_clock::now() < until)
      REQUIRE(value.get(deadline));
    REQUIRE_MESSAGE(status, troupe::describe(status.error()));
    CHECK(status->success());
    f.stop_host(n, host);
  }

  TEST_CASE("every container operation, from three processes at once, loses and tears nothing") {
    manager_fixture f{"concurrent"};
    auto n = f.make_node();
    mixed_containers c{sdict::make(f.sys),  slist::make(f.sys),
                       svalue::make(f.sys), sarray::make(f.sys, mixed_array_cells),
                       squeue::make(f.sys), managed_namespace::make(f.sys)};
    f.publish(n, "m.dict", c.dict);
    f.publish(n, "m.list", c.list);
    f.publish(n, "m.value", c.value);
    f.publish(n, "m.array", c.array);
    f.publish(n, "m.queue", c.queue);
    f.publish(n, "m.ns", c.ns);
    constexpr int32_t rounds = 100;
    auto a = f.start(n, {"mixed", "m", std::to_string(rounds), "a", "2"});
    auto b = f.start(n, {"mixed", "m", std::to_string(rounds), "b", "3"});
    // This process runs the same mix at the same time.
    auto mine = run_mixed(c, rounds, "p", 1);
    CHECK_MESSAGE(!mine, troupe::describe(mine));
    // Each round of each process adds 2 to the shared value.
    auto progress = [&] { return c.value.get(); };
    check_exits_cleanly_while(a, progress);
    check_exits_cleanly_while(b, progress);
    constexpr int64_t procs = 3;
    // dict: "shared", and per process "<tag>sd" and one "<tag>u<i>" per round.
    CHECK(c.dict.len() == procs * (rounds + 1) + 1);
    for (auto tag : {"p", "a", "b"}) {
      CHECK(c.dict.get(std::string{tag} + "sd") == std::string{tag});
      CHECK(c.dict.contains(std::string{tag} + "u" + std::to_string(rounds - 1)) == true);
      CHECK(c.ns.get<int32_t>(std::string{tag} + "f") == rounds - 1);
      CHECK(c.ns.contains(std::string{tag} + "tmp") == false);
    }
    // list: 0..rounds-1 three times per process, no -1 left.
    auto all = c.list.snapshot();
    REQUIRE(all);
    CHECK(all->size() == static_cast<size_t>(3 * procs * rounds));
    int64_t sum = 0;
    for (auto x : *all) {
      CHECK(x >= 0);
      sum += x;
    }
    CHECK(sum == 3 * procs * rounds * (rounds - 1) / 2);
    CHECK(c.value.get() == 2 * procs * rounds);
    CHECK(c.array.snapshot()
          == std::vector<int64_t>{procs * rounds, rounds - 1, rounds - 1, rounds - 1});
    CHECK(c.queue.qsize() == int64_t{0});
    CHECK(c.queue.leased_count() == int64_t{0});
    CHECK_FALSE(c.queue.join(deadline));
    REQUIRE_FALSE(c.dict.clear());
    CHECK(c.dict.len() == int64_t{0});
  }

  TEST_CASE("a blocking caller reads its answer from the rings, and no wake-up is lost") {
    manager_fixture f{"caller-reads"};
    // Callers poll up to 5 ms: long enough for an answer even on a loaded
    // machine.
    auto n = f.make_node(spinning(milliseconds(5)));
    auto child = f.start(n, {"host", "m"});
    auto d = sdict{f.find(n, "m.dict")};
    int calls = 0;
    CHECK(eventually([&] {
      auto key = "k" + std::to_string(calls++);
      REQUIRE_FALSE(d.set(key, key));
      REQUIRE(d.get(key) == key);
      return n.stats().frames_read_by_callers > 0;
    }));
    CHECK(d.len() == int64_t{calls});
    CHECK(n.stats().late_wakeups == 0);
    f.stop_host(n, child);
  }

  TEST_CASE("answers that come after the caller stopped reading wake the reader") {
    manager_fixture f{"caller-hands-back"};
    // With the shortest spin, callers hand the rings back before most
    // answers arrive, and the reader thread parks between calls: each of
    // those answers must ring it awake, or the call waits for the reader's
    // timeout (counted in late_wakeups).
    auto n = f.make_node(spinning(std::chrono::microseconds(1)));
    auto child = f.start(n, {"host", "m"});
    auto v = svalue{f.find(n, "m.value")};
    constexpr int64_t calls = 1000;
    for (int64_t i = 1; i <= calls; ++i)
      REQUIRE(v.add(1) == i);
    auto stats = n.stats();
    CHECK(stats.late_wakeups == 0);
    CHECK(stats.frames_received >= calls);
    f.stop_host(n, child);
  }

  TEST_CASE("callers reading the rings deliver requests for this process's owners too") {
    manager_fixture f{"caller-serves"};
    // A short spin: the polling caller hands the rings back often, many
    // times while B's requests keep coming.
    auto n = f.make_node(spinning(std::chrono::microseconds(20)));
    // This process owns p.value, which child B adds to; child A owns m.*,
    // which two threads of this process add to at the same time. B's
    // requests reach p.value through whichever thread reads the rings: the
    // reader, or the caller that polls for A's answer (one at a time).
    auto mine = svalue::make(f.sys);
    f.publish(n, "p.value", mine);
    auto a = f.start(n, {"host", "m"});
    auto theirs = svalue{f.find(n, "m.value")};
    constexpr int32_t per_process = 2000;
    auto b = f.start(n, {"add", "p", std::to_string(per_process)});
    auto add_many = [&] {
      for (int32_t i = 0; i < per_process; ++i)
        if (auto sum = theirs.add(1); !sum)
          return sum.error();
      return caf::error{};
    };
    auto first = std::async(std::launch::async, add_many);
    auto second = std::async(std::launch::async, add_many);
    REQUIRE(first.wait_for(deadline) == std::future_status::ready);
    REQUIRE(second.wait_for(deadline) == std::future_status::ready);
    auto first_err = first.get();
    auto second_err = second.get();
    CHECK_MESSAGE(!first_err, troupe::describe(first_err));
    CHECK_MESSAGE(!second_err, troupe::describe(second_err));
    check_exits_cleanly_while(b, [&] { return mine.get(); });
    CHECK(mine.get() == int64_t{per_process});
    CHECK(theirs.get() == int64_t{2 * per_process});
    CHECK(n.stats().late_wakeups == 0);
    f.stop_host(n, a);
  }

  TEST_CASE("a node that is gone leaves nothing attached to the actors it made proxies of") {
    manager_fixture f{"notices"};
    auto n = f.make_node();
    // A long-lived owner here; each child makes a proxy of it (which
    // attaches a kill notice to it here), adds, and leaves or is killed.
    auto mine = svalue::make(f.sys);
    f.publish(n, "p.value", mine);
    auto before = troupe::ipc::testing::kill_notices();
    constexpr int children = 6;
    for (int i = 0; i < children; ++i) {
      auto child = f.start(n, {"add", "p", "1"});
      if (i % 2 == 0) {
        check_exits_cleanly(child);
      } else {
        REQUIRE(eventually([&] { return mine.get() == int64_t{i + 1}; }));
        REQUIRE_FALSE(child.kill(SIGKILL));
        REQUIRE(child.wait(deadline));
      }
      REQUIRE(eventually([&] { return mine.get() == int64_t{i + 1}; }));
    }
    // Each child's notice goes with its loss: none is left on the owner.
    CHECK(eventually([&] { return troupe::ipc::testing::kill_notices() == before; }));
    CHECK(mine.get() == int64_t{children});
  }

  TEST_CASE("a functor attached to a remote actor runs on the reader thread, not on a caller's") {
    manager_fixture f{"caller-functor"};
    // A caller waits 20 ms for an item of an empty queue and reads the rings
    // all that time: the actor's end comes in while it does.
    auto n = f.make_node(spinning(milliseconds(50)));
    auto child = f.start(n, {"host", "m"});
    auto q = squeue{f.find(n, "m.queue")};
    auto doomed = f.find(n, "m.ns");
    // The caller may hold locks of its own that such a functor takes: the
    // functor must not run inside the caller's call.
    std::atomic<bool> ran{false};
    std::thread::id ran_on;
    doomed->attach_functor([&](const caf::error&) {
      ran_on = std::this_thread::get_id();
      ran = true;
    });
    std::atomic<int64_t> answered{0};
    auto until = std::chrono::steady_clock::now() + deadline;
    auto caller = std::async(std::launch::async, [&] {
      caf::error err;
      while (!ran.load() && std::chrono::steady_clock::now() < until) {
        auto item = q.get(milliseconds(20));
        if (item || !troupe::is(item.error(), troupe::ipc::errc::empty)) {
          err = item ? troupe::make_error(errc::invalid_argument, "an item in an empty queue")
                     : item.error();
          break;
        }
        ++answered;
      }
      return std::make_pair(std::this_thread::get_id(), err);
    });
    REQUIRE(eventually([&] { return answered.load() >= 1; }));
    f.self->send_exit(doomed, caf::exit_reason::kill);
    REQUIRE(caller.wait_for(deadline) == std::future_status::ready);
    auto [caller_id, err] = caller.get();
    CHECK_MESSAGE(!err, troupe::describe(err));
    REQUIRE(ran.load());
    CHECK(ran_on != caller_id);
    f.stop_host(n, child);
  }

  TEST_CASE("a node that leaves while a caller reads its rings fails the calls with peer_lost") {
    manager_fixture f{"caller-leave"};
    // One of the two callers is reading the rings when the node leaves.
    auto n = f.make_node(spinning(milliseconds(50)));
    auto child = f.start(n, {"host", "m"});
    auto v = svalue{f.find(n, "m.value")};
    std::atomic<int64_t> answered{0};
    auto until = std::chrono::steady_clock::now() + 2 * deadline;
    auto call_until_failure = [&] {
      while (std::chrono::steady_clock::now() < until) {
        auto sum = v.add(1);
        if (!sum)
          return sum.error();
        ++answered;
      }
      return caf::error{}; // not peer_lost: the check below fails
    };
    auto first = std::async(std::launch::async, call_until_failure);
    auto second = std::async(std::launch::async, call_until_failure);
    REQUIRE(eventually([&] { return answered.load() >= 100; }));
    n.leave();
    REQUIRE(first.wait_for(deadline) == std::future_status::ready);
    REQUIRE(second.wait_for(deadline) == std::future_status::ready);
    auto first_err = first.get();
    auto second_err = second.get();
    CHECK_MESSAGE(troupe::is(first_err, errc::peer_lost), troupe::describe(first_err));
    CHECK_MESSAGE(troupe::is(second_err, errc::peer_lost), troupe::describe(second_err));
    // The child's node stays in the group; nothing can reach its control
    // actor once this node left.
    REQUIRE_FALSE(child.kill(SIGKILL));
    (void)child.wait(deadline);
  }
}
