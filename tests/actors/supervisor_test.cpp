#include "support/fixture.hpp"
#include "troupe/error.hpp"
#include "troupe/supervisor.hpp"

#include <algorithm>
#include <atomic>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

using troupe::child_spec;
using troupe::errc;
using troupe::restart_policy;
using troupe::restart_strategy;
using troupe::supervisor;
using troupe::supervisor_flags;
using troupe::test::eventually;
using troupe::test::fixture;

namespace {

using crash_atom = caf::atom_constant<caf::atom("crash")>;
using leave_atom = caf::atom_constant<caf::atom("leave")>;
using hold_atom = caf::atom_constant<caf::atom("hold")>;

/// What the test children write down: how often each was started, and the
/// order in which incarnations ended.
struct journal {
  std::mutex mtx;
  /// Children told to stop, in the order they took it: written before the
  /// child ends, so before its supervisor can go on.
  std::vector<std::string> stopped;
  /// Every incarnation that ended, written during its cleanup (which may
  /// finish just after its down message went out).
  std::vector<std::string> ended;
  std::unordered_map<std::string, std::atomic<int>> starts;

  int started(const std::string& name) {
    return starts.at(name).load();
  }
};

/// A child that answers `get` with its incarnation number, crashes on
/// `crash`, exits normally on `leave`, and takes `hold` requests without
/// ever answering them.
child_spec test_child(std::shared_ptr<journal> log, std::string name,
                      restart_policy restart = restart_policy::permanent) {
  log->starts[name] = 0;
  child_spec spec;
  spec.name = name;
  spec.restart = restart;
  spec.start = [log, name](caf::actor_system& sys) {
    auto n = ++log->starts.at(name);
    return sys.spawn([log, name, n](caf::event_based_actor* self) -> caf::behavior {
      self->attach_functor([log, name](const caf::error&) {
        std::lock_guard<std::mutex> guard{log->mtx};
        log->ended.push_back(name);
      });
      self->set_exit_handler([self, log, name](caf::exit_msg& msg) {
        if (msg.reason == caf::exit_reason::normal)
          return; // as CAF's default handler
        {
          std::lock_guard<std::mutex> guard{log->mtx};
          log->stopped.push_back(name);
        }
        self->quit(msg.reason);
      });
      return {
        [n](caf::get_atom) { return n; },
        [self](crash_atom) { self->quit(caf::sec::runtime_error); },
        [self](leave_atom) { self->quit(); },
        [self](hold_atom) { return self->make_response_promise<int>(); },
        [](caf::add_atom) {}, // answers with an empty message
        [](caf::sub_atom) -> caf::result<int> {
          return caf::make_error(caf::sec::unexpected_response, "junk");
        },
      };
    });
  };
  return spec;
}

/// Asks `who` for its incarnation number.
caf::expected<int> incarnation(caf::scoped_actor& self, const caf::actor& who) {
  caf::expected<int> result{0};
  self->request(who, troupe::test::deadline, caf::get_atom::value)
    .receive([&](int n) { result = n; }, [&](caf::error& err) { result = std::move(err); });
  return result;
}

supervisor_flags flags(restart_strategy strategy, std::size_t max_restarts = 10,
                       caf::timespan period = std::chrono::seconds(10)) {
  supervisor_flags result;
  result.strategy = strategy;
  result.max_restarts = max_restarts;
  result.period = period;
  return result;
}

} // namespace

