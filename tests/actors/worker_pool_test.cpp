#include "support/fixture.hpp"
#include "troupe/error.hpp"
#include "troupe/worker_pool.hpp"

#include <atomic>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

using troupe::dispatch_policy;
using troupe::errc;
using troupe::pool_options;
using troupe::worker_pool;
using troupe::test::eventually;
using troupe::test::fixture;

namespace {

using crash_atom = caf::atom_constant<caf::atom("crash")>;
using slow_atom = caf::atom_constant<caf::atom("slow")>;

/// Workers double ints, crash on `crash` (a void handler would still answer
/// before quitting, so the crash declines to answer), and on `slow` block their thread
/// until `gate` opens (they are detached, so that blocks nobody else); on
/// `slow, crash` they wait for the gate and then crash.
worker_pool::factory_type doubling_worker(std::shared_future<void> gate = {}) {
  return [gate](caf::actor_system& sys) {
    return sys.spawn<caf::detached>([gate](caf::event_based_actor* self) -> caf::behavior {
      return {
        [](int x) { return 2 * x; },
        [self](crash_atom) -> caf::result<int> {
          self->quit(caf::sec::runtime_error); // dies without answering
          return caf::delegated<int>{};
        },
        [gate](slow_atom) {
          gate.wait();
          return -1;
        },
        [self, gate](slow_atom, crash_atom) -> caf::result<int> {
          gate.wait();
          self->quit(caf::sec::runtime_error);
          return caf::delegated<int>{};
        },
      };
    });
  };
}

pool_options options(std::size_t workers, dispatch_policy policy = dispatch_policy::balancing) {
  pool_options result;
  result.workers = workers;
  result.dispatch = policy;
  return result;
}

} // namespace

