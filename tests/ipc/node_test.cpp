#include "support.hpp"
#include "troupe/ipc/inspect.hpp"
#include "troupe/ipc/node.hpp"
#include "troupe/ipc/process_supervision.hpp"
#include "troupe/ipc/testing/node_hooks.hpp"
#include "troupe/supervisor.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>

using namespace troupe::test::ipc;
using std::chrono::milliseconds;
using troupe::errc;
using troupe::ipc::child_process;
using troupe::ipc::node;

namespace {

using in_order_atom = caf::atom_constant<caf::atom("in_order")>;

/// Counts the ints it gets and checks that each stream 0, 1, 2... arrives in
/// order.
caf::behavior sink(caf::event_based_actor*) {
  auto next = std::make_shared<int32_t>(0);
  auto count = std::make_shared<int64_t>(0);
  auto ordered = std::make_shared<bool>(true);
  return {
    [=](int32_t x) {
      if (x != *next)
        *ordered = false;
      *next = x + 1;
      ++*count;
    },
    [=](count_atom) { return *count; },
    [=](in_order_atom) { return *ordered; },
  };
}

/// Keeps this thread busy until it used `cpu` of CPU time.
void spin_cpu(std::chrono::nanoseconds cpu) {
  auto used = [] {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
  };
  auto until = used() + cpu;
  while (used() < until) {
  }
}

/// Whether `troupe ls` would show slot `slot` of `group` in `state`.
bool slot_state_is(const std::string& group, uint32_t slot, const std::string& state) {
  auto g = troupe::ipc::inspect_group(group);
  if (!g)
    return false;
  for (auto& s : g->slots)
    if (s.slot == slot)
      return s.state == state;
  return false;
}

/// This process's resident memory in bytes.
uint64_t resident_bytes() {
  std::ifstream in{"/proc/self/statm"};
  uint64_t size = 0;
  uint64_t resident = 0;
  in >> size >> resident;
  return resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

/// The wire format of a frame header, as a hostile writer would forge it.
struct raw_header {
  uint32_t magic = 0x46505254u;
  uint16_t version = 2;
  uint16_t kind = 1;
  uint32_t length = 0;
  uint32_t flags = 0;
  uint64_t receiver = 0;
  uint64_t mid = 0;
  uint64_t sender = 0;
  uint32_t from_epoch = 1; // every slot's first node
  uint32_t to_epoch = 1;
};
static_assert(sizeof(raw_header) == 48);

std::vector<unsigned char> frame_bytes(const raw_header& h,
                                       const std::vector<unsigned char>& body) {
  std::vector<unsigned char> res(sizeof(h) + body.size());
  std::memcpy(res.data(), &h, sizeof(h));
  if (!body.empty())
    std::memcpy(res.data() + sizeof(h), body.data(), body.size());
  return res;
}

/// Options of a group of `max_nodes` slots whose nodes write nothing on
/// stderr.
troupe::ipc::group_options
quiet_options(uint32_t max_nodes = troupe::ipc::group_options{}.max_nodes) {
  troupe::ipc::group_options opts;
  opts.max_nodes = max_nodes;
  opts.quiet = true;
  return opts;
}

/// Descriptors this process has open.
int64_t open_descriptors() {
  int64_t n = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator{"/proc/self/fd"})
    ++n;
  return n - 1; // the listing's own
}

/// Lowers this process's soft limit on open files for a scope.
struct descriptor_limit_guard {
  rlimit saved{};
  explicit descriptor_limit_guard(int64_t soft) {
    ::getrlimit(RLIMIT_NOFILE, &saved);
    auto tight = saved;
    tight.rlim_cur = static_cast<rlim_t>(soft);
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &tight) == 0);
  }
  ~descriptor_limit_guard() {
    ::setrlimit(RLIMIT_NOFILE, &saved);
  }
};

} // namespace

