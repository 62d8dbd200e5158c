#include "support.hpp"
#include "sync_workload.hpp"
#include "troupe/ipc/node.hpp"
#include "troupe/ipc/sync.hpp"

#include <signal.h>

#include <stdexcept>
#include <string>
#include <vector>

using namespace troupe::test::ipc;
using std::chrono::milliseconds;
using troupe::errc;
using troupe::ipc::child_process;
using troupe::ipc::node;
namespace tipc = troupe::ipc;

namespace {

/// A group with this process as its first node; children run `sync` steps
/// (see ipc_child.cpp) against the primitives this process hosts.
struct sync_fixture : ipc_fixture {
  explicit sync_fixture(const char* tag) : ipc_fixture(tag) {}

  node make_node() {
    auto n = node::create(sys, group);
    REQUIRE_MESSAGE(n, troupe::describe(n.error()));
    return std::move(*n);
  }

  /// Publishes the primitive `x` as `name`; its actor ends with the test.
  template <class Handle>
  Handle host(node& n, const std::string& name, Handle x) {
    spawned.push_back(x.handle());
    auto publication = n.publish(name, x.handle());
    REQUIRE_MESSAGE(publication, troupe::describe(publication.error()));
    publication->release(); // ends with the node, or with the test
    return x;
  }

  child_process run(node& n, std::vector<std::string> steps) {
    steps.insert(steps.begin(), "sync");
    auto child = n.spawn(TROUPE_IPC_CHILD, steps);
    REQUIRE_MESSAGE(child, troupe::describe(child.error()));
    return std::move(*child);
  }

  /// Waits until `child` stopped itself (SIGSTOP), holding what it acquired.
  static void wait_stopped(child_process& child) {
    REQUIRE(eventually([&] { return process_state(child.pid()) == 'T'; }));
  }

  static void expect_success(child_process& child) {
    auto status = child.wait(deadline);
    REQUIRE_MESSAGE(status, troupe::describe(status.error()));
    CHECK_MESSAGE(status->success(), tipc::to_string(*status));
  }
};

/// Whether `x` is `n` (for `caf::expected<size_t>` in `eventually`).
bool equals(const caf::expected<std::size_t>& x, std::size_t n) {
  return x && *x == n;
}

} // namespace