TEST_SUITE("actors.worker_pool") {

  TEST_CASE("the default pool size follows the hardware") {
    CHECK(troupe::default_pool_size() >= 1);
  }

  TEST_CASE_FIXTURE(fixture, "tasks are answered by the workers") {
    auto sut = worker_pool::make(sys, doubling_worker(), options(2));
    REQUIRE(sut);
    int sum = 0;
    for (int i = 0; i < 100; ++i)
      self->request(sut->handle(), troupe::test::deadline, i)
        .receive([&](int x) { sum += x; }, [](caf::error& err) { FAIL(troupe::describe(err)); });
    CHECK(sum == 9900);
    CHECK(sut->stats()->completed == 100);
    CHECK(sut->stats()->workers == 2);
  }

  TEST_CASE_FIXTURE(fixture,
                    "a crashed worker is replaced and its task fails with worker_crashed") {
    auto sut = worker_pool::make(sys, doubling_worker(), options(2));
    REQUIRE(sut);
    self->request(sut->handle(), troupe::test::deadline, crash_atom::value)
      .receive([] { FAIL("a crash was answered"); },
               [](caf::error& err) { CHECK(troupe::is(err, errc::worker_crashed)); });
    CHECK(eventually([&] { return sut->stats()->crashed == 1; }));
    for (int i = 0; i < 10; ++i)
      self->request(sut->handle(), troupe::test::deadline, i)
        .receive([&](int x) { CHECK(x == 2 * i); },
                 [](caf::error& err) { FAIL(troupe::describe(err)); });
    CHECK(sut->stats()->workers == 2);
  }

  TEST_CASE_FIXTURE(fixture,
                    "a task is dispatched again after its worker crashed if retries allow") {
    auto first = std::make_shared<std::atomic<bool>>(true);
    auto factory = [first](caf::actor_system& sys) {
      return sys.spawn([first](caf::event_based_actor* self) -> caf::behavior {
        return {[self, first](int x) -> caf::result<int> {
          if (first->exchange(false)) { // crash on the first attempt only
            self->quit(caf::sec::runtime_error);
            return caf::delegated<int>{};
          }
          return 2 * x;
        }};
      });
    };
    auto opts = options(1);
    opts.retries = 1;
    auto sut = worker_pool::make(sys, factory, opts);
    REQUIRE(sut);
    self->request(sut->handle(), troupe::test::deadline, 21)
      .receive([](int x) { CHECK(x == 42); }, [](caf::error& err) { FAIL(troupe::describe(err)); });
    CHECK(sut->stats()->crashed == 1);
  }

  TEST_CASE_FIXTURE(fixture, "balancing: one slow task does not hold up the tasks behind it") {
    std::promise<void> open;
    auto sut = worker_pool::make(sys, doubling_worker(open.get_future().share()), options(2));
    REQUIRE(sut);
    auto slow = self->request(sut->handle(), troupe::test::deadline, slow_atom::value);
    int answered = 0;
    for (int i = 0; i < 10; ++i)
      self->request(sut->handle(), troupe::test::deadline, i)
        .receive([&](int) { ++answered; }, [](caf::error& err) { FAIL(troupe::describe(err)); });
    CHECK(answered == 10); // all served by the idle worker while the other is stuck
    open.set_value();
    slow.receive([](int x) { CHECK(x == -1); },
                 [](caf::error& err) { FAIL(troupe::describe(err)); });
  }

  TEST_CASE_FIXTURE(fixture, "round robin: tasks queued behind a slow one wait for it") {
    std::promise<void> open;
    auto sut = worker_pool::make(sys, doubling_worker(open.get_future().share()),
                                 options(2, dispatch_policy::round_robin));
    REQUIRE(sut);
    self->send(sut->handle(), slow_atom::value); // worker 0
    for (int i = 0; i < 10; ++i)
      self->send(sut->handle(), i); // alternately worker 1 and worker 0
    REQUIRE(eventually([&] { return sut->stats()->completed == 5; }));
    CHECK(sut->stats()->running == 6); // the slow task and the five behind it
    open.set_value();
    CHECK(eventually([&] { return sut->stats()->completed == 11; }));
  }

  TEST_CASE_FIXTURE(fixture, "too many crashed workers make the pool give up") {
    auto opts = options(2);
    opts.max_restarts = 1;
    auto sut = worker_pool::make(sys, doubling_worker(), opts);
    REQUIRE(sut);
    self->monitor(sut->handle());
    self->send(sut->handle(), crash_atom::value);
    self->send(sut->handle(), crash_atom::value);
    self->receive(
      [](caf::down_msg& msg) { CHECK(troupe::is(msg.reason, errc::restart_intensity)); },
      caf::after(troupe::test::deadline) >> [] { FAIL("the pool kept going"); });
  }

  TEST_CASE_FIXTURE(fixture, "cancelling fails the waiting tasks and keeps the running one") {
    std::promise<void> open;
    auto sut = worker_pool::make(sys, doubling_worker(open.get_future().share()), options(1));
    REQUIRE(sut);
    auto slow = self->request(sut->handle(), troupe::test::deadline, slow_atom::value);
    std::vector<decltype(slow)> waiting;
    waiting.reserve(3);
    for (int i = 0; i < 3; ++i)
      waiting.push_back(self->request(sut->handle(), troupe::test::deadline, i));
    REQUIRE(eventually([&] { return sut->stats()->queued == 3; }));
    sut->cancel_queued();
    for (auto& w : waiting)
      w.receive([](int) { FAIL("a cancelled task ran"); },
                [](caf::error& err) { CHECK(troupe::is(err, errc::cancelled)); });
    open.set_value();
    slow.receive([](int x) { CHECK(x == -1); },
                 [](caf::error& err) { FAIL(troupe::describe(err)); });
  }

  TEST_CASE_FIXTURE(fixture, "stopping the pool answers every task it holds") {
    std::promise<void> open;
    auto sut = worker_pool::make(sys, doubling_worker(open.get_future().share()), options(1));
    REQUIRE(sut);
    auto slow = self->request(sut->handle(), troupe::test::deadline, slow_atom::value);
    auto queued = self->request(sut->handle(), troupe::test::deadline, 1);
    REQUIRE(eventually([&] { return sut->stats()->queued == 1; }));
    CHECK_FALSE(sut->stop(troupe::test::deadline));
    queued.receive([](int) { FAIL("a task ran after the stop"); },
                   [](caf::error& err) { CHECK(troupe::is(err, errc::cancelled)); });
    slow.receive([](int) { FAIL("the running task's answer outlived the pool"); },
                 [](caf::error& err) { CHECK(troupe::is(err, errc::cancelled)); });
    open.set_value();
  }

  TEST_CASE_FIXTURE(fixture, "round robin: tasks queued behind a crash fail with worker_crashed") {
    std::promise<void> open;
    auto sut = worker_pool::make(sys, doubling_worker(open.get_future().share()),
                                 options(2, dispatch_policy::round_robin));
    REQUIRE(sut);
    auto crash = self->request(sut->handle(), troupe::test::deadline, slow_atom::value,
                               crash_atom::value); // worker 0
    std::vector<decltype(self->request(sut->handle(), troupe::test::deadline, 0))> tasks;
    for (int i = 1; i <= 6; ++i) // alternately worker 1 and worker 0
      tasks.push_back(self->request(sut->handle(), troupe::test::deadline, i));
    open.set_value();
    crash.receive([](int) { FAIL("a crash was answered"); },
                  [](caf::error& err) { CHECK(troupe::is(err, errc::worker_crashed)); });
    for (int i = 1; i <= 6; ++i)
      tasks[i - 1].receive([&](int x) { CHECK((i % 2 == 1 && x == 2 * i)); },
                           [&](caf::error& err) {
                             CHECK(i % 2 == 0); // queued behind the crash
                             CHECK(troupe::is(err, errc::worker_crashed));
                           });
    CHECK(eventually([&] { return sut->stats()->crashed == 1; }));
    self->request(sut->handle(), troupe::test::deadline, 7)
      .receive([](int x) { CHECK(x == 14); }, [](caf::error& err) { FAIL(troupe::describe(err)); });
  }

  TEST_CASE_FIXTURE(fixture,
                    "round robin: tasks queued behind a crash run again if retries allow") {
    std::promise<void> open;
    auto opts = options(2, dispatch_policy::round_robin);
    opts.retries = 1;
    auto sut = worker_pool::make(sys, doubling_worker(open.get_future().share()), opts);
    REQUIRE(sut);
    auto crash =
      self->request(sut->handle(), troupe::test::deadline, slow_atom::value, crash_atom::value);
    std::vector<decltype(self->request(sut->handle(), troupe::test::deadline, 0))> tasks;
    for (int i = 1; i <= 6; ++i)
      tasks.push_back(self->request(sut->handle(), troupe::test::deadline, i));
    open.set_value();
    // The crashing task crashes its second worker as well, and then fails.
    crash.receive([](int) { FAIL("a crash was answered"); },
                  [](caf::error& err) { CHECK(troupe::is(err, errc::worker_crashed)); });
    for (int i = 1; i <= 6; ++i)
      tasks[i - 1].receive([&](int x) { CHECK(x == 2 * i); },
                           [](caf::error& err) { FAIL(troupe::describe(err)); });
    CHECK(eventually([&] { return sut->stats()->crashed == 2; }));
  }

  TEST_CASE_FIXTURE(fixture, "answers that come out of order find their tasks") {
    using hold_atom = caf::atom_constant<caf::atom("hold")>;
    using release_atom = caf::atom_constant<caf::atom("release")>;
    // Holds the promises of `hold` tasks until `release`; answers ints at once.
    auto factory = [](caf::actor_system& sys) {
      return sys.spawn([](caf::event_based_actor* self) -> caf::behavior {
        auto held = std::make_shared<std::vector<caf::response_promise>>();
        return {
          [self, held](hold_atom) -> caf::result<int> {
            held->push_back(self->make_response_promise());
            return caf::delegated<int>{};
          },
          [held](release_atom) {
            for (auto& rp : *held)
              rp.deliver(-1);
            held->clear();
            return 0;
          },
          [](int x) { return 2 * x; },
        };
      });
    };
    auto sut = worker_pool::make(sys, factory, options(1, dispatch_policy::round_robin));
    REQUIRE(sut);
    auto first = self->request(sut->handle(), troupe::test::deadline, hold_atom::value);
    auto second = self->request(sut->handle(), troupe::test::deadline, hold_atom::value);
    for (int i = 1; i <= 3; ++i)
      self->request(sut->handle(), troupe::test::deadline, i)
        .receive([&](int x) { CHECK(x == 2 * i); },
                 [](caf::error& err) { FAIL(troupe::describe(err)); });
    CHECK(sut->stats()->running == 2);
    self->request(sut->handle(), troupe::test::deadline, release_atom::value)
      .receive([](int x) { CHECK(x == 0); }, [](caf::error& err) { FAIL(troupe::describe(err)); });
    for (auto* held : {&first, &second})
      held->receive([](int x) { CHECK(x == -1); },
                    [](caf::error& err) { FAIL(troupe::describe(err)); });
    auto st = sut->stats();
    CHECK(st->running == 0);
    CHECK(st->completed == 6);
  }

  TEST_CASE_FIXTURE(fixture, "answers reach clients that delegate or compose") {
    auto sut = worker_pool::make(sys, doubling_worker(), options(2));
    REQUIRE(sut);
    auto pool = sut->handle();
    auto front = sys.spawn([pool](caf::event_based_actor* self) -> caf::behavior {
      return {[self, pool](int x) { return self->delegate(pool, x); }};
    });
    self->request(front, troupe::test::deadline, 4)
      .receive([](int x) { CHECK(x == 8); }, [](caf::error& err) { FAIL(troupe::describe(err)); });
    // Composed, the pool answers the next stage, which answers the client.
    auto increment = sys.spawn([]() -> caf::behavior { return {[](int x) { return x + 1; }}; });
    self->request(increment * pool, troupe::test::deadline, 5)
      .receive([](int x) { CHECK(x == 11); }, [](caf::error& err) { FAIL(troupe::describe(err)); });
    troupe::test::kill_and_wait(self, front);
    troupe::test::kill_and_wait(self, increment);
  }

  TEST_CASE_FIXTURE(fixture,
                    "a stopped pool refuses tasks, and its last handle stops the workers") {
    auto workers = std::make_shared<std::vector<caf::actor>>();
    auto factory = [workers, inner = doubling_worker()](caf::actor_system& s) {
      auto worker = inner(s);
      workers->push_back(worker);
      return worker;
    };
    auto sut = worker_pool::make(sys, factory, options(2));
    REQUIRE(sut);
    auto copy = *sut;
    CHECK_FALSE(copy.stop(troupe::test::deadline));
    self->request(sut->handle(), troupe::test::deadline, 1)
      .receive([](int) { FAIL("a stopped pool ran a task"); }, [](caf::error&) {});
    CHECK_FALSE(sut->stats());
    auto made = worker_pool::make(sys, factory, options(2));
    REQUIRE(made);
    std::optional<worker_pool> other{std::move(*made)};
    REQUIRE(workers->size() == 4);
    other.reset(); // the last handle of the second pool
    for (auto& w : *workers) {
      self->monitor(w);
      self->receive([](const caf::down_msg&) {}, caf::after(troupe::test::deadline) >>
                                                   [] { FAIL("a worker outlived its pool"); });
    }
  }

  TEST_CASE_FIXTURE(fixture, "a pool without a working factory is refused") {
    CHECK(troupe::is(worker_pool::make(sys, nullptr).error(), errc::invalid_argument));
    auto broken = [](caf::actor_system&) -> caf::actor { throw std::runtime_error("no worker"); };
    auto sut = worker_pool::make(sys, broken, options(1));
    REQUIRE_FALSE(sut);
    CHECK(troupe::is(sut.error(), errc::start_failed));
  }

  TEST_CASE_FIXTURE(fixture, "a replaced worker is not handed a second task while busy") {
    std::promise<void> open;
    auto sut = worker_pool::make(sys, doubling_worker(open.get_future().share()), options(1));
    REQUIRE(sut);
    self->request(sut->handle(), troupe::test::deadline, crash_atom::value)
      .receive([] {}, [](caf::error&) {});
    auto slow = self->request(sut->handle(), troupe::test::deadline, slow_atom::value);
    auto next = self->request(sut->handle(), troupe::test::deadline, 5);
    // Balancing: the task waits in the pool while the only worker is busy.
    CHECK(eventually([&] {
      auto st = sut->stats();
      return st->running == 1 && st->queued == 1;
    }));
    open.set_value();
    slow.receive([](int x) { CHECK(x == -1); },
                 [](caf::error& err) { FAIL(troupe::describe(err)); });
    next.receive([](int x) { CHECK(x == 10); },
                 [](caf::error& err) { FAIL(troupe::describe(err)); });
  }

  // Senders, answers and crashes run on different threads and take the
  // slots' locks in any order: every task is answered exactly once, and the
  // pool's books balance afterwards.
  TEST_CASE_FIXTURE(fixture, "tasks from several threads amid crashes are each answered once") {
    for (auto policy : {dispatch_policy::round_robin, dispatch_policy::balancing}) {
      CAPTURE(static_cast<int>(policy));
      auto opts = options(3, policy);
      opts.max_restarts = 1000;
      auto sut = worker_pool::make(sys, doubling_worker(), opts);
      REQUIRE(sut);
      constexpr int senders = 4;
      constexpr int per_sender = 400;
      std::atomic<int> values{0};
      std::atomic<int> crashed{0};
      std::atomic<int> wrong{0};
      std::vector<std::thread> threads;
      for (int s = 0; s < senders; ++s)
        threads.emplace_back([&, s] {
          caf::scoped_actor me{sys};
          std::vector<decltype(me->request(sut->handle(), troupe::test::deadline, 0))> pending;
          for (int i = 0; i < per_sender; ++i) {
            if (i % 100 == 99)
              pending.push_back(
                me->request(sut->handle(), troupe::test::deadline, crash_atom::value));
            else
              pending.push_back(me->request(sut->handle(), troupe::test::deadline, s * 1000 + i));
          }
          for (int i = 0; i < per_sender; ++i)
            pending[i].receive(
              [&, s, i](int x) {
                if (i % 100 == 99 || x != 2 * (s * 1000 + i))
                  ++wrong;
                ++values;
              },
              [&](caf::error& err) {
                // A crash, or a task queued behind it in the crashing
                // worker's mailbox; a timeout would be a lost task.
                if (troupe::is(err, errc::worker_crashed))
                  ++crashed;
                else
                  ++wrong;
              });
        });
      for (auto& t : threads)
        t.join();
      CHECK(wrong == 0);
      CHECK(values + crashed == senders * per_sender);
      CHECK(crashed >= senders * (per_sender / 100));
      auto st = sut->stats();
      REQUIRE(st);
      CHECK(st->running == 0);
      CHECK(st->queued == 0);
      CHECK(st->completed == static_cast<uint64_t>(values.load()));
      CHECK_FALSE(sut->stop(troupe::test::deadline));
    }
  }

  TEST_CASE_FIXTURE(fixture, "tasks sent while the pool stops are answered, never lost") {
    auto sut = worker_pool::make(sys, doubling_worker(), options(2, dispatch_policy::round_robin));
    REQUIRE(sut);
    constexpr int senders = 3;
    constexpr int per_sender = 2000;
    std::atomic<int> answered{0};
    std::atomic<int> wrong{0};
    std::atomic<int> started{0};
    std::vector<std::thread> threads;
    for (int s = 0; s < senders; ++s)
      threads.emplace_back([&] {
        caf::scoped_actor me{sys};
        std::vector<decltype(me->request(sut->handle(), troupe::test::deadline, 0))> pending;
        ++started;
        for (int i = 0; i < per_sender; ++i)
          pending.push_back(me->request(sut->handle(), troupe::test::deadline, i));
        for (int i = 0; i < per_sender; ++i)
          pending[i].receive(
            [&, i](int x) {
              if (x != 2 * i)
                ++wrong;
              ++answered;
            },
            [&](caf::error& err) {
              // Held by the pool when it stopped, or sent after.
              if (troupe::is(err, errc::cancelled) || err == caf::sec::request_receiver_down)
                ++answered;
              else
                ++wrong;
            });
      });
    REQUIRE(eventually([&] { return started == senders; }));
    CHECK_FALSE(sut->stop(troupe::test::deadline));
    for (auto& t : threads)
      t.join();
    CHECK(wrong == 0);
    CHECK(answered == senders * per_sender);
  }

} // TEST_SUITE