TEST_SUITE("ipc.node") {

  TEST_CASE("a published actor in a child process answers requests from the parent") {
    ipc_fixture f{"answer"};
    auto sut = node::create(f.sys, f.group);
    REQUIRE_MESSAGE(sut, troupe::describe(sut.error()));
    auto child = f.serve(*sut, "echo");
    auto echo = f.find(*sut, "echo");
    CHECK(f.ask<std::string>(echo, std::string{"hello"}) == std::string{"hello"});
    auto p = f.ask<point>(echo, point{1, 2});
    REQUIRE(p);
    CHECK(p->x == 2);
    CHECK(p->y == 1);
    f.self->send(f.find(*sut, "echo.ctl"), leave_atom::value);
    auto status = child.wait(deadline);
    REQUIRE(status);
    CHECK(status->success());
  }

  TEST_CASE("messages from one sender to one receiver keep their order") {
    ipc_fixture f{"order"};
    auto sut = node::create(f.sys, f.group);
    REQUIRE(sut);
    auto s = f.spawn(sink);
    auto published = sut->publish("sink", s);
    REQUIRE_MESSAGE(published, troupe::describe(published.error()));
    auto child = f.serve(*sut, "echo");
    auto echo = f.find(*sut, "echo");
    constexpr int32_t n = 20000;
    CHECK(f.ask<caf::atom_value>(echo, flood_atom::value, std::string{"sink"}, n)
          == caf::atom("done"));
    CHECK(eventually([&] { return f.ask<int64_t>(s, count_atom::value) == int64_t{n}; }));
    CHECK(f.ask<bool>(s, in_order_atom::value) == true);
  }

  TEST_CASE("a flood into a slow actor fills its mailbox a turn at a time, not a ring at a time") {
    // The reader reads at most 64 frames a turn, then runs the actor they
    // made ready for as many messages: decoding does not run ahead of
    // handling. (With the actor on a worker of the scheduler, decoding ran
    // ahead and most of the flood waited in the mailbox.)
    ipc_fixture f{"turns"};
    auto sut = node::create(f.sys, f.group);
    REQUIRE(sut);
    auto deepest = std::make_shared<std::atomic<size_t>>(0);
    auto s = f.spawn([deepest](caf::event_based_actor* self) -> caf::behavior {
      auto count = std::make_shared<int64_t>(0);
      return {
        [=](int32_t) {
          // A handler of a few microseconds: slower than decoding.
          auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(2);
          while (std::chrono::steady_clock::now() < until) {
          }
          auto depth = self->mailbox().size();
          if (depth > deepest->load())
            deepest->store(depth); // one writer: this actor
          ++*count;
        },
        [=](count_atom) { return *count; },
      };
    });
    auto published = sut->publish("sink", s);
    REQUIRE_MESSAGE(published, troupe::describe(published.error()));
    auto child = f.serve(*sut, "echo");
    auto echo = f.find(*sut, "echo");
    constexpr int32_t n = 20000;
    CHECK(f.ask<caf::atom_value>(echo, flood_atom::value, std::string{"sink"}, n)
          == caf::atom("done"));
    CHECK(eventually([&] { return f.ask<int64_t>(s, count_atom::value) == int64_t{n}; }));
    // Two turns' worth and room to spare; a ring holds about 14,000 of these.
    CHECK_MESSAGE(deepest->load() < 1000, "the mailbox held " << deepest->load() << " messages");
  }

  TEST_CASE("an actor whose runs keep the reader busy, by CPU or by blocking, goes to the "
            "scheduler") {
    // A run of over 1 ms by the clock makes the next run of that actor be
    // looked at closer: it counts if it used over 1 ms of CPU time, or took
    // that long and blocked (a run that was only preempted does not count).
    // Three that count within a second move the actor to the scheduler: the
    // reader runs it six times at most.
    ipc_fixture f{"slowrun"};
    auto sut = node::create(f.sys, f.group);
    REQUIRE(sut);
    auto child = f.serve(*sut, "echo");
    auto echo = f.find(*sut, "echo");
    for (bool blocks : {false, true}) {
      CAPTURE(blocks);
      // Per run: 'R' if the node's reader thread ran it, else 'w'.
      auto runs = std::make_shared<std::string>();
      auto slow = f.spawn([runs, blocks](caf::event_based_actor*) -> caf::behavior {
        return {
          [=](int32_t) {
            if (blocks)
              std::this_thread::sleep_for(milliseconds(2)); // as a handler waiting on I/O
            else
              spin_cpu(milliseconds(2));
            char name[16] = {};
            ::pthread_getname_np(::pthread_self(), name, sizeof(name));
            *runs += std::string{name} == "troupe.reader" ? 'R' : 'w';
          },
          [=](count_atom) { return static_cast<int64_t>(runs->size()); },
        };
      });
      std::string name = blocks ? "napper" : "hog";
      auto published = sut->publish(name, slow);
      REQUIRE_MESSAGE(published, troupe::describe(published.error()));
      constexpr int32_t total = 30;
      for (int32_t i = 1; i <= total; ++i) {
        // One message per run: the next is sent once this one was handled.
        CHECK(f.ask<caf::atom_value>(echo, flood_atom::value, name, int32_t{1})
              == caf::atom("done"));
        CHECK(eventually([&] { return f.ask<int64_t>(slow, count_atom::value) == int64_t{i}; }));
      }
      INFO("runs: " << *runs);
      auto on_reader = std::count(runs->begin(), runs->end(), 'R');
      CHECK(on_reader >= 1);
      CHECK(on_reader <= 6);
    }
  }

  TEST_CASE("a name is published once per group and found from every node") {
    ipc_fixture f{"names"};
    auto sut = node::create(f.sys, f.group);
    REQUIRE(sut);
    auto s = f.spawn(sink);
    auto published = sut->publish("sink", s);
    REQUIRE_MESSAGE(published, troupe::describe(published.error()));
    auto again = sut->publish("sink", f.spawn(sink));
    CHECK(troupe::is(again.error(), troupe::ipc::errc::name_taken));
    CHECK(troupe::is(sut->lookup("nobody", caf::timespan{0}).error(),
                     troupe::ipc::errc::name_not_found));
    CHECK(troupe::is(sut->publish("", s).error(), errc::invalid_argument));
    REQUIRE_FALSE(sut->unpublish("sink"));
    CHECK(
      troupe::is(sut->lookup("sink", caf::timespan{0}).error(), troupe::ipc::errc::name_not_found));
  }

  TEST_CASE("a publication ends its name and its actor with its scope, or with the node") {
    ipc_fixture f{"pubscope"};
    auto sut = node::create(f.sys, f.group);
    REQUIRE(sut);
    auto scoped = f.spawn(sink);
    auto released = f.spawn(sink);
    auto unpublished = f.spawn(sink);
    for (auto& x : {scoped, released, unpublished})
      f.self->monitor(x);
    auto down_reason = [&](const caf::actor& x) {
      caf::error reason;
      f.self->receive(
        [&](caf::down_msg& dm) {
          CHECK(dm.source == x.address());
          reason = dm.reason;
        },
        caf::after(deadline) >> [] { FAIL("no down_msg"); });
      return reason;
    };
    {
      auto pub = sut->publish("scoped", scoped);
      REQUIRE(pub);
      CHECK(pub->name() == "scoped");
      CHECK(sut->lookup("scoped", caf::timespan{0}) == scoped);
    }
    CHECK(troupe::is(sut->lookup("scoped", caf::timespan{0}).error(),
                     troupe::ipc::errc::name_not_found));
    CHECK(down_reason(scoped) == caf::exit_reason::user_shutdown);
    // Released: published and running until the node leaves.
    auto pub = sut->publish("released", released);
    REQUIRE(pub);
    pub->release();
    CHECK(pub->name().empty());
    CHECK(sut->lookup("released", caf::timespan{0}) == released);
    CHECK(f.ask<int64_t>(released, count_atom::value) == int64_t{0});
    // Unpublished by name: no longer the node's to end.
    auto other = sut->publish("unpublished", unpublished);
    REQUIRE(other);
    other->release();
    REQUIRE_FALSE(sut->unpublish("unpublished"));
    sut->leave();
    CHECK(down_reason(released) == caf::exit_reason::user_shutdown);
    CHECK(f.ask<int64_t>(unpublished, count_atom::value) == int64_t{0});
  }

  TEST_CASE("a monitor of a remote actor sees its exit reason") {
    ipc_fixture f{"monitor"};
    auto sut = node::create(f.sys, f.group);
    REQUIRE(sut);
    auto child = f.serve(*sut, "echo");
    auto echo = f.find(*sut, "echo");
    f.self->monitor(echo);
    f.self->send(echo, die_atom::value);
    caf::error reason;
    f.self->receive([&](caf::down_msg& dm) { reason = dm.reason; },
                    caf::after(deadline) >> [] { FAIL("no down_msg"); });
    CHECK(reason == caf::exit_reason::user_shutdown);
  }

  TEST_CASE("a link across processes carries an exit both ways") {
    ipc_fixture f{"link"};
    auto sut = node::create(f.sys, f.group);
    REQUIRE(sut);
    auto child = f.serve(*sut, "echo");
    auto echo = f.find(*sut, "echo");
    // A local actor that traps exits and reports them to the test.
    auto report = caf::actor{f.self};
    auto trapper = f.spawn([report](caf::event_based_actor* self) -> caf::behavior {
      self->set_exit_handler([=](caf::exit_msg& em) { self->send(report, em.reason); });
      return {[](int32_t) {}};
    });
    // The child links its echo to our actor (the handle travels in a message).
    CHECK(f.ask<caf::atom_value>(echo, linkto_atom::value, trapper) == caf::atom("linked"));
    f.self->send(echo, die_atom::value);
    caf::error reason;
    f.self->receive([&](caf::error& err) { reason = err; },
                    caf::after(deadline) >> [] { FAIL("no exit_msg"); });
    CHECK(reason == caf::exit_reason::user_shutdown);

    // And the other way: our actor dies, the child's linked actor dies too.
    auto child2 = f.serve(*sut, "echo2");
    auto echo2 = f.find(*sut, "echo2");
    auto victim =
      f.spawn([](caf::event_based_actor*) -> caf::behavior { return {[](int32_t) {}}; });
    CHECK(f.ask<caf::atom_value>(echo2, linkto_atom::value, victim) == caf::atom("linked"));
    f.self->monitor(echo2);
    f.self->send_exit(victim, caf::exit_reason::user_shutdown);
    f.self->receive([&](caf::down_msg& dm) { reason = dm.reason; },
                    caf::after(deadline) >> [] { FAIL("the linked remote actor lived on"); });
    CHECK_MESSAGE(reason == caf::exit_reason::user_shutdown, troupe::describe(reason));
  }

  TEST_CASE("kill -9 of a node fails its monitors and pending requests with peer_lost") {
    ipc_fixture f{"kill"};
    auto sut = node::create(f.sys, f.group);
    REQUIRE(sut);
    auto victim = f.serve(*sut, "victim");
    auto other = f.serve(*sut, "other");
    auto v = f.find(*sut, "victim");
    auto o = f.find(*sut, "other");
    auto a = f.spawn(asker, caf::actor{f.self});
    f.self->send(a, v, hold_atom::value);
    // The request is in the victim's hands once it answers something sent later.
    REQUIRE(f.ask<int32_t>(v, int32_t{7}) == int32_t{7});
    f.self->monitor(v);
    auto killed_at = std::chrono::steady_clock::now();
    REQUIRE_FALSE(victim.kill(SIGKILL));
    caf::error reason;
    f.self->receive([&](caf::down_msg& dm) { reason = dm.reason; },
                    caf::after(deadline) >> [] { FAIL("no down_msg after kill -9"); });
    auto elapsed = std::chrono::steady_clock::now() - killed_at;
    CHECK(troupe::is(reason, errc::peer_lost));
    CHECK(elapsed < milliseconds(200));
    std::string outcome;
    f.self->receive([&](std::string& x) { outcome = x; },
                    caf::after(deadline) >> [] { FAIL("the pending request was never answered"); });
    CHECK(outcome.find("peer_lost") != std::string::npos);
    // Requests to the dead node fail at once; the other node goes on.
    CHECK(troupe::is(f.ask<int32_t>(v, int32_t{1}).error(), errc::peer_lost));
    CHECK(f.ask<int32_t>(o, int32_t{5}) == int32_t{5});
  }

  TEST_CASE(
    "a writer killed half-way through a frame wedges neither the reader nor other writers") {
    ipc_fixture f{"stall"};
    auto sut = node::create(f.sys, f.group);
    REQUIRE(sut);
    auto s = f.spawn(sink);
    auto published = sut->publish("sink", s);
    REQUIRE_MESSAGE(published, troupe::describe(published.error()));
    auto staller = f.serve(*sut, "staller");
    auto other = f.serve(*sut, "other");
    auto st = f.find(*sut, "staller");
    auto o = f.find(*sut, "other");
    f.self->send(st, stall_atom::value, std::string{"sink"});
    REQUIRE(eventually([&] { return process_state(staller.pid()) == 'T'; }));
    REQUIRE_FALSE(staller.kill(SIGKILL));
    REQUIRE(staller.wait(deadline));
    // The other writer's frames all reach the same reader.
    CHECK(f.ask<caf::atom_value>(o, flood_atom::value, std::string{"sink"}, int32_t{5000})
          == caf::atom("done"));
    CHECK(eventually([&] { return f.ask<int64_t>(s, count_atom::value) == int64_t{5000}; }));
    CHECK(f.ask<bool>(f.find(*sut, "sink"), in_order_atom::value) == true);
    CHECK(f.ask<int32_t>(o, int32_t{9}) == int32_t{9});
  }

  TEST_CASE(
    "a handler that blocks on a reply from another process while run by the reader gets it") {
    // The reader thread runs the actor that a frame made ready. Its handler
    // waits (a plain CAF blocking request) for an answer that only a reader
    // of this node's rings can bring: another thread must take over reading.
    ipc_fixture f{"blockin"};
    auto sut = node::create(f.sys, f.group);
    REQUIRE(sut);
    auto child = f.serve(*sut, "echo");
    auto echo = f.find(*sut, "echo");
    auto report = caf::actor{f.self};
    auto* sys = &f.sys;
    auto blocker = f.spawn([echo, report, sys](caf::event_based_actor*) -> caf::behavior {
      return {
        [echo, report, sys](int32_t) {
          caf::scoped_actor waiter{*sys};
          waiter->request(echo, deadline, int32_t{5})
            .receive([&](int32_t x) { waiter->send(report, x); },
                     [&](caf::error& err) { waiter->send(report, err); });
        },
      };
    });
    auto published = sut->publish("blocker", blocker);
    REQUIRE_MESSAGE(published, troupe::describe(published.error()));
    // The child sends one int to the blocker (from its own actor).
    CHECK(f.ask<caf::atom_value>(echo, flood_atom::value, std::string{"blocker"}, int32_t{1})
          == caf::atom("done"));
    f.self->receive(
      [](int32_t x) { CHECK(x == 5); },
      [](caf::error& err) { FAIL("the blocked handler got " << troupe::describe(err)); },
      caf::after(deadline) >> [] { FAIL("the blocked handler never finished"); });
    // Input goes on as before once it is back.
    CHECK(f.ask<int32_t>(echo, int32_t{9}) == int32_t{9});
    f.self->send(f.find(*sut, "echo.ctl"), leave_atom::value);
    CHECK(child.wait(deadline));
  }

  TEST_CASE("an actor run by the reader that waits for a local actor it sent to is not stuck") {
    // What an actor run on the reader thread makes ready must not queue
    // behind it on that thread: it waits for `helper` to run.
    ipc_fixture f{"waitloc"};
    auto sut = node::create(f.sys, f.group);
    REQUIRE(sut);
    auto child = f.serve(*sut, "echo");
    auto echo = f.find(*sut, "echo");
    auto done = std::make_shared<std::promise<int32_t>>();
    auto helper = f.spawn([done](caf::event_based_actor*) -> caf::behavior {
      return {[done](int32_t x) { done->set_value(x + 1); }};
    });
    auto report = caf::actor{f.self};
    auto waiter = f.spawn([helper, done, report](caf::event_based_actor* self) -> caf::behavior {
      return {
        [=](int32_t x) {
          self->send(helper, x);
          auto answer = done->get_future();
          if (answer.wait_for(deadline) == std::future_status::ready)
            self->send(report, answer.get());
          else
            self->send(report, caf::atom("stuck"));
        },
      };
    });
    auto published = sut->publish("waiter", waiter);
    REQUIRE_MESSAGE(published, troupe::describe(published.error()));
    CHECK(f.ask<caf::atom_value>(echo, flood_atom::value, std::string{"waiter"}, int32_t{1})
          == caf::atom("done"));
    f.self->receive([](int32_t x) { CHECK(x == 1); },
                    [](caf::atom_value) { FAIL("the local actor never ran"); },
                    caf::after(2 * deadline) >> [] { FAIL("no report"); });
    f.self->send(f.find(*sut, "echo.ctl"), leave_atom::value);
    CHECK(child.wait(deadline));
  }

  TEST_CASE("an actor run by the reader may make its node leave") {
    ipc_fixture f{"leavein"};
    auto sut = node::create(f.sys, f.group);
    REQUIRE(sut);
    auto child = f.serve(*sut, "echo");
    auto echo = f.find(*sut, "echo");
    auto report = caf::actor{f.self};
    auto* n = &*sut;
    auto leaver = f.spawn([n, report](caf::event_based_actor* self) -> caf::behavior {
      return {[=](int32_t) {
        n->leave();
        self->send(report, std::string{"left"});
      }};
    });
    auto published = sut->publish("leaver", leaver);
    REQUIRE_MESSAGE(published, troupe::describe(published.error()));
    // The child sends one int to the leaver. Its answer to this request may
    // come, or not: leaving fails what this node still waits for.
    f.self->send(echo, flood_atom::value, std::string{"leaver"}, int32_t{1});
    bool left = false;
    f.self->receive_while([&] { return !left; })([&](const std::string& x) { left = x == "left"; },
                                                 [](caf::atom_value) {}, [](caf::error&) {},
                                                 caf::after(deadline) >>
                                                   [&] {
                                                     FAIL("the actor did not get through leave");
                                                     left = true;
                                                   });
    // The node is gone for the child: it leaves when told and exits.
    child.kill(SIGTERM);
    CHECK(child.wait(deadline));
  }

  TEST_CASE("killing nodes while traffic flows in all directions never hangs") {
    ipc_fixture f{"chaos"};
    auto sut = node::create(f.sys, f.group);
    REQUIRE(sut);
    auto s = f.spawn(sink);
    auto published = sut->publish("sink", s);
    REQUIRE_MESSAGE(published, troupe::describe(published.error()));
    std::vector<child_process> children;
    std::vector<std::string> names;
    int serial = 0;
    auto add_child = [&] {
      auto name = "n" + std::to_string(serial++);
      children.push_back(f.serve(*sut, name));
      names.push_back(name);
    };
    for (int i = 0; i < 3; ++i)
      add_child();
    for (int round = 0; round < 4; ++round) {
      std::vector<caf::actor> actors;
      for (auto& name : names)
        actors.push_back(f.find(*sut, name));
      // Every child floods every other child and the parent; the parent floods
      // every child.
      for (size_t i = 0; i < actors.size(); ++i) {
        for (size_t j = 0; j < actors.size(); ++j)
          if (i != j)
            f.self->send(actors[i], flood_atom::value, names[j], int32_t{3000});
        f.self->send(actors[i], flood_atom::value, std::string{"sink"}, int32_t{3000});
        for (int32_t k = 0; k < 500; ++k)
          caf::anon_send(actors[i], k);
      }
      // Kill one while that traffic runs.
      auto victim = static_cast<size_t>(round) % children.size();
      REQUIRE_FALSE(children[victim].kill(SIGKILL));
      REQUIRE(children[victim].wait(deadline));
      children.erase(children.begin() + static_cast<long>(victim));
      names.erase(names.begin() + static_cast<long>(victim));
      actors.erase(actors.begin() + static_cast<long>(victim));
      // Everyone left still answers.
      for (auto& a : actors)
        CHECK(f.ask<int32_t>(a, int32_t{round}) == int32_t{round});
      add_child();
    }
  }

  TEST_CASE("what a node wrote before it died reaches a node that never saw it alive") {
    // Found by the chaos soak: a node that joined, wrote to another and died
    // between two looks of that other node at the slot table (a third node
    // marked its slot dead first) had its frames dropped.
    ipc_fixture f{"unseen"};
    auto sut = node::create(f.sys, f.group);
    REQUIRE(sut);
    auto reader = f.serve(*sut, "reader");
    auto r = f.find(*sut, "reader");
    REQUIRE(f.ask<int64_t>(r, count_atom::value) == int64_t{0});
    // The reader sleeps through the writer's whole life.
    REQUIRE_FALSE(reader.kill(SIGSTOP));
    REQUIRE(eventually([&] { return process_state(reader.pid()) == 'T'; }));
    auto writer = f.serve(*sut, "writer");
    auto w = f.find(*sut, "writer");
    auto slot = troupe::ipc::testing::slot_of(*sut, "writer");
    REQUIRE(slot);
    REQUIRE(f.ask<caf::atom_value>(w, flood_atom::value, std::string{"reader"}, int32_t{100})
            == caf::atom("done"));
    REQUIRE_FALSE(writer.kill(SIGKILL));
    REQUIRE(writer.wait(deadline));
    // This node sees the death and marks the slot dead while the reader sleeps.
    REQUIRE(eventually([&] { return slot_state_is(f.group, *slot, "dead"); }));
    REQUIRE_FALSE(reader.kill(SIGCONT));
    CHECK(eventually([&] { return f.ask<int64_t>(r, count_atom::value) == int64_t{100}; }));
  }

  TEST_CASE("a node that has not seen a node go writes nothing to the next node in its slot") {
    // Three slots: this node, a writer, and the one that is reused.
    ipc_fixture f{"reuse-writer"};
    auto opts = quiet_options(3);
    opts.ring_bytes = 64 * 1024;
    auto sut = node::create(f.sys, f.group, opts);
    REQUIRE(sut);
    auto writer = f.serve(*sut, "writer");
    auto w = f.find(*sut, "writer");
    auto old = f.serve(*sut, "old");
    f.find(*sut, "old");
    auto from = troupe::ipc::testing::slot_of(*sut, "writer");
    auto slot = troupe::ipc::testing::slot_of(*sut, "old");
    REQUIRE(from);
    REQUIRE(slot);
    // The writer fills its ring to a node that reads no more, and waits.
    REQUIRE_FALSE(old.kill(SIGSTOP));
    REQUIRE(eventually([&] { return process_state(old.pid()) == 'T'; }));
    auto flood =
      f.self->request(w, caf::infinite, flood_atom::value, std::string{"old"}, int32_t{100000});
    REQUIRE(eventually([&] {
      return troupe::ipc::testing::unread_bytes(*sut, *from, *slot) > opts.ring_bytes / 2;
    }));
    // It sleeps through that node's death and the claim of its slot.
    REQUIRE_FALSE(writer.kill(SIGSTOP));
    REQUIRE(eventually([&] { return process_state(writer.pid()) == 'T'; }));
    REQUIRE_FALSE(old.kill(SIGKILL));
    REQUIRE(old.wait(deadline));
    REQUIRE(eventually([&] { return slot_state_is(f.group, *slot, "dead"); }));
    auto next = f.serve(*sut, "next");
    auto n = f.find(*sut, "next");
    REQUIRE(troupe::ipc::testing::slot_of(*sut, "next") == *slot);
    // Woken, it may write on into the ring before it sees the old node gone
    // (its threads race; "a frame is read only by the nodes it is between"
    // checks the rule itself): none of that reaches the new node.
    REQUIRE_FALSE(writer.kill(SIGCONT));
    flood.receive([](caf::atom_value) {}, [](caf::error&) {});
    CHECK(f.ask<int32_t>(w, ask_atom::value, std::string{"next"}, int32_t{5}) == int32_t{5});
    CHECK(f.ask<int64_t>(n, count_atom::value) == int64_t{1});
    auto stats = f.ask<std::vector<uint64_t>>(n, stats_atom::value);
    REQUIRE(stats);
    CHECK((*stats)[2] == 0); // nothing rejected
  }

  TEST_CASE("what a node wrote before it died is read after its slot has a new node") {
    ipc_fixture f{"reuse-reader"};
    auto opts = quiet_options(3);
    auto sut = node::create(f.sys, f.group, opts);
    REQUIRE(sut);
    auto reader = f.serve(*sut, "reader");
    auto r = f.find(*sut, "reader");
    auto old = f.serve(*sut, "old");
    auto o = f.find(*sut, "old");
    auto slot = troupe::ipc::testing::slot_of(*sut, "old");
    REQUIRE(slot);
    // The reader sleeps while the old node writes to it and dies, and while
    // a new node in that slot writes to it too.
    REQUIRE_FALSE(reader.kill(SIGSTOP));
    REQUIRE(eventually([&] { return process_state(reader.pid()) == 'T'; }));
    REQUIRE(f.ask<caf::atom_value>(o, flood_atom::value, std::string{"reader"}, int32_t{100})
            == caf::atom("done"));
    REQUIRE_FALSE(old.kill(SIGKILL));
    REQUIRE(old.wait(deadline));
    REQUIRE(eventually([&] { return slot_state_is(f.group, *slot, "dead"); }));
    auto to = troupe::ipc::testing::slot_of(*sut, "reader");
    REQUIRE(to);
    auto into_reader = [&] { return troupe::ipc::testing::unread_bytes(*sut, *slot, *to); };
    auto left_by_old = into_reader();
    REQUIRE(left_by_old > 0);
    auto next = f.serve(*sut, "next");
    auto n = f.find(*sut, "next");
    REQUIRE(troupe::ipc::testing::slot_of(*sut, "next") == *slot);
    auto asked = f.self->request(n, deadline, ask_atom::value, std::string{"reader"}, int32_t{6});
    // The request is in the ring behind the old node's frames.
    REQUIRE(eventually([&] { return into_reader() > left_by_old; }));
    REQUIRE_FALSE(reader.kill(SIGCONT));
    int32_t answer = 0;
    asked.receive([&](int32_t x) { answer = x; },
                  [](caf::error& err) { FAIL(troupe::describe(err)); });
    CHECK(answer == 6);
    // All of the old node's, and the new node's one.
    CHECK(f.ask<int64_t>(r, count_atom::value) == int64_t{101});
  }

  TEST_CASE("a node taken for dead while it ran leaves the next node's slot alone") {
    // Found by the churn under load: a node leaving stored `free` into a slot
    // that had passed to another node after it was taken for dead (ABA on
    // the state). The new node was then free to be claimed over, and the two
    // nodes in one slot lost each other's frames, a cascade through the
    // slot's next nodes.
    ipc_fixture f{"taken-for-dead"};
    auto opts = quiet_options(2); // the next node can only take the old node's slot
    auto sut = node::create(f.sys, f.group, opts);
    REQUIRE(sut);
    auto old = sut->spawn(TROUPE_IPC_CHILD, {"serve", "old", "leave-on-usr1"});
    REQUIRE(old);
    f.find(*sut, "old");
    auto slot = troupe::ipc::testing::slot_of(*sut, "old");
    REQUIRE(slot);
    REQUIRE(troupe::ipc::testing::take_for_dead(*sut, *slot));
    auto next = f.serve(*sut, "next");
    auto n = f.find(*sut, "next");
    REQUIRE(troupe::ipc::testing::slot_of(*sut, "next") == *slot);
    // The old node runs on, unaware, and leaves.
    REQUIRE_FALSE(old->kill(SIGUSR1));
    auto status = old->wait(deadline);
    REQUIRE(status);
    CHECK(status->success());
    CHECK(slot_state_is(f.group, *slot, "alive"));
    CHECK(f.ask<int32_t>(n, int32_t{7}) == int32_t{7});
    // No third node gets the slot while the next one holds it.
    troupe::ipc::group_options fail_fast = opts;
    fail_fast.join_timeout = std::chrono::seconds(3); // longer than the slot would rest
    config cfg2{true};
    caf::actor_system sys2{cfg2};
    auto third = node::join(sys2, f.group, sut->key(), fail_fast);
    REQUIRE_FALSE(third);
    CHECK(troupe::is(third.error(), troupe::ipc::errc::group_full));
  }

  TEST_CASE("a claim is abandoned when its claimer is gone, and not before") {
    // A claimer that stalled for long (a loaded machine) had its claim taken
    // for abandoned; it then wrote its pid and node id over the next node's.
    ipc_fixture f{"claim-abandoned"};
    auto opts = quiet_options(2);
    auto sut = node::create(f.sys, f.group, opts);
    REQUIRE(sut);
    // A process that took slot 1 and stalls before it is alive.
    auto claimer = troupe::ipc::spawn_process("/bin/sleep", {"600"});
    REQUIRE(claimer);
    REQUIRE(troupe::ipc::testing::claim_as(*sut, 1, claimer->pid()));
    config cfg2{true};
    caf::actor_system sys2{cfg2};
    auto refused = node::join(sys2, f.group, sut->key(), opts);
    REQUIRE_FALSE(refused);
    CHECK(troupe::is(refused.error(), troupe::ipc::errc::group_full));
    CHECK(slot_state_is(f.group, 1, "claiming"));
    // Once it is gone, the slot rests and is taken.
    REQUIRE_FALSE(claimer->kill(SIGKILL));
    REQUIRE(claimer->wait(deadline));
    auto next = f.serve(*sut, "next");
    f.find(*sut, "next");
    CHECK(troupe::ipc::testing::slot_of(*sut, "next") == uint32_t{1});
  }

  TEST_CASE("a node that leaves before it handled a peer's loss keeps nothing of it") {
    // Found by the churn's descriptor check: a peer still waiting to be
    // handled kept a proxy of its actor cached as a sender, the proxy kept
    // the peer and the node's core: the core's and the peer's descriptors
    // stayed open for good.
    ipc_fixture f{"leave-unhandled"};
    auto before = open_descriptors();
    {
      auto opts = quiet_options();
      auto sut = node::create(f.sys, f.group, opts);
      REQUIRE(sut);
      auto here = sut->publish(
        "here", f.spawn([]() -> caf::behavior { return {[](int32_t x) { return x; }}; }));
      REQUIRE(here);
      auto peer = f.serve(*sut, "peer");
      auto echo = f.find(*sut, "peer");
      // The peer asks an actor of this node: its asking actor is a sender here.
      REQUIRE(f.ask<int32_t>(echo, ask_atom::value, std::string{"here"}, int32_t{3}) == int32_t{3});
      // It dies (no word of its actors' ends comes), another node marks its
      // slot dead (this node's peer table forgets it then), and this node
      // does not get to handle the loss.
      troupe::ipc::testing::hold_losses(*sut, true);
      auto slot = troupe::ipc::testing::slot_of(*sut, "peer");
      REQUIRE(slot);
      REQUIRE_FALSE(peer.kill(SIGKILL));
      REQUIRE(peer.wait(deadline));
      REQUIRE(troupe::ipc::testing::take_for_dead(*sut, *slot));
      REQUIRE(eventually([&] {
        return troupe::ipc::testing::known_peers(*sut) == 0
               && troupe::ipc::testing::unhandled_losses(*sut) == 1;
      }));
      sut->leave();
    }
    CHECK(open_descriptors() == before);
  }

  TEST_CASE("a peer's descriptor is closed once its loss is handled, though handles live on") {
    ipc_fixture f{"loss-closes"};
    auto sut = node::create(f.sys, f.group, quiet_options());
    REQUIRE(sut);
    auto alone = open_descriptors();
    auto peer = f.serve(*sut, "peer");
    auto echo = f.find(*sut, "peer");
    CHECK(open_descriptors() == alone + 1); // the peer's pidfd
    REQUIRE_FALSE(peer.kill(SIGKILL));
    REQUIRE(peer.wait(deadline));
    REQUIRE(eventually([&] {
      return troupe::ipc::testing::known_peers(*sut) == 0
             && troupe::ipc::testing::unhandled_losses(*sut) == 0;
    }));
    // `echo` is a dead proxy now, and it holds the peer.
    CHECK(open_descriptors() == alone);
    auto answer = f.ask<int32_t>(echo, int32_t{1});
    REQUIRE_FALSE(answer);
    CHECK(troupe::is(answer.error(), troupe::errc::peer_lost));
  }

  TEST_CASE("a node that left holds no descriptor while handles to other nodes' actors live on") {
    // A handle to another node's actor holds its proxy, which holds the
    // peer and the node's core: their descriptors are closed by `leave`.
    ipc_fixture f{"left-handles"};
    auto before = open_descriptors();
    auto sut = node::create(f.sys, f.group, quiet_options());
    REQUIRE(sut);
    auto peer = f.serve(*sut, "peer");
    auto echo = f.find(*sut, "peer");
    REQUIRE(f.ask<int32_t>(echo, int32_t{5}) == int32_t{5});
    CHECK(open_descriptors() > before);
    sut->leave();
    CHECK(open_descriptors() == before);
    auto answer = f.ask<int32_t>(echo, int32_t{5});
    REQUIRE_FALSE(answer);
    CHECK(troupe::is(answer.error(), troupe::errc::peer_lost));
    REQUIRE_FALSE(peer.kill(SIGKILL));
    REQUIRE(peer.wait(deadline));
  }

  TEST_CASE("a node that left refuses what needs its group") {
    ipc_fixture f{"left-refuses"};
    auto sut = node::create(f.sys, f.group, quiet_options());
    REQUIRE(sut);
    auto peer = f.serve(*sut, "peer");
    f.find(*sut, "peer");
    auto mine = f.spawn([]() -> caf::behavior { return {[](int32_t x) { return x; }}; });
    REQUIRE(sut->publish("mine", mine));
    sut->leave();
    // The group runs on in the child: each of these would reach it.
    auto left = [](const caf::error& err) {
      return troupe::is(err, troupe::errc::peer_lost)
             && troupe::describe(err).find("this node left group") != std::string::npos;
    };
    CHECK(left(sut->lookup("peer", caf::timespan{0}).error()));
    CHECK(left(sut->lookup_in(peer.pid(), "peer", caf::timespan{0}).error()));
    CHECK(left(sut->publish("late", mine).error()));
    CHECK(left(sut->unpublish("mine")));
    CHECK(left(sut->spawn_in(peer.pid(), "adder", int32_t{1}).error()));
    CHECK(left(sut->spawn_in("peer", "adder", int32_t{1}).error()));
    CHECK(left(sut->spawn(TROUPE_IPC_CHILD, {"serve", "other"}).error()));
    CHECK(left(sut->spawn_self({}).error()));
    REQUIRE_FALSE(peer.kill(SIGKILL));
    REQUIRE(peer.wait(deadline));
  }

  TEST_CASE("a lookup that waits while its node leaves fails with peer_lost") {
    ipc_fixture f{"left-waiting"};
    auto sut = node::create(f.sys, f.group, quiet_options());
    REQUIRE(sut);
    auto peer = f.serve(*sut, "peer");
    f.find(*sut, "peer");
    // Waits for a name nobody published yet (forever, by default).
    auto waiting = std::async(std::launch::async, [&] { return sut->lookup("later"); });
    sut->leave();
    REQUIRE(waiting.wait_for(deadline) == std::future_status::ready);
    auto found = waiting.get();
    REQUIRE_FALSE(found);
    CHECK(troupe::is(found.error(), troupe::errc::peer_lost));
    REQUIRE_FALSE(peer.kill(SIGKILL));
    REQUIRE(peer.wait(deadline));
  }

  TEST_CASE("a process at its open-file limit cannot join") {
    ipc_fixture f{"nofile-join"};
    auto opts = quiet_options();
    auto sut = node::create(f.sys, f.group, opts);
    REQUIRE(sut);
    // Four descriptors left: fewer than a node of 8 needs.
    config cfg2{true};
    caf::actor_system sys2{cfg2};
    descriptor_limit_guard tight{open_descriptors() + 4};
    auto early = node::join(sys2, f.group, sut->key(), opts);
    REQUIRE_FALSE(early);
    CHECK(troupe::is(early.error(), troupe::ipc::errc::resource_limit));
    CHECK_MESSAGE(troupe::describe(early.error()).find("ulimit -n") != std::string::npos,
                  troupe::describe(early.error()));
  }

  TEST_CASE("a node at its open-file limit watches new peers by polling") {
#ifdef TROUPE_TEST_UBSAN_VPTR
    // UBSan's vptr check probes memory with pipe(2): in a process without a
    // free descriptor it reports a false "invalid vptr" (and ends the child).
    MESSAGE("skipped: UBSan cannot run a process at its open-file limit; the build without "
            "sanitizers runs this test");
    return;
#endif
    ipc_fixture f{"nofile-poll"};
    auto opts = quiet_options();
    auto sut = node::create(f.sys, f.group, opts);
    REQUIRE(sut);
    // A node that joined, then used up its descriptors, meets a newcomer.
    auto at_limit = sut->spawn(TROUPE_IPC_CHILD, {"serve", "lim", "at-limit"});
    REQUIRE_MESSAGE(at_limit, troupe::describe(at_limit.error()));
    auto lim = f.find(*sut, "lim");
    auto used_up = f.ask<int64_t>(f.find(*sut, "lim.ctl"), count_atom::value);
    REQUIRE(used_up);
    CHECK(*used_up > 0);
    auto b = f.serve(*sut, "b");
    f.find(*sut, "b");
    // It takes the newcomer for alive (it cannot read /proc either) and
    // talks to it, watching it by polling.
    CHECK(f.ask<int32_t>(lim, ask_atom::value, std::string{"b"}, int32_t{7}) == int32_t{7});
    auto stats = f.ask<std::vector<uint64_t>>(lim, stats_atom::value);
    REQUIRE(stats);
    REQUIRE(stats->size() == 4);
    CHECK((*stats)[3] == 1);
    // A request it has pending on the newcomer fails once that dies.
    auto pending = f.self->request(lim, deadline, ask_atom::value, std::string{"b"}, int32_t{-1});
    // Answered after the held request reached the newcomer (one sender, in order).
    CHECK(f.ask<int32_t>(lim, ask_atom::value, std::string{"b"}, int32_t{8}) == int32_t{8});
    REQUIRE_FALSE(b.kill(SIGKILL));
    caf::error reason;
    pending.receive([](int32_t) { FAIL("a held request was answered"); },
                    [&](caf::error& err) { reason = std::move(err); });
    CHECK_MESSAGE(troupe::is(reason, errc::peer_lost), troupe::describe(reason));
    // And the rest of the group goes on.
    CHECK(f.ask<int32_t>(lim, int32_t{9}) == int32_t{9});
    f.self->send(f.find(*sut, "lim.ctl"), leave_atom::value);
    auto status = at_limit->wait(deadline);
    REQUIRE(status);
    CHECK(status->success());
  }

  TEST_CASE("a link made by a node that died before the other node saw it alive still holds") {
    // The link frame names an actor of a node that is gone by the time it is
    // read: the linked actor gets an exit_msg with peer_lost (the handle is a
    // dead proxy, not an invalid one).
    ipc_fixture f{"unseenlink"};
    auto sut = node::create(f.sys, f.group);
    REQUIRE(sut);
    auto reader = f.serve(*sut, "reader");
    auto r = f.find(*sut, "reader");
    REQUIRE(f.ask<int64_t>(r, count_atom::value) == int64_t{0});
    f.self->monitor(r);
    REQUIRE_FALSE(reader.kill(SIGSTOP));
    REQUIRE(eventually([&] { return process_state(reader.pid()) == 'T'; }));
    auto writer = f.serve(*sut, "writer");
    auto w = f.find(*sut, "writer");
    auto slot = troupe::ipc::testing::slot_of(*sut, "writer");
    REQUIRE(slot);
    REQUIRE(f.ask<caf::atom_value>(w, linkto_atom::value, r) == caf::atom("linked"));
    // A control frame that found the ring busy waits in the writer's backlog;
    // a message written after it (in order) shows it is in the ring.
    REQUIRE(f.ask<caf::atom_value>(w, flood_atom::value, std::string{"reader"}, int32_t{1})
            == caf::atom("done"));
    REQUIRE_FALSE(writer.kill(SIGKILL));
    REQUIRE(writer.wait(deadline));
    REQUIRE(eventually([&] { return slot_state_is(f.group, *slot, "dead"); }));
    REQUIRE_FALSE(reader.kill(SIGCONT));
    caf::error reason;
    f.self->receive([&](caf::down_msg& dm) { reason = dm.reason; },
                    caf::after(deadline) >> [] { FAIL("the reader's actor outlived its link"); });
    CHECK(troupe::is(reason, errc::peer_lost));
  }

  TEST_CASE("a full ring makes the sender wait and nothing is lost") {
    ipc_fixture f{"full"};
    troupe::ipc::group_options opts;
    opts.ring_bytes = 64 * 1024;
    auto sut = node::create(f.sys, f.group, opts);
    REQUIRE(sut);
    auto child = f.serve(*sut, "echo");
    auto echo = f.find(*sut, "echo");
    REQUIRE(f.ask<int64_t>(echo, count_atom::value) == int64_t{0});
    // Stop the reader's process: the ring fills and the sender has to wait.
    REQUIRE_FALSE(child.kill(SIGSTOP));
    REQUIRE(eventually([&] { return process_state(child.pid()) == 'T'; }));
    // 20,000 messages of 2 KiB: 40 MiB if anything buffered them.
    constexpr int32_t n = 20000;
    auto rss_before = resident_bytes();
    // Read before the sender starts: it may fill the ring at once.
    auto before = sut->stats().frames_sent;
    std::atomic<bool> done{false};
    std::thread sender{[&] {
      const std::string payload(2048, 'p');
      for (int32_t i = 0; i < n; ++i)
        caf::anon_send(echo, payload);
      done = true;
    }};
    // However the checks below end, the child goes on and the sender ends.
    struct resume_and_join {
      child_process& child;
      std::thread& sender;
      ~resume_and_join() {
        (void)child.kill(SIGCONT);
        if (sender.joinable())
          sender.join();
      }
    } at_exit{child, sender};
    // The sender is held up while the reader sleeps: it has sent what fits in
    // the ring and waits for the rest, and nothing piles up in its process.
    REQUIRE(eventually([&] { return sut->stats().frames_sent - before >= 20; }));
    CHECK_FALSE(done.load());
    CHECK(sut->stats().frames_sent - before <= opts.ring_bytes / 2048 + 1);
    CHECK(resident_bytes() < rss_before + (uint64_t{16} << 20));
    // It goes on when the reader wakes; every message arrives.
    REQUIRE_FALSE(child.kill(SIGCONT));
    sender.join();
    CHECK(eventually([&] { return f.ask<int64_t>(echo, count_atom::value) == int64_t{n}; }));
  }

  TEST_CASE("with the fail policy a full ring fails the request with errc::full") {
    ipc_fixture f{"fullfail"};
    auto opts = quiet_options();
    opts.ring_bytes = 64 * 1024;
    opts.on_full = troupe::ipc::full_policy::fail;
    auto sut = node::create(f.sys, f.group, opts);
    REQUIRE(sut);
    auto child = f.serve(*sut, "echo");
    auto echo = f.find(*sut, "echo");
    REQUIRE_FALSE(child.kill(SIGSTOP));
    REQUIRE(eventually([&] { return process_state(child.pid()) == 'T'; }));
    // 1000 messages of 512 bytes do not fit in 64 KiB: the sends that find
    // the ring full fail at once, and the sender hears it.
    for (int i = 0; i < 1000; ++i)
      f.self->send(echo, std::string(512, 'x'));
    caf::error err;
    f.self->receive([&](caf::error& e) { err = e; },
                    caf::after(deadline) >> [] { FAIL("no error for a full ring"); });
    CHECK(troupe::is(err, errc::full));
    REQUIRE_FALSE(child.kill(SIGCONT));
  }

  TEST_CASE("malformed frames are rejected and counted and the node keeps serving") {
    ipc_fixture f{"garbage"};
    auto opts = quiet_options();
    auto sut = node::create(f.sys, f.group, opts);
    REQUIRE(sut);
    auto child = f.serve(*sut, "echo");
    auto echo = f.find(*sut, "echo");
    auto slot = troupe::ipc::testing::slot_of(*sut, "echo");
    REQUIRE(slot);
    // A request written behind a frame that corrupts the ring is dropped with
    // it; the requester gets troupe::ipc::errc::bad_frame and asks again.
    auto rejected = [&]() -> uint64_t {
      for (int attempt = 0; attempt < 10; ++attempt) {
        auto s = f.ask<std::vector<uint64_t>>(echo, stats_atom::value);
        if (s)
          return (*s)[2];
        if (!troupe::is(s.error(), troupe::ipc::errc::bad_frame))
          break;
      }
      FAIL("the child stopped answering");
      return 0;
    };
    std::vector<std::vector<unsigned char>> bad;
    bad.push_back(std::vector<unsigned char>(64, 0xAB)); // garbage bytes
    raw_header wrong_magic;
    wrong_magic.magic = 0x12345678;
    bad.push_back(frame_bytes(wrong_magic, {}));
    raw_header wrong_version;
    wrong_version.version = 99;
    bad.push_back(frame_bytes(wrong_version, {}));
    raw_header past_end;
    past_end.length = 1u << 30;
    bad.push_back(frame_bytes(past_end, {1, 2, 3}));
    raw_header unknown_kind;
    unknown_kind.kind = 77;
    bad.push_back(frame_bytes(unknown_kind, {}));
    raw_header garbage_payload;
    garbage_payload.length = 24;
    bad.push_back(frame_bytes(garbage_payload, std::vector<unsigned char>(24, 0xFF)));
    raw_header truncated;
    truncated.length = 3;
    bad.push_back(frame_bytes(truncated, {0, 0, 0}));
    uint64_t seen = rejected();
    for (auto& frame : bad) {
      REQUIRE_FALSE(troupe::ipc::testing::write_raw(*sut, *slot, frame));
      CHECK(eventually([&] { return rejected() > seen; }));
      seen = rejected();
      // Still serving.
      CHECK(f.ask<int32_t>(echo, int32_t{3}) == int32_t{3});
    }
    // A message of a type the receiver does not know: rejected, and the
    // requester hears why.
    auto res = f.ask<std::string>(echo, secret{"psst"});
    REQUIRE_FALSE(res);
    CHECK(troupe::is(res.error(), troupe::ipc::errc::bad_frame));
    CHECK(f.ask<std::string>(echo, std::string{"still here"}) == std::string{"still here"});
  }

  TEST_CASE("a message larger than a ring travels in pieces up to the limit") {
    ipc_fixture f{"large"};
    auto opts = quiet_options();
    opts.ring_bytes = 256 * 1024;
    auto sut = node::create(f.sys, f.group, opts);
    REQUIRE(sut);
    auto child = f.serve(*sut, "echo");
    auto echo = f.find(*sut, "echo");
    std::string big((uint64_t{16} << 20) - 4096, 'y');
    auto back = f.ask<std::string>(echo, big);
    REQUIRE_MESSAGE(back, troupe::describe(back.error()));
    CHECK(*back == big);
    auto blob = f.ask<std::string>(echo, blob_atom::value, uint64_t{5} << 20);
    REQUIRE(blob);
    CHECK(blob->size() == (size_t{5} << 20));
    // Above the limit: a clear error, either way.
    std::string huge((uint64_t{16} << 20) + 1, 'z');
    CHECK(troupe::is(f.ask<std::string>(echo, huge).error(), troupe::ipc::errc::message_too_large));
    CHECK(troupe::is(f.ask<std::string>(echo, blob_atom::value, (uint64_t{16} << 20) + 1).error(),
                     troupe::ipc::errc::message_too_large));
    CHECK(f.ask<int32_t>(echo, int32_t{1}) == int32_t{1});
  }

  TEST_CASE("the segment is private to its owner and joining needs the key") {
    ipc_fixture f{"security"};
    auto sut = node::create(f.sys, f.group);
    REQUIRE(sut);
    struct stat st {};
    REQUIRE(::stat(shm_path(f.group).c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(st.st_uid == ::geteuid());
    auto key = sut->key();
    auto wrong = key;
    wrong[0] = wrong[0] == '0' ? '1' : '0';
    auto joined = node::join(f.sys, f.group, wrong);
    REQUIRE_FALSE(joined);
    CHECK(troupe::is(joined.error(), troupe::ipc::errc::bad_key));
    CHECK(troupe::describe(joined.error()).find("wrong key") != std::string::npos);
    CHECK(troupe::is(node::join(f.sys, f.group, "not-hex").error(), troupe::ipc::errc::bad_key));
    CHECK(troupe::is(node::join(f.sys, f.group + "-none", key).error(),
                     troupe::ipc::errc::no_such_group));
    auto second = node::create(f.sys, f.group);
    REQUIRE_FALSE(second);
    CHECK(troupe::is(second.error(), troupe::ipc::errc::group_running));
    auto text = troupe::describe(second.error());
    CHECK(text.find("group '" + f.group + "' is already running (pid " + std::to_string(::getpid())
                    + ")")
          != std::string::npos);
    CHECK(troupe::is(node::create(f.sys, "bad/name").error(), errc::invalid_argument));
  }

  TEST_CASE("a segment that others can read is not trusted") {
    ipc_fixture f{"loose"};
    // Someone made /dev/shm/troupe.<group> readable by everyone.
    auto fd = ::open(shm_path(f.group).c_str(), O_CREAT | O_EXCL | O_RDWR, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(::fchmod(fd, 0644) == 0);
    REQUIRE(::ftruncate(fd, 1 << 20) == 0);
    ::close(fd);
    auto joined = node::join(f.sys, f.group, std::string(32, '0'));
    REQUIRE_FALSE(joined);
    CHECK(troupe::is(joined.error(), troupe::ipc::errc::bad_segment));
    CHECK(troupe::describe(joined.error()).find("mode 0644") != std::string::npos);
    // Nor is it swept: create refuses instead of deleting what it cannot trust.
    CHECK(troupe::is(node::create(f.sys, f.group).error(), troupe::ipc::errc::bad_segment));
  }

  TEST_CASE("a segment left by a group whose processes all died is swept and reused") {
    ipc_fixture f{"sweep"};
    auto key_file = "/tmp/troupe-" + f.group + ".key";
    auto child = troupe::ipc::spawn_process(TROUPE_IPC_CHILD, {"create", f.group, key_file});
    REQUIRE(child);
    struct stat st {};
    REQUIRE(eventually([&] { return ::stat(key_file.c_str(), &st) == 0; }));
    std::remove(key_file.c_str());
    auto refused = node::create(f.sys, f.group);
    REQUIRE_FALSE(refused);
    CHECK(troupe::is(refused.error(), troupe::ipc::errc::group_running));
    REQUIRE_FALSE(child->kill(SIGKILL));
    REQUIRE(child->wait(deadline));
    CHECK(shm_exists(f.group));
    auto opts = quiet_options();
    auto sut = node::create(f.sys, f.group, opts);
    REQUIRE_MESSAGE(sut, troupe::describe(sut.error()));
    auto s = f.spawn(sink);
    auto published = sut->publish("sink", s);
    CHECK_MESSAGE(published, troupe::describe(published.error()));
  }

  TEST_CASE("a node that joins while every free slot rests waits for one, up to join_timeout") {
    ipc_fixture f{"slots"};
    auto opts = quiet_options(2);
    auto sut = node::create(f.sys, f.group, opts);
    REQUIRE(sut);
    // Other nodes of this process, each in an actor system of its own.
    config cfg2{true};
    caf::actor_system sys2{cfg2};
    auto join = [&](caf::timespan grace, caf::timespan patience) {
      troupe::ipc::group_options o;
      o.quiet = true;
      o.slot_grace = grace;
      o.join_timeout = patience;
      return node::join(sys2, f.group, sut->key(), o);
    };
    auto first = join(milliseconds(300), deadline);
    REQUIRE_MESSAGE(first, troupe::describe(first.error()));
    // Both slots taken: full at once, whatever the patience.
    auto full = join(milliseconds(300), deadline);
    REQUIRE_FALSE(full);
    CHECK(troupe::is(full.error(), troupe::ipc::errc::group_full));
    CHECK_MESSAGE(troupe::describe(full.error()).find("resting") == std::string::npos,
                  troupe::describe(full.error()));
    // The second slot rests once its node left: the next node waits for it.
    first->leave();
    auto second = join(milliseconds(300), deadline);
    REQUIRE_MESSAGE(second, troupe::describe(second.error()));
    second->leave();
    // A rest longer than the patience: full, and the error says why.
    auto impatient = join(std::chrono::seconds(30), milliseconds(100));
    REQUIRE_FALSE(impatient);
    CHECK(troupe::is(impatient.error(), troupe::ipc::errc::group_full));
    CHECK_MESSAGE(troupe::describe(impatient.error()).find("resting") != std::string::npos,
                  troupe::describe(impatient.error()));
  }

  TEST_CASE("every documented limit holds at the limit and is a clear error one past it") {
    ipc_fixture f{"limits"};
    auto fails = [](const caf::error& err, const std::string& says) {
      CHECK(troupe::is(err, troupe::errc::invalid_argument));
      CHECK_MESSAGE(troupe::describe(err).find(says) != std::string::npos, troupe::describe(err));
    };
    // One group at a time, each removed by its leave (shm_guard if a check fails).
    auto at_limit = [&](const std::string& group, troupe::ipc::group_options opts) {
      shm_guard guard{group};
      opts.quiet = true;
      auto g = node::create(f.sys, group, opts);
      REQUIRE_MESSAGE(g, group << ": " << troupe::describe(g.error()));
      g->leave();
      CHECK_FALSE(shm_exists(group));
    };
    auto past_limit = [&](const std::string& group, troupe::ipc::group_options opts,
                          const std::string& says) {
      shm_guard guard{group};
      opts.quiet = true;
      auto g = node::create(f.sys, group, opts);
      REQUIRE_FALSE(g);
      fails(g.error(), says);
      CHECK_FALSE(shm_exists(group));
    };
    troupe::ipc::group_options opts;
    // Group names: 1 to 48 characters of [A-Za-z0-9_.-].
    auto name48 = f.group + std::string(48 - f.group.size(), 'x');
    at_limit(name48, opts);
    past_limit(name48 + "x", opts, "1 to 48 characters");
    past_limit("", opts, "1 to 48 characters");
    past_limit(f.group + "/x", opts, "[A-Za-z0-9_.-]");
    // The geometry: 2 to 64 nodes, 1 to 65536 names, rings a power of two
    // from 64 KiB to 256 MiB, messages of 1 KiB to 1 GiB.
    auto with = [](auto change) {
      troupe::ipc::group_options o;
      change(o);
      return o;
    };
    at_limit(f.group + "-n", with([](auto& o) { o.max_nodes = 64; }));
    past_limit(f.group + "-n", with([](auto& o) { o.max_nodes = 65; }), "max_nodes");
    past_limit(f.group + "-n", with([](auto& o) { o.max_nodes = 1; }), "max_nodes");
    at_limit(f.group + "-m", with([](auto& o) { o.max_names = 65536; }));
    past_limit(f.group + "-m", with([](auto& o) { o.max_names = 65537; }), "max_names");
    at_limit(f.group + "-r", with([](auto& o) { o.ring_bytes = uint64_t{256} << 20; }));
    at_limit(f.group + "-r", with([](auto& o) { o.ring_bytes = uint64_t{64} << 10; }));
    past_limit(f.group + "-r", with([](auto& o) { o.ring_bytes = uint64_t{512} << 20; }),
               "ring_bytes");
    past_limit(f.group + "-r", with([](auto& o) { o.ring_bytes = uint64_t{32} << 10; }),
               "ring_bytes");
    at_limit(f.group + "-b", with([](auto& o) { o.max_message_bytes = uint64_t{1} << 30; }));
    past_limit(f.group + "-b", with([](auto& o) { o.max_message_bytes = (uint64_t{1} << 30) + 1; }),
               "max_message_bytes");
    // Published names: 1 to 64 characters, no control characters; as many
    // as `max_names`, then a clear error, and room again once one goes.
    opts.quiet = true;
    opts.max_names = 4;
    auto sut = node::create(f.sys, f.group, opts);
    REQUIRE(sut);
    auto s = f.spawn(sink);
    auto name64 = sut->publish(std::string(64, 'n'), s);
    CHECK_MESSAGE(name64, troupe::describe(name64.error()));
    auto found = sut->lookup(std::string(64, 'n'), caf::timespan{0});
    CHECK((found && *found == s));
    auto name65 = sut->publish(std::string(65, 'n'), s);
    REQUIRE_FALSE(name65);
    fails(name65.error(), "1 to 64 characters");
    auto control = sut->publish("a\nb", s);
    REQUIRE_FALSE(control);
    fails(control.error(), "control characters");
    std::vector<troupe::ipc::publication> more;
    // The node's own helpers may hold names too: fill what is left.
    for (int i = 0; i < 4; ++i)
      if (auto p = sut->publish("more-" + std::to_string(i), s))
        more.push_back(std::move(*p));
    auto no_room = sut->publish("one-too-many", s);
    REQUIRE_FALSE(no_room);
    fails(no_room.error(), "no room for more names (4)");
    name64->stop();
    auto room_again = sut->publish("one-too-many", s);
    CHECK_MESSAGE(room_again, troupe::describe(room_again.error()));
  }

  TEST_CASE("a node that leaves unpublishes its names and the last one out removes the segment") {
    ipc_fixture f{"leave"};
    {
      auto sut = node::create(f.sys, f.group);
      REQUIRE(sut);
      auto child = f.serve(*sut, "echo");
      auto echo = f.find(*sut, "echo");
      f.self->monitor(echo);
      f.self->send(f.find(*sut, "echo.ctl"), leave_atom::value);
      auto status = child.wait(deadline);
      REQUIRE(status);
      CHECK(status->success());
      f.self->receive([](caf::down_msg&) {}, caf::after(deadline) >> [] { FAIL("no down_msg"); });
      CHECK(troupe::is(sut->lookup("echo", caf::timespan{0}).error(),
                       troupe::ipc::errc::name_not_found));
      CHECK(shm_exists(f.group));
    }
    CHECK_FALSE(shm_exists(f.group));
  }

} // TEST_SUITE

TEST_SUITE("ipc.spawn_in") {

  TEST_CASE("spawn_in makes an actor of a registered type in another process, found by pid or "
            "by a name it published") {
    ipc_fixture f{"spawnin"};
    auto sut = node::create(f.sys, f.group);
    REQUIRE(sut);
    auto host = f.serve(*sut, "host");
    f.find(*sut, "host");
    auto by_pid = sut->spawn_in(host.pid(), "adder", int32_t{10});
    REQUIRE_MESSAGE(by_pid, troupe::describe(by_pid.error()));
    CHECK(f.ask<int32_t>(*by_pid, int32_t{5}) == int32_t{15});
    CHECK(f.ask<int32_t>(*by_pid, pid_atom::value) == int32_t{host.pid()});
    auto by_name = sut->spawn_in("host", "adder", int32_t{100});
    REQUIRE_MESSAGE(by_name, troupe::describe(by_name.error()));
    CHECK(f.ask<int32_t>(*by_name, int32_t{5}) == int32_t{105});
    CHECK(f.ask<int32_t>(*by_name, pid_atom::value) == int32_t{host.pid()});
    CHECK(*by_pid != *by_name);
    // One of them crashing leaves the host serving.
    f.self->monitor(*by_pid);
    f.self->send_exit(*by_pid, caf::exit_reason::kill);
    f.self->receive([](caf::down_msg&) {},
                    caf::after(deadline) >> [] { FAIL("the killed actor did not end"); });
    auto again = sut->spawn_in(host.pid(), "adder", int32_t{20});
    REQUIRE_MESSAGE(again, troupe::describe(again.error()));
    CHECK(f.ask<int32_t>(*again, int32_t{1}) == int32_t{21});
    auto here = sut->spawn_in(::getpid(), "adder", int32_t{1});
    REQUIRE_MESSAGE(here, troupe::describe(here.error()));
    CHECK(here->node() == f.sys.node());
    f.spawned.push_back(*here);
    CHECK(f.ask<int32_t>(*here, int32_t{1}) == int32_t{2});
  }

  TEST_CASE("spawn_in to a child started a moment ago waits for it to join") {
    ipc_fixture f{"spawnfresh"};
    auto sut = node::create(f.sys, f.group);
    REQUIRE(sut);
    // No lookup first: the child is still starting when spawn_in asks.
    auto host = f.serve(*sut, "fresh");
    auto res = sut->spawn_in(host.pid(), "adder", int32_t{3});
    REQUIRE_MESSAGE(res, troupe::describe(res.error()));
    CHECK(f.ask<int32_t>(*res, pid_atom::value) == int32_t{host.pid()});
  }

  TEST_CASE("a typed spawn_in is checked against the registered type's interface") {
    ipc_fixture f{"spawntyped"};
    auto sut = node::create(f.sys, f.group);
    REQUIRE(sut);
    auto host = f.serve(*sut, "host");
    f.find(*sut, "host");
    auto typed = sut->spawn_in<typed_adder_actor>(host.pid(), "typed_adder", int32_t{3});
    REQUIRE_MESSAGE(typed, troupe::describe(typed.error()));
    int32_t sum = 0;
    f.self->request(*typed, deadline, int32_t{4})
      .receive([&](int32_t x) { sum = x; }, [](caf::error& err) { FAIL(troupe::describe(err)); });
    CHECK(sum == 7);
    using wrong_actor = caf::typed_actor<caf::replies_to<std::string>::with<std::string>>;
    auto wrong = sut->spawn_in<wrong_actor>(host.pid(), "typed_adder", int32_t{3});
    REQUIRE_FALSE(wrong);
    CHECK(wrong.error() == caf::sec::unexpected_actor_messaging_interface);
    CHECK(troupe::describe(wrong.error()).find("typed_adder") != std::string::npos);
  }

  TEST_CASE("spawn_in says which type, which arguments or which process was wrong") {
    ipc_fixture f{"spawnerr"};
    auto sut = node::create(f.sys, f.group);
    REQUIRE(sut);
    auto host = f.serve(*sut, "host");
    f.find(*sut, "host");
    auto pid_text = std::to_string(host.pid());
    auto unknown = sut->spawn_in(host.pid(), "nosuch", int32_t{1});
    REQUIRE_FALSE(unknown);
    CHECK(unknown.error() == caf::sec::unknown_type);
    auto text = troupe::describe(unknown.error());
    CHECK(text.find("'nosuch'") != std::string::npos);
    CHECK(text.find(pid_text) != std::string::npos);
    auto bad_args = sut->spawn_in(host.pid(), "adder", std::string{"ten"});
    REQUIRE_FALSE(bad_args);
    CHECK(bad_args.error() == caf::sec::cannot_spawn_actor_from_arguments);
    CHECK(troupe::describe(bad_args.error()).find("adder") != std::string::npos);
    auto no_type = sut->spawn_in(host.pid(), "");
    REQUIRE_FALSE(no_type);
    CHECK(troupe::is(no_type.error(), errc::invalid_argument));
    auto no_pid = sut->spawn_in(0, "adder", int32_t{1});
    REQUIRE_FALSE(no_pid);
    CHECK(troupe::is(no_pid.error(), errc::invalid_argument));
    // A process that is not a node of the group: its parent's, say.
    auto stranger = sut->spawn_in(::getppid(), "adder", int32_t{1});
    REQUIRE_FALSE(stranger);
    CHECK(troupe::is(stranger.error(), errc::peer_lost));
    // A host that is gone.
    auto host_pid = host.pid();
    REQUIRE_FALSE(host.kill(SIGKILL));
    REQUIRE(host.wait(deadline));
    auto gone = sut->spawn_in(host_pid, "adder", int32_t{1});
    REQUIRE_FALSE(gone);
    CHECK(troupe::is(gone.error(), errc::peer_lost));
  }

  TEST_CASE("an actor spawned in a process ends when that process leaves the group") {
    ipc_fixture f{"spawnleave"};
    auto sut = node::create(f.sys, f.group);
    REQUIRE(sut);
    auto host = f.serve(*sut, "host");
    auto ctl = f.find(*sut, "host.ctl");
    auto spawned = sut->spawn_in(host.pid(), "adder", int32_t{1});
    REQUIRE_MESSAGE(spawned, troupe::describe(spawned.error()));
    f.self->monitor(*spawned);
    f.self->send(ctl, leave_atom::value);
    caf::error reason;
    f.self->receive([&](caf::down_msg& dm) { reason = dm.reason; },
                    caf::after(deadline) >> [] { FAIL("no down_msg for the spawned actor"); });
    // Its end (user_shutdown) or its node's, whichever reached us first.
    CHECK((reason == caf::exit_reason::user_shutdown || troupe::is(reason, errc::peer_lost)));
    auto status = host.wait(deadline);
    REQUIRE_MESSAGE(status, troupe::describe(status.error()));
    CHECK(status->success());
  }

} // TEST_SUITE

TEST_SUITE("ipc.tcp") {

  TEST_CASE("a group's actor is reached from another host through CAF's middleman") {
    ipc_fixture f{"tcp"};
    auto sut = node::create(f.sys, f.group);
    REQUIRE(sut);
    auto child = f.serve(*sut, "echo");
    auto echo = f.find(*sut, "echo");
    // The actor lives in the child; this node publishes it on loopback.
    auto port = sut->publish_tcp(echo, 0, "127.0.0.1");
    REQUIRE_MESSAGE(port, troupe::describe(port.error()));
    // A plain CAF program that knows nothing of troupe talks to it.
    auto client = troupe::ipc::spawn_process(TROUPE_PLAIN_CAF_CLIENT,
                                             {"127.0.0.1", std::to_string(*port), "over tcp"});
    REQUIRE(client);
    auto status = client->wait(deadline);
    REQUIRE(status);
    CHECK(status->success());
    // And troupe's own remote_tcp reaches it too.
    auto remote = sut->remote_tcp("127.0.0.1", *port);
    REQUIRE_MESSAGE(remote, troupe::describe(remote.error()));
    CHECK(f.ask<std::string>(*remote, std::string{"again"}) == std::string{"again"});
  }

  TEST_CASE("publish_tcp listens on loopback unless told otherwise") {
    ipc_fixture f{"tcplo"};
    auto sut = node::create(f.sys, f.group);
    REQUIRE(sut);
    auto s = f.spawn(sink);
    auto port = sut->publish_tcp(s, 0);
    REQUIRE_MESSAGE(port, troupe::describe(port.error()));
    // /proc/net/tcp: "sl local_address rem_address st ...", addresses in hex,
    // 0100007F for 127.0.0.1; st 0A is LISTEN.
    char wanted[32];
    std::snprintf(wanted, sizeof(wanted), ":%04X", static_cast<unsigned>(*port));
    std::ifstream in{"/proc/net/tcp"};
    std::string line;
    std::string local;
    while (std::getline(in, line)) {
      std::istringstream fields{line};
      std::string slot, addr, remote, state;
      fields >> slot >> addr >> remote >> state;
      if (state == "0A" && addr.size() > 5 && addr.substr(addr.size() - 5) == wanted)
        local = addr;
    }
    CHECK(local == std::string{"0100007F"} + wanted);
  }

  TEST_CASE("a supervised process published by its stable handle is reached across its restarts") {
    ipc_fixture f{"tcpsup"};
    auto group = node::create(f.sys, f.group);
    REQUIRE(group);
    auto spec = echo_process("w");
    auto sup = troupe::supervisor::make(f.sys, {}, {troupe::ipc::process_child(*group, spec)});
    REQUIRE_MESSAGE(sup, troupe::describe(sup.error()));
    auto handle = *sup->child("w");
    auto port = group->publish_tcp(handle, 0);
    REQUIRE_MESSAGE(port, troupe::describe(port.error()));
    auto ask_over_tcp = [&](const char* text) {
      auto client = troupe::ipc::spawn_process(TROUPE_PLAIN_CAF_CLIENT,
                                               {"127.0.0.1", std::to_string(*port), text});
      REQUIRE(client);
      auto status = client->wait(deadline);
      return status && status->success();
    };
    CHECK(ask_over_tcp("first incarnation"));
    auto first = f.ask<int32_t>(handle, pid_atom::value);
    REQUIRE(first);
    REQUIRE(::kill(*first, SIGKILL) == 0);
    REQUIRE(eventually([&] {
      auto pid = f.ask<int32_t>(handle, pid_atom::value);
      return pid && *pid != *first;
    }));
    // The same port, the new process.
    CHECK(ask_over_tcp("second incarnation"));
    CHECK_FALSE(sup->stop(deadline));
  }

} // TEST_SUITE