TEST_SUITE("ipc.sync") {
  TEST_CASE("a lock held in one process makes another process wait until it is released") {
    sync_fixture f{"sync-lock"};
    auto n = f.make_node();
    auto sut = f.host(n, "L", tipc::lock::make(f.sys));
    auto mine = sut.acquire(f.self);
    REQUIRE(mine);
    CHECK_FALSE(mine->previous_holder_died);
    auto child = f.run(n, {"lock:L", "unlock:L"});
    REQUIRE(eventually([&] { return equals(sut.waiting(), 1); }));
    CHECK(sut.locked() == true);
    REQUIRE_FALSE(sut.release(f.self));
    f.expect_success(child);
    CHECK(sut.locked() == false);
  }

  TEST_CASE("a lease gives its lock back when its scope ends, by exception too") {
    sync_fixture f{"sync-guard"};
    auto n = f.make_node();
    auto sut = f.host(n, "L", tipc::lock::make(f.sys));
    caf::expected<tipc::lease> held = tipc::lease::acquire(sut, f.self);
    REQUIRE(held);
    CHECK(held->holds());
    CHECK_FALSE(held->previous_holder_died());
    auto child = f.run(n, {"lock:L", "unlock:L"});
    REQUIRE(eventually([&] { return equals(sut.waiting(), 1); }));
    held = caf::error{}; // the guard's scope ends
    f.expect_success(child);
    CHECK(sut.locked() == false);
    try {
      auto g = tipc::lease::acquire(sut, f.self);
      REQUIRE(g);
      CHECK(sut.locked() == true);
      throw std::runtime_error("the body failed");
    } catch (const std::runtime_error&) {
    }
    CHECK(sut.locked() == false);
  }

  TEST_CASE("a lease released early holds nothing, and its error comes back") {
    sync_fixture f{"sync-guard-early"};
    auto n = f.make_node();
    auto sut = f.host(n, "S", *tipc::bounded_semaphore::make(f.sys, 2));
    auto held = tipc::lease::acquire(sut, f.self);
    REQUIRE(held);
    CHECK(sut.available() == std::size_t{1});
    CHECK_FALSE(held->release());
    CHECK_FALSE(held->holds());
    CHECK(sut.available() == std::size_t{2});
    CHECK_FALSE(held->release()); // nothing held, nothing to give back
    // A guard whose primitive is gone reports it when released.
    auto g = tipc::lease::acquire(sut, f.self);
    REQUIRE(g);
    caf::anon_send_exit(sut.handle(), caf::exit_reason::kill);
    REQUIRE(eventually([&] { return !sut.available(); }));
    CHECK(troupe::is(g->release(), errc::owner_down));
  }

  TEST_CASE("a lock holder killed by SIGKILL releases it and the next waiter is told") {
    sync_fixture f{"sync-kill"};
    auto n = f.make_node();
    auto sut = f.host(n, "L", tipc::lock::make(f.sys));
    auto holder = f.run(n, {"lock:L", "stop"});
    f.wait_stopped(holder);
    auto waiter = f.run(n, {"lockdied:L", "unlock:L"});
    REQUIRE(eventually([&] { return equals(sut.waiting(), 1); }));
    REQUIRE_FALSE(holder.kill(SIGKILL));
    f.expect_success(waiter);
    // Told once: the next acquirer finds a lock released cleanly.
    auto next = sut.acquire(f.self, deadline);
    REQUIRE(next);
    CHECK_FALSE(next->previous_holder_died);
  }

  TEST_CASE("acquiring a lock held in another process times out") {
    sync_fixture f{"sync-timeout"};
    auto n = f.make_node();
    auto sut = f.host(n, "L", tipc::lock::make(f.sys));
    auto holder = f.run(n, {"lock:L", "stop"});
    f.wait_stopped(holder);
    auto res = sut.acquire(f.self, milliseconds(30));
    REQUIRE_FALSE(res);
    CHECK(troupe::is(res.error(), errc::timeout));
    CHECK(sut.waiting() == std::size_t{0});
  }

  TEST_CASE("releasing a lock one does not hold is not_held, acquiring it twice would deadlock") {
    sync_fixture f{"sync-misuse"};
    auto n = f.make_node();
    auto sut = f.host(n, "L", tipc::lock::make(f.sys));
    CHECK(troupe::is(sut.release(f.self), errc::not_held));
    REQUIRE(sut.acquire(f.self));
    auto again = sut.acquire(f.self, milliseconds(10));
    REQUIRE_FALSE(again);
    CHECK(troupe::is(again.error(), errc::would_deadlock));
  }

  TEST_CASE("a lock whose process is gone fails with peer_lost") {
    sync_fixture f{"sync-lost"};
    auto n = f.make_node();
    auto host = f.serve(n, "echo");
    // The lock lives here; reach it through a proxy of the child's echo to
    // see what a dead host looks like: any request to it fails.
    auto echo = f.find(n, "echo");
    REQUIRE_FALSE(host.kill(SIGKILL));
    auto sut = tipc::lock{echo};
    auto res = sut.acquire(f.self, deadline);
    REQUIRE_FALSE(res);
    CHECK(troupe::is(res.error(), errc::peer_lost));
  }

  TEST_CASE("an rlock is re-entrant for its holder and excludes others until fully released") {
    sync_fixture f{"sync-rlock"};
    auto n = f.make_node();
    auto sut = f.host(n, "R", tipc::rlock::make(f.sys));
    REQUIRE(sut.acquire(f.self));
    REQUIRE(sut.acquire(f.self));
    auto child = f.run(n, {"lock:R", "unlock:R"});
    REQUIRE(eventually([&] { return equals(sut.waiting(), 1); }));
    REQUIRE_FALSE(sut.release(f.self));
    CHECK(sut.waiting() == std::size_t{1});
    REQUIRE_FALSE(sut.release(f.self));
    f.expect_success(child);
    CHECK(troupe::is(sut.release(f.self), errc::not_held));
  }

  TEST_CASE("an rlock held twice by a killed process is free again, and the next holder is told") {
    sync_fixture f{"sync-rkill"};
    auto n = f.make_node();
    auto sut = f.host(n, "R", tipc::rlock::make(f.sys));
    auto holder = f.run(n, {"lock:R", "lock:R", "stop"});
    f.wait_stopped(holder);
    REQUIRE_FALSE(holder.kill(SIGKILL));
    auto res = sut.acquire(f.self, deadline);
    REQUIRE(res);
    CHECK(res->previous_holder_died);
  }

  TEST_CASE("a bounded semaphore's permit held by a killed process comes back, with the news") {
    sync_fixture f{"sync-bsem"};
    auto n = f.make_node();
    auto made = tipc::bounded_semaphore::make(f.sys, 2);
    REQUIRE(made);
    auto sut = f.host(n, "S", *made);
    auto a = f.run(n, {"lock:S", "stop"});
    auto b = f.run(n, {"lock:S", "stop"});
    f.wait_stopped(a);
    f.wait_stopped(b);
    CHECK(sut.available() == std::size_t{0});
    auto full = sut.acquire(f.self, milliseconds(20));
    REQUIRE_FALSE(full);
    CHECK(troupe::is(full.error(), errc::timeout));
    REQUIRE_FALSE(a.kill(SIGKILL));
    auto res = sut.acquire(f.self, deadline);
    REQUIRE(res);
    CHECK(res->previous_holder_died);
  }

  TEST_CASE("a bounded semaphore refuses a release by an actor that holds no permit") {
    sync_fixture f{"sync-bound"};
    auto n = f.make_node();
    auto made = tipc::bounded_semaphore::make(f.sys, 1);
    REQUIRE(made);
    auto sut = f.host(n, "S", *made);
    CHECK(troupe::is(sut.release(f.self), errc::not_held));
    CHECK(sut.available() == std::size_t{1});
    CHECK(troupe::is(tipc::bounded_semaphore::make(f.sys, 0).error(), errc::invalid_argument));
  }

  TEST_CASE("a semaphore released by a non-holder lets a waiting process in") {
    sync_fixture f{"sync-sem"};
    auto n = f.make_node();
    auto sut = f.host(n, "S", tipc::semaphore::make(f.sys, 0));
    auto child = f.run(n, {"lock:S"});
    REQUIRE(eventually([&] { return equals(sut.waiting(), 1); }));
    REQUIRE_FALSE(sut.release(f.self));
    f.expect_success(child);
    // The child held the permit until it exited, which gave it back.
    REQUIRE(eventually([&] { return equals(sut.available(), 1); }));
  }

  TEST_CASE("an event set in one process wakes a waiter in another") {
    sync_fixture f{"sync-event"};
    auto n = f.make_node();
    auto sut = f.host(n, "E", tipc::event::make(f.sys));
    auto child = f.run(n, {"wait:E"});
    REQUIRE(eventually([&] {
      return f.ask<std::size_t>(sut.handle(), caf::get_atom::value, troupe::wait_atom::value)
             == std::size_t{1};
    }));
    REQUIRE_FALSE(sut.set());
    f.expect_success(child);
    CHECK(sut.is_set() == true);
  }

  TEST_CASE("an event hosted in one process is set from another and times out when not set") {
    sync_fixture f{"sync-eventset"};
    auto n = f.make_node();
    auto sut = f.host(n, "E", tipc::event::make(f.sys));
    CHECK(troupe::is(sut.wait(milliseconds(20)), errc::timeout));
    auto child = f.run(n, {"set:E"});
    CHECK_FALSE(sut.wait(deadline));
    f.expect_success(child);
    REQUIRE_FALSE(sut.clear());
    CHECK(sut.is_set() == false);
  }

  TEST_CASE("a condition waiter in another process is woken by notify and holds the lock again") {
    sync_fixture f{"sync-cond"};
    auto n = f.make_node();
    auto sut = f.host(n, "C", tipc::condition::make(f.sys));
    auto child = f.run(n, {"lock:C", "cwait:C", "unlock:C"});
    REQUIRE(eventually([&] { return equals(sut.sleeping(), 1); }));
    REQUIRE(sut.acquire(f.self));
    REQUIRE_FALSE(sut.notify_all(f.self));
    CHECK(sut.sleeping() == std::size_t{0});
    // The woken child waits for the lock this process still holds.
    CHECK(sut.waiting() == std::size_t{1});
    REQUIRE_FALSE(sut.release(f.self));
    f.expect_success(child);
  }

  TEST_CASE("a condition wait that times out returns not notified, holding the lock") {
    sync_fixture f{"sync-condto"};
    auto n = f.make_node();
    auto sut = f.host(n, "C", tipc::condition::make(f.sys, false));
    CHECK(troupe::is(sut.notify(f.self), errc::not_held));
    CHECK(troupe::is(sut.wait(f.self, milliseconds(10)).error(), errc::not_held));
    REQUIRE(sut.acquire(f.self));
    auto res = sut.wait(f.self, milliseconds(20));
    REQUIRE(res);
    CHECK_FALSE(res->notified);
    CHECK(sut.locked() == true);
    CHECK_FALSE(sut.release(f.self));
  }

  TEST_CASE("a barrier lets parties of several processes through with their arrival index") {
    sync_fixture f{"sync-barrier"};
    auto n = f.make_node();
    auto made = tipc::barrier::make(f.sys, 3);
    REQUIRE(made);
    auto sut = f.host(n, "B", *made);
    auto a = f.run(n, {"bwait:B"});
    auto b = f.run(n, {"bwait:B"});
    REQUIRE(eventually([&] { return equals(sut.waiting(), 2); }));
    auto index = sut.wait(f.self, deadline);
    REQUIRE(index);
    CHECK(*index == 2);
    f.expect_success(a);
    f.expect_success(b);
    CHECK(sut.waiting() == std::size_t{0});
  }

  TEST_CASE("a barrier breaks when a waiting party's process is killed") {
    sync_fixture f{"sync-broken"};
    auto n = f.make_node();
    auto made = tipc::barrier::make(f.sys, 3);
    REQUIRE(made);
    auto sut = f.host(n, "B", *made);
    auto survivor = f.run(n, {"bbroken:B"});
    REQUIRE(eventually([&] { return equals(sut.waiting(), 1); }));
    auto victim = f.run(n, {"bwait:B"});
    REQUIRE(eventually([&] { return equals(sut.waiting(), 2); }));
    REQUIRE_FALSE(victim.kill(SIGKILL));
    f.expect_success(survivor);
    auto late = sut.wait(f.self, deadline);
    REQUIRE_FALSE(late);
    CHECK(troupe::is(late.error(), troupe::ipc::errc::broken_barrier));
    REQUIRE_FALSE(sut.reset());
    CHECK(troupe::is(sut.wait(f.self, milliseconds(10)).error(), errc::timeout));
  }

  TEST_CASE("a barrier wait that times out breaks the barrier") {
    sync_fixture f{"sync-barrierto"};
    auto n = f.make_node();
    auto made = tipc::barrier::make(f.sys, 2);
    REQUIRE(made);
    auto sut = f.host(n, "B", *made);
    CHECK(troupe::is(sut.wait(f.self, milliseconds(20)).error(), errc::timeout));
    auto child = f.run(n, {"bbroken:B"});
    f.expect_success(child);
  }

  TEST_CASE("every primitive, used by three processes at once, keeps them apart") {
    sync_fixture f{"sync-contend"};
    auto n = f.make_node();
    contended_primitives c{f.host(n, "c.lock", tipc::lock::make(f.sys)),
                           f.host(n, "c.rlock", tipc::rlock::make(f.sys)),
                           f.host(n, "c.bsem", *tipc::bounded_semaphore::make(f.sys, 1)),
                           f.host(n, "c.cond", tipc::condition::make(f.sys)),
                           f.host(n, "c.barrier", *tipc::barrier::make(f.sys, 3)),
                           f.host(n, "c.event", tipc::event::make(f.sys)),
                           f.host(n, "c.counters", sarray::make(f.sys, contended_counters))};
    constexpr int32_t rounds = 40;
    std::vector<child_process> children;
    for (int i = 0; i < 2; ++i) {
      auto child = n.spawn(TROUPE_IPC_CHILD, {"contend", "c", std::to_string(rounds)});
      REQUIRE_MESSAGE(child, troupe::describe(child.error()));
      children.push_back(std::move(*child));
    }
    auto mine = run_contended(c, f.self, rounds, false);
    CHECK_MESSAGE(!mine, troupe::describe(mine));
    // Every round met at the barrier; now wake both children with the event.
    REQUIRE_FALSE(c.event.set());
    for (auto& child : children)
      f.expect_success(child);
    CHECK(c.counters.snapshot() == std::vector<int64_t>(contended_counters, 3 * rounds));
    CHECK(c.lock.locked() == false);
    CHECK(c.bsem.available() == std::size_t{1});
  }
}
