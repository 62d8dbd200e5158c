// Tests of managed_queue.hpp: FIFO order, bounds and timeouts, join and task_done, and leased
// items that come back when their holder dies, in this process or another.

#include "manager_fixture.hpp"
#include "troupe/ipc/managed_queue.hpp"

#include <signal.h>

#include <future>

using namespace troupe::test::ipc;

TEST_SUITE("ipc.managed_queue") {

  TEST_CASE("a shared queue is FIFO and get waits for an item up to its timeout") {
    manager_fixture f{"queue"};
    auto sut = squeue::make(f.sys);
    REQUIRE_FALSE(sut.put(1));
    REQUIRE_FALSE(sut.put(2));
    CHECK(sut.qsize() == int64_t{2});
    CHECK(sut.get() == int32_t{1});
    CHECK(sut.get() == int32_t{2});
    CHECK(troupe::is(sut.get(caf::timespan{0}).error(), troupe::ipc::errc::empty));
    auto t0 = std::chrono::steady_clock::now();
    CHECK(troupe::is(sut.get(milliseconds(50)).error(), troupe::ipc::errc::empty));
    CHECK(std::chrono::steady_clock::now() - t0 >= milliseconds(50));
    // A getter waiting forever gets the item put later by another thread.
    auto waiter = std::async(std::launch::async, [&] { return sut.get(); });
    CHECK(waiter.wait_for(milliseconds(20)) == std::future_status::timeout);
    REQUIRE_FALSE(sut.put(3));
    CHECK(waiter.get() == int32_t{3});
    // The expired getter above did not swallow anything.
    CHECK(sut.qsize() == int64_t{0});
  }

  TEST_CASE("a bounded shared queue makes put wait for room or fail with full") {
    manager_fixture f{"bounded"};
    auto sut = squeue::make(f.sys, 1);
    CHECK(sut.empty() == true);
    CHECK(sut.full() == false);
    REQUIRE_FALSE(sut.put(1));
    CHECK(sut.empty() == false);
    CHECK(sut.full() == true);
    CHECK(squeue::make(f.sys).full() == false); // unbounded: never full
    CHECK(troupe::is(sut.put(2, caf::timespan{0}), errc::full));
    CHECK(troupe::is(sut.put(2, milliseconds(20)), errc::full));
    auto putter = std::async(std::launch::async, [&] { return sut.put(3); });
    CHECK(sut.get() == int32_t{1});
    CHECK(putter.get() == caf::error{});
    CHECK(sut.get() == int32_t{3});
    CHECK(sut.qsize() == int64_t{0});
  }

  TEST_CASE("join waits until every item is done, by task_done or ack") {
    manager_fixture f{"join"};
    auto sut = squeue::make(f.sys);
    CHECK_FALSE(sut.join(caf::timespan{0}));
    REQUIRE_FALSE(sut.put(1));
    REQUIRE_FALSE(sut.put(2));
    CHECK(troupe::is(sut.join(milliseconds(10)), errc::timeout));
    auto joiner = std::async(std::launch::async, [&] { return sut.join(); });
    REQUIRE(sut.get() == int32_t{1});
    REQUIRE_FALSE(sut.task_done());
    auto item = sut.get_leased();
    REQUIRE(item);
    CHECK(item->value == 2);
    CHECK(troupe::is(sut.task_done(), troupe::ipc::errc::value_error)); // only the lease is open
    CHECK(joiner.wait_for(milliseconds(0)) != std::future_status::ready);
    REQUIRE_FALSE(sut.ack(item->id));
    CHECK(joiner.get() == caf::error{});
    CHECK(troupe::is(sut.ack(item->id), errc::not_held));
  }

  TEST_CASE("a leased item goes back to the queue when its holder dies before acking") {
    manager_fixture f{"lease"};
    auto sut = squeue::make(f.sys);
    REQUIRE_FALSE(sut.put(7));
    REQUIRE_FALSE(sut.put(8));
    {
      auto consumer = squeue{sut.handle()};
      auto item = consumer.get_leased();
      REQUIRE(item);
      CHECK(item->value == 7);
      CHECK(sut.leased_count() == int64_t{1});
    } // the consumer's handle and its lease holder are gone, unacked
    CHECK(eventually([&] { return sut.leased_count() == int64_t{0}; }));
    CHECK(sut.get() == int32_t{7}); // redelivered first
    CHECK(sut.get() == int32_t{8});
  }

  TEST_CASE("an event-based actor leases with the protocol and its death returns the item") {
    manager_fixture f{"lease-actor"};
    auto sut = squeue::make(f.sys);
    REQUIRE_FALSE(sut.put(5));
    auto report = caf::actor{f.self};
    auto q = sut.handle();
    auto consumer = f.sys.spawn([report, q](caf::event_based_actor* self) -> caf::behavior {
      self->request(q, caf::infinite, troupe::ipc::lease_atom::value, troupe::forever)
        .then([=](uint64_t, int32_t x) { self->send(report, x); });
      return {[](caf::ok_atom) {}};
    });
    f.self->receive([](int32_t x) { CHECK(x == 5); },
                    caf::after(deadline) >> [] { FAIL("no leased item"); });
    CHECK(sut.qsize() == int64_t{0});
    f.self->send_exit(consumer, caf::exit_reason::kill);
    CHECK(sut.get(deadline) == int32_t{5});
  }

  TEST_CASE("a leased item comes back when its consumer process is killed with SIGKILL") {
    manager_fixture f{"lease-kill"};
    auto n = f.make_node();
    auto q = squeue::make(f.sys);
    REQUIRE_FALSE(q.put(42));
    REQUIRE_FALSE(q.put(43));
    f.publish(n, "m.queue", q);
    auto report = n.publish("m.report", caf::actor{f.self});
    REQUIRE(report);
    auto child = f.start(n, {"lease", "m"});
    // The child reports the item it leased.
    f.self->receive([](int32_t x) { CHECK(x == 42); },
                    caf::after(deadline) >> [] { FAIL("the child leased nothing"); });
    CHECK(q.leased_count() == int64_t{1});
    CHECK(q.get() == int32_t{43});
    REQUIRE_FALSE(child.kill(SIGKILL));
    // No sleep: the owner sees the holder's peer_lost and puts the item back.
    CHECK(q.get(deadline) == int32_t{42});
    CHECK(q.leased_count() == int64_t{0});
    (void)child.wait(deadline);
  }

  // A blocking caller reads the rings itself while it waits for its answer
  // (core.hpp, "who reads the rings"); the reader thread sleeps meanwhile and
  // must be woken for whatever comes after the caller stops reading.
}
