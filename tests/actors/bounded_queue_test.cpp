#include "support/fixture.hpp"
#include "troupe/bounded_queue.hpp"

#include <atomic>
#include <future>
#include <set>
#include <thread>
#include <vector>

using troupe::bounded_queue;
using troupe::errc;
using troupe::full_policy;
using troupe::test::eventually;
using troupe::test::fixture;

TEST_SUITE("actors.bounded_queue") {

  TEST_CASE_FIXTURE(fixture, "items come out in the order they went in") {
    auto sut = *bounded_queue<int>::make(sys, 10);
    for (int i = 0; i < 5; ++i)
      REQUIRE_FALSE(sut.put(self, i));
    for (int i = 0; i < 5; ++i)
      CHECK(*sut.get(self) == i);
  }

  TEST_CASE_FIXTURE(fixture, "a capacity of 0 means no bound, as asyncio.Queue(maxsize=0)") {
    auto sut = bounded_queue<int>::make(sys, 0, full_policy::fail);
    REQUIRE(sut);
    for (int i = 0; i < 1000; ++i)
      REQUIRE_FALSE(sut->put(self, i)); // never full
    auto stats = sut->stats();
    REQUIRE(stats);
    CHECK(stats->size == 1000);
    CHECK(stats->capacity == 0);
    for (int i = 0; i < 1000; ++i)
      CHECK(*sut->get(self) == i);
  }

  TEST_CASE_FIXTURE(fixture, "put waits while the queue is full") {
    auto sut = *bounded_queue<int>::make(sys, 1);
    REQUIRE_FALSE(sut.put(self, 1));
    auto putter = std::async(std::launch::async, [&] { return sut.put(2); });
    REQUIRE(eventually([&] { return sut.stats()->putters == 1; }));
    CHECK(*sut.get(self) == 1); // makes room: the waiting put goes in
    REQUIRE(putter.wait_for(troupe::test::deadline) == std::future_status::ready);
    CHECK_FALSE(putter.get());
    CHECK(*sut.get(self) == 2);
  }

  TEST_CASE_FIXTURE(fixture, "a put with a timeout on a full queue ends in timeout") {
    auto sut = *bounded_queue<int>::make(sys, 1);
    REQUIRE_FALSE(sut.put(self, 1));
    CHECK(troupe::is(sut.put(self, 2, std::chrono::milliseconds(5)), errc::timeout));
    CHECK(sut.stats()->size == 1);
    CHECK(sut.stats()->putters == 0);
  }

  TEST_CASE_FIXTURE(fixture, "the fail policy refuses a put on a full queue") {
    auto sut = *bounded_queue<int>::make(sys, 1, full_policy::fail);
    REQUIRE_FALSE(sut.put(self, 1));
    CHECK(troupe::is(sut.put(self, 2), errc::full));
  }

  TEST_CASE_FIXTURE(fixture, "get waits for an item, or ends in timeout") {
    auto sut = *bounded_queue<int>::make(sys, 1);
    CHECK(troupe::is(sut.get(self, std::chrono::milliseconds(5)).error(), errc::timeout));
    auto getter = std::async(std::launch::async, [&] { return sut.get(); });
    REQUIRE(eventually([&] { return sut.stats()->getters == 1; }));
    REQUIRE_FALSE(sut.put(self, 7));
    REQUIRE(getter.wait_for(troupe::test::deadline) == std::future_status::ready);
    CHECK(*getter.get() == 7);
  }

  TEST_CASE_FIXTURE(fixture, "close ends consumers once the queue is drained and refuses puts") {
    auto sut = *bounded_queue<int>::make(sys, 4);
    REQUIRE_FALSE(sut.put(self, 1));
    auto waiting = std::async(std::launch::async, [&] {
      caf::scoped_actor me{sys};
      std::vector<int> seen;
      for (;;) {
        auto item = sut.get(me);
        if (!item)
          return std::make_pair(seen, item.error());
        seen.push_back(*item);
      }
    });
    REQUIRE(eventually([&] { return sut.stats()->getters == 1; }));
    REQUIRE_FALSE(sut.close());
    REQUIRE(waiting.wait_for(troupe::test::deadline) == std::future_status::ready);
    auto [seen, end] = waiting.get();
    CHECK(seen == std::vector<int>{1});
    CHECK(troupe::is(end, errc::closed));
    CHECK(troupe::is(sut.put(self, 2), errc::closed));
  }

  TEST_CASE_FIXTURE(fixture, "close fails the puts that were waiting for room") {
    auto sut = *bounded_queue<int>::make(sys, 1);
    REQUIRE_FALSE(sut.put(self, 1));
    auto putter = std::async(std::launch::async, [&] { return sut.put(2); });
    REQUIRE(eventually([&] { return sut.stats()->putters == 1; }));
    REQUIRE_FALSE(sut.close());
    REQUIRE(putter.wait_for(troupe::test::deadline) == std::future_status::ready);
    CHECK(troupe::is(putter.get(), errc::closed));
    CHECK(*sut.get(self) == 1); // what was in stays until drained
  }

  TEST_CASE_FIXTURE(
    fixture, "producers that outrun the consumer stay within the capacity and lose nothing") {
    constexpr int producers = 4;
    constexpr int per_producer = 500;
    constexpr std::size_t capacity = 8;
    auto sut = *bounded_queue<int>::make(sys, capacity);
    std::vector<std::thread> threads;
    threads.reserve(producers);
    std::atomic<int> failures{0};
    for (int p = 0; p < producers; ++p)
      threads.emplace_back([&, p] {
        caf::scoped_actor me{sys};
        for (int i = 0; i < per_producer; ++i)
          if (sut.put(me, p * per_producer + i))
            ++failures;
      });
    std::set<int> received;
    for (int i = 0; i < producers * per_producer; ++i) {
      auto item = sut.get(self, troupe::test::deadline);
      REQUIRE(item);
      received.insert(*item);
    }
    for (auto& t : threads)
      t.join();
    CHECK(failures == 0);
    CHECK(received.size() == static_cast<std::size_t>(producers * per_producer));
    CHECK(sut.stats()->high_water <= capacity);
  }

  TEST_CASE_FIXTURE(fixture, "a waiting getter that dies leaves the queue") {
    auto sut = *bounded_queue<int>::make(sys, 1);
    auto getter = sys.spawn([sut](caf::event_based_actor* me) {
      me->request(sut.handle(), caf::infinite, caf::get_atom::value, troupe::forever)
        .then([](int) {}, [](caf::error&) {});
    });
    REQUIRE(eventually([&] { return sut.stats()->getters == 1; }));
    troupe::test::kill_and_wait(self, getter);
    REQUIRE(eventually([&] { return sut.stats()->getters == 0; }));
    REQUIRE_FALSE(sut.put(self, 5));
    CHECK(*sut.get(self) == 5); // the item was not handed to the dead getter
  }

  TEST_CASE_FIXTURE(fixture,
                    "asynchronous puts and gets neither answer strays nor end the sender") {
    auto sut = *bounded_queue<int>::make(sys, 1);
    REQUIRE_FALSE(sut.close());
    auto client = sys.spawn([sut](caf::event_based_actor* me) -> caf::behavior {
      return {[me, sut](caf::get_atom) {
        // A get on a closed queue, sent without asking for an answer, then a
        // request: an error reply to the get would arrive first and end `me`.
        me->send(sut.handle(), caf::get_atom::value, troupe::forever);
        auto rp = me->make_response_promise<caf::ok_atom>();
        me->request(sut.handle(), caf::infinite, caf::close_atom::value)
          .then([rp](caf::ok_atom) mutable { rp.deliver(caf::ok_atom::value); });
        return rp;
      }};
    });
    self->request(client, troupe::test::deadline, caf::get_atom::value)
      .receive([](caf::ok_atom) {},
               [](caf::error& err) { FAIL("the sender died: " << troupe::describe(err)); });
  }

  TEST_CASE_FIXTURE(fixture, "producers are made to wait when they outrun the consumer") {
    auto sut = *bounded_queue<int>::make(sys, 2);
    REQUIRE_FALSE(sut.put(self, 1));
    REQUIRE_FALSE(sut.put(self, 2));
    auto producer = std::async(std::launch::async, [&] { return sut.put(3); });
    CHECK(eventually([&] { return sut.stats()->putters == 1; }));
    CHECK(sut.stats()->size == 2);
    CHECK(*sut.get(self) == 1);
    CHECK_FALSE(producer.get());
  }

} // TEST_SUITE