TEST_SUITE("actors.supervisor") {

  TEST_CASE_FIXTURE(fixture, "a crashed child is restarted and its stable handle reaches it") {
    auto log = std::make_shared<journal>();
    auto sut = supervisor::make(sys, flags(restart_strategy::one_for_one),
                                {test_child(log, "a"), test_child(log, "b")});
    REQUIRE(sut);
    auto a = *sut->child("a");
    auto b = *sut->child("b");
    CHECK(*incarnation(self, a) == 1);
    self->send(a, crash_atom::value);
    REQUIRE(eventually([&] { return log->started("a") == 2; }));
    CHECK(*incarnation(self, a) == 2);
    CHECK(*incarnation(self, b) == 1); // one_for_one: the sibling is untouched
    CHECK(log->started("b") == 1);
  }

  TEST_CASE_FIXTURE(fixture, "one_for_all restarts every child when one crashes") {
    auto log = std::make_shared<journal>();
    auto sut = supervisor::make(sys, flags(restart_strategy::one_for_all),
                                {test_child(log, "a"), test_child(log, "b")});
    REQUIRE(sut);
    self->send(*sut->child("a"), crash_atom::value);
    REQUIRE(eventually([&] { return log->started("a") == 2 && log->started("b") == 2; }));
    CHECK(*incarnation(self, *sut->child("a")) == 2);
    CHECK(*incarnation(self, *sut->child("b")) == 2);
  }

  TEST_CASE_FIXTURE(fixture, "rest_for_one restarts the crashed child and those started after it") {
    auto log = std::make_shared<journal>();
    auto sut = supervisor::make(sys, flags(restart_strategy::rest_for_one),
                                {test_child(log, "a"), test_child(log, "b"), test_child(log, "c")});
    REQUIRE(sut);
    self->send(*sut->child("b"), crash_atom::value);
    REQUIRE(eventually([&] { return log->started("b") == 2 && log->started("c") == 2; }));
    CHECK(*incarnation(self, *sut->child("c")) == 2);
    CHECK(*incarnation(self, *sut->child("a")) == 1);
    CHECK(log->started("a") == 1);
  }

  TEST_CASE_FIXTURE(fixture, "too many restarts within the period make the supervisor give up") {
    auto log = std::make_shared<journal>();
    auto sut = supervisor::make(sys, flags(restart_strategy::one_for_one, 2),
                                {test_child(log, "a"), test_child(log, "b")});
    REQUIRE(sut);
    self->monitor(sut->handle());
    auto a = *sut->child("a");
    for (int i = 1; i <= 2; ++i) {
      self->send(a, crash_atom::value);
      REQUIRE(eventually([&] { return log->started("a") == i + 1; }));
    }
    self->send(a, crash_atom::value); // the third restart within the period
    caf::error reason;
    self->receive([&](caf::down_msg& msg) { reason = msg.reason; },
                  caf::after(troupe::test::deadline) >> [] { FAIL("the supervisor kept going"); });
    CHECK(troupe::is(reason, errc::restart_intensity));
    CHECK(log->started("a") == 3);
    // It stopped the other child on its way out.
    std::lock_guard<std::mutex> guard{log->mtx};
    CHECK(std::count(log->stopped.begin(), log->stopped.end(), "b") == 1);
  }

  TEST_CASE_FIXTURE(fixture, "a program hears of every restart and of the supervisor giving up") {
    struct heard {
      std::mutex mtx;
      std::vector<std::string> events;
    };
    auto log = std::make_shared<journal>();
    auto ears = std::make_shared<heard>();
    auto f = flags(restart_strategy::one_for_all, 1);
    f.on_event = [ears](const troupe::supervisor_event& ev) {
      auto kind = ev.what == troupe::supervisor_event::kind::restarted ? "restarted " : "gave up ";
      std::lock_guard<std::mutex> guard{ears->mtx};
      ears->events.push_back(kind + ev.child + " after " + troupe::describe(ev.reason));
    };
    auto sut = supervisor::make(sys, f, {test_child(log, "a"), test_child(log, "b")});
    REQUIRE(sut);
    self->monitor(sut->handle());
    self->send(*sut->child("b"), crash_atom::value);
    REQUIRE(eventually([&] { return log->started("a") == 2 && log->started("b") == 2; }));
    self->send(*sut->child("b"), crash_atom::value); // one restart too many
    self->receive([](caf::down_msg&) {},
                  caf::after(troupe::test::deadline) >> [] { FAIL("the supervisor kept going"); });
    std::lock_guard<std::mutex> guard{ears->mtx};
    auto crash = troupe::describe(caf::make_error(caf::sec::runtime_error));
    CHECK(ears->events
          == std::vector<std::string>{"restarted a after " + crash, "restarted b after " + crash,
                                      "gave up b after " + crash});
  }

  TEST_CASE_FIXTURE(fixture,
                    "a transient child is restarted after a crash but not after a normal exit") {
    auto log = std::make_shared<journal>();
    auto sut = supervisor::make(sys, flags(restart_strategy::one_for_one),
                                {test_child(log, "t", restart_policy::transient)});
    REQUIRE(sut);
    auto t = *sut->child("t");
    self->send(t, crash_atom::value);
    REQUIRE(eventually([&] { return log->started("t") == 2; }));
    self->send(t, leave_atom::value);
    auto gone = [&] {
      auto n = incarnation(self, t);
      return !n && troupe::is(n.error(), errc::child_down);
    };
    CHECK(eventually(gone));
    CHECK(log->started("t") == 2);
  }

  TEST_CASE_FIXTURE(fixture, "a permanent child is restarted even after a normal exit") {
    auto log = std::make_shared<journal>();
    auto sut = supervisor::make(sys, flags(restart_strategy::one_for_one),
                                {test_child(log, "p", restart_policy::permanent)});
    REQUIRE(sut);
    self->send(*sut->child("p"), leave_atom::value);
    REQUIRE(eventually([&] { return log->started("p") == 2; }));
    CHECK(*incarnation(self, *sut->child("p")) == 2);
  }

  TEST_CASE_FIXTURE(fixture, "a temporary child is never restarted") {
    auto log = std::make_shared<journal>();
    auto sut =
      supervisor::make(sys, flags(restart_strategy::one_for_one),
                       {test_child(log, "x", restart_policy::temporary), test_child(log, "y")});
    REQUIRE(sut);
    auto x = *sut->child("x");
    self->send(x, crash_atom::value);
    CHECK(eventually([&] {
      auto n = incarnation(self, x);
      return !n && troupe::is(n.error(), errc::child_down);
    }));
    CHECK(log->started("x") == 1);
    CHECK(*incarnation(self, *sut->child("y")) == 1);
  }

  TEST_CASE_FIXTURE(fixture, "a request in flight to a crashing child fails with child_down") {
    auto log = std::make_shared<journal>();
    auto sut = supervisor::make(sys, flags(restart_strategy::one_for_one), {test_child(log, "a")});
    REQUIRE(sut);
    auto a = *sut->child("a");
    // The child takes this request and never answers it; then it crashes.
    auto held = self->request(a, troupe::test::deadline, hold_atom::value);
    self->send(a, crash_atom::value);
    held.receive([](int) { FAIL("a held request was answered"); },
                 [](caf::error& err) { CHECK(troupe::is(err, errc::child_down)); });
    REQUIRE(eventually([&] { return log->started("a") == 2; }));
    CHECK(*incarnation(self, a) == 2);
  }

  TEST_CASE_FIXTURE(fixture,
                    "backoff delays a restart and the handle then serves the new incarnation") {
    auto log = std::make_shared<journal>();
    supervisor_flags f = flags(restart_strategy::one_for_one);
    f.backoff =
      troupe::restart_backoff{std::chrono::milliseconds(30), std::chrono::milliseconds(30), 0.0};
    auto sut = supervisor::make(sys, f, {test_child(log, "a")});
    REQUIRE(sut);
    auto a = *sut->child("a");
    auto crashed_at = std::chrono::steady_clock::now();
    self->send(a, crash_atom::value);
    // Requests that reach the handle after it saw the crash wait there for
    // the restart; earlier ones die with the old incarnation (child_down).
    REQUIRE(eventually([&] {
      auto n = incarnation(self, a);
      return n && *n == 2;
    }));
    CHECK(std::chrono::steady_clock::now() - crashed_at >= std::chrono::milliseconds(30));
    CHECK(log->started("a") == 2);
  }

  TEST_CASE_FIXTURE(fixture, "an orderly stop ends the children in reverse start order") {
    auto log = std::make_shared<journal>();
    auto sut = supervisor::make(sys, flags(restart_strategy::one_for_one),
                                {test_child(log, "a"), test_child(log, "b"), test_child(log, "c")});
    REQUIRE(sut);
    CHECK_FALSE(sut->stop(troupe::test::deadline));
    std::lock_guard<std::mutex> guard{log->mtx};
    CHECK(log->stopped == std::vector<std::string>{"c", "b", "a"});
  }

  TEST_CASE_FIXTURE(fixture, "a child that ignores the stop is killed after its shutdown timeout") {
    child_spec stubborn;
    stubborn.name = "stubborn";
    stubborn.shutdown_timeout = std::chrono::milliseconds(20);
    stubborn.start = [](caf::actor_system& sys) {
      return sys.spawn([](caf::event_based_actor* self) -> caf::behavior {
        self->set_exit_handler([](caf::exit_msg&) {}); // ignores user_shutdown
        return {[](caf::get_atom) { return 1; }};
      });
    };
    auto sut = supervisor::make(sys, flags(restart_strategy::one_for_one), {stubborn});
    REQUIRE(sut);
    auto start = std::chrono::steady_clock::now();
    CHECK_FALSE(sut->stop(troupe::test::deadline));
    CHECK(std::chrono::steady_clock::now() - start >= stubborn.shutdown_timeout);
  }

  TEST_CASE_FIXTURE(fixture, "a child given forever to stop is waited for, not killed") {
    auto reason = std::make_shared<std::promise<caf::error>>();
    child_spec slow;
    slow.name = "slow";
    slow.shutdown_timeout = troupe::forever;
    slow.start = [reason](caf::actor_system& sys) {
      return sys.spawn([reason](caf::event_based_actor* self) -> caf::behavior {
        self->attach_functor([reason](const caf::error& why) { reason->set_value(why); });
        self->set_exit_handler([self](caf::exit_msg&) {
          // Takes a while to wind down, then leaves.
          self->delayed_send(self, std::chrono::milliseconds(20), leave_atom::value);
        });
        return {[self](leave_atom) { self->quit(caf::exit_reason::user_shutdown); }};
      });
    };
    auto sut = supervisor::make(sys, flags(restart_strategy::one_for_one), {slow});
    REQUIRE(sut);
    CHECK_FALSE(sut->stop(troupe::test::deadline));
    auto why = reason->get_future();
    REQUIRE(why.wait_for(troupe::test::deadline) == std::future_status::ready);
    CHECK(why.get() == caf::exit_reason::user_shutdown);
  }

  TEST_CASE_FIXTURE(fixture, "a temporary sibling ends instead of being restarted by one_for_all") {
    auto log = std::make_shared<journal>();
    auto sut =
      supervisor::make(sys, flags(restart_strategy::one_for_all),
                       {test_child(log, "a"), test_child(log, "tmp", restart_policy::temporary)});
    REQUIRE(sut);
    self->send(*sut->child("a"), crash_atom::value);
    REQUIRE(eventually([&] { return log->started("a") == 2; }));
    CHECK(eventually([&] {
      auto n = incarnation(self, *sut->child("tmp"));
      return !n && troupe::is(n.error(), errc::child_down);
    }));
    CHECK(log->started("tmp") == 1);
  }

  TEST_CASE_FIXTURE(fixture, "crashes during a restart leave exactly one incarnation per child") {
    auto log = std::make_shared<journal>();
    supervisor_flags f = flags(restart_strategy::rest_for_one);
    f.backoff =
      troupe::restart_backoff{std::chrono::milliseconds(50), std::chrono::milliseconds(50), 0.0};
    auto sut =
      supervisor::make(sys, f, {test_child(log, "a"), test_child(log, "b"), test_child(log, "c")});
    REQUIRE(sut);
    // c's restart waits out the backoff while a and b crash too.
    for (auto name : {"c", "a", "b"})
      self->send(*sut->child(name), crash_atom::value);
    auto settled = [&] {
      for (auto name : {"a", "b", "c"}) {
        auto n = incarnation(self, *sut->child(name));
        if (!n || *n != log->started(name))
          return false;
      }
      return true;
    };
    REQUIRE(eventually(settled));
    // Every started incarnation but the current one has ended.
    for (auto name : {"a", "b", "c"})
      CHECK_MESSAGE(eventually([&] {
                      std::lock_guard<std::mutex> guard{log->mtx};
                      auto ended = std::count(log->ended.begin(), log->ended.end(), name);
                      return log->started(name) - ended == 1;
                    }),
                    name);
  }

  TEST_CASE_FIXTURE(fixture, "restarts that keep failing make the supervisor give up") {
    auto starts = std::make_shared<std::atomic<int>>(0);
    child_spec fragile;
    fragile.name = "fragile";
    fragile.start = [starts](caf::actor_system& sys) {
      if (++*starts > 1)
        throw std::runtime_error("cannot start again");
      return sys.spawn([](caf::event_based_actor* self) -> caf::behavior {
        return {[self](crash_atom) { self->quit(caf::sec::runtime_error); }};
      });
    };
    auto sut = supervisor::make(sys, flags(restart_strategy::one_for_one, 50), {fragile});
    REQUIRE(sut);
    self->monitor(sut->handle());
    self->send(*sut->child("fragile"), crash_atom::value);
    self->receive(
      [](caf::down_msg& msg) { CHECK(troupe::is(msg.reason, errc::restart_intensity)); },
      caf::after(troupe::test::deadline) >> [] { FAIL("the supervisor kept going"); });
    CHECK(*starts == 51);
  }

  TEST_CASE_FIXTURE(fixture,
                    "a stable handle passes on empty answers and error answers as they are") {
    auto log = std::make_shared<journal>();
    auto sut = supervisor::make(sys, flags(restart_strategy::one_for_one), {test_child(log, "a")});
    REQUIRE(sut);
    auto a = *sut->child("a");
    self->request(a, troupe::test::deadline, caf::add_atom::value)
      .receive([] {}, [](caf::error& err) { FAIL(troupe::describe(err)); });
    self->request(a, troupe::test::deadline, caf::sub_atom::value)
      .receive([](int) { FAIL("an error answer became a value"); },
               [](caf::error& err) { CHECK(err == caf::sec::unexpected_response); });
  }

  TEST_CASE_FIXTURE(fixture, "an error sent as a message goes to the child, not to the handle") {
    auto log = std::make_shared<journal>();
    auto sut = supervisor::make(sys, flags(restart_strategy::one_for_one), {test_child(log, "a")});
    REQUIRE(sut);
    auto a = *sut->child("a");
    self->monitor(a);
    self->send(a, caf::make_error(caf::sec::runtime_error)); // ends the child (CAF's default)
    REQUIRE(eventually([&] { return log->started("a") == 2; }));
    CHECK(eventually([&] {
      auto n = incarnation(self, a);
      return n && *n == 2;
    }));
    self->receive([](caf::down_msg&) { FAIL("the stable handle died"); },
                  caf::after(std::chrono::milliseconds(0)) >> [] {});
  }

  TEST_CASE_FIXTURE(fixture, "a supervisor that gives up is restarted by its own supervisor") {
    auto log = std::make_shared<journal>();
    child_spec inner;
    inner.name = "inner";
    auto leaf_spec = test_child(log, "leaf");
    inner.start = [leaf_spec](caf::actor_system& sys) {
      return troupe::spawn_supervisor(sys, flags(restart_strategy::one_for_one, 0), {leaf_spec});
    };
    auto sut = supervisor::make(sys, flags(restart_strategy::one_for_one), {inner});
    REQUIRE(sut);
    REQUIRE(eventually([&] { return log->started("leaf") == 1; }));
    // Ask the inner supervisor for its child's handle, then crash the child:
    // the inner supervisor allows no restart and gives up, the outer one
    // restarts it, and with it a fresh leaf.
    caf::actor leaf;
    self
      ->request(*sut->child("inner"), troupe::test::deadline, caf::get_atom::value,
                std::string{"leaf"})
      .receive([&](caf::actor& x) { leaf = x; },
               [](caf::error& err) { FAIL(troupe::describe(err)); });
    REQUIRE(leaf);
    self->monitor(leaf); // the leaf's handle ends with the inner supervisor
    self->send(leaf, crash_atom::value);
    self->receive(
      [&](caf::down_msg& msg) {
        CHECK(msg.source == leaf.address());
        CHECK(troupe::is(msg.reason, errc::restart_intensity));
      },
      caf::after(troupe::test::deadline) >> [] { FAIL("the inner supervisor did not give up"); });
    CHECK(eventually([&] { return log->started("leaf") == 2; }));
  }

  TEST_CASE_FIXTURE(fixture, "invalid child specs are refused") {
    auto log = std::make_shared<journal>();
    auto twice = supervisor::make(sys, {}, {test_child(log, "a"), test_child(log, "a")});
    CHECK(troupe::is(twice.error(), errc::invalid_argument));
    child_spec no_start;
    no_start.name = "x";
    CHECK(troupe::is(supervisor::make(sys, {}, {no_start}).error(), errc::invalid_argument));
    child_spec no_name = test_child(log, "");
    CHECK(troupe::is(supervisor::make(sys, {}, {no_name}).error(), errc::invalid_argument));
  }

  TEST_CASE_FIXTURE(fixture, "a child that fails to start fails the start and stops its elders") {
    auto log = std::make_shared<journal>();
    child_spec broken;
    broken.name = "broken";
    broken.start = [](caf::actor_system&) -> caf::actor { throw std::runtime_error("no db"); };
    auto sut = supervisor::make(sys, {}, {test_child(log, "a"), broken});
    REQUIRE_FALSE(sut);
    CHECK(troupe::is(sut.error(), errc::start_failed));
    CHECK(troupe::describe(sut.error()).find("no db") != std::string::npos);
    CHECK(eventually([&] {
      std::lock_guard<std::mutex> guard{log->mtx};
      return log->stopped == std::vector<std::string>{"a"};
    }));
  }

  TEST_CASE_FIXTURE(fixture, "an unknown child name is an error") {
    auto log = std::make_shared<journal>();
    auto sut = supervisor::make(sys, {}, {test_child(log, "a")});
    REQUIRE(sut);
    CHECK(troupe::is(sut->child("nope").error(), errc::invalid_argument));
  }

} // TEST_SUITE
