// Tests of the managed containers (managed_dict.hpp, managed_list.hpp,
// managed_value.hpp, managed_array.hpp, managed_queue.hpp, managed_namespace.hpp): each operation
// on a local owner, then owners in another process, concurrent writers in
// two processes, a leased queue item that comes back when its consumer
// process is killed, and callers that read their answers from the rings
// themselves without losing a wake-up of the reader thread.

#include "manager_workload.hpp"
#include "support.hpp"
#include "troupe/ipc/managed_array.hpp"
#include "troupe/ipc/managed_dict.hpp"
#include "troupe/ipc/managed_list.hpp"
#include "troupe/ipc/managed_namespace.hpp"
#include "troupe/ipc/managed_queue.hpp"
#include "troupe/ipc/managed_types.hpp"
#include "troupe/ipc/managed_value.hpp"
#include "troupe/ipc/node.hpp"
#include "troupe/ipc/sync.hpp"

#include <signal.h>

#include <future>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace troupe::test::ipc;
using std::chrono::milliseconds;
using troupe::errc;
using troupe::ipc::managed_array;
using troupe::ipc::managed_dict;
using troupe::ipc::managed_list;
using troupe::ipc::managed_namespace;
using troupe::ipc::managed_queue;
using troupe::ipc::managed_value;
using troupe::ipc::node;

namespace {

/// Whether `x.add(delta)` compiles for a `managed_value` `V`.
template <class V, class = void>
constexpr bool has_add = false;
template <class V>
constexpr bool has_add<
  V, std::void_t<decltype(std::declval<V&>().add(std::declval<typename V::value_type>()))>> = true;

// `add` exists where it can succeed, and only there: `bool` has no `+=` that
// a counter wants, so `managed_value<bool>::add` is a compile error, not a
// run-time `type_error`.
static_assert(has_add<managed_value<int64_t>>);
static_assert(has_add<managed_value<double>>);
static_assert(!has_add<managed_value<bool>>);
static_assert(!has_add<managed_value<std::string>>);

/// One process's actor system, with a unique group name and a shm guard.
struct fixture {
  std::string group;
  shm_guard guard{group};
  manager_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};

  /// Owners the test published: stopped when the test ends, however it
  /// ends, so that the actor system can shut down.
  std::vector<caf::actor> published;

  explicit fixture(const char* tag) : group(unique_group(tag)) {}

  ~fixture() {
    for (auto& x : published)
      caf::anon_send_exit(x, caf::exit_reason::kill);
  }

  /// Publishes the owner of `x` as `name`.
  template <class Handle>
  void publish(node& n, const std::string& name, const Handle& x) {
    published.push_back(x.handle());
    auto publication = n.publish(name, x.handle());
    REQUIRE_MESSAGE(publication, troupe::describe(publication.error()));
    publication->release(); // ends with the node, or with the test
  }

  node make_node(troupe::ipc::group_options opts = {}) {
    auto n = node::create(sys, group, opts);
    REQUIRE_MESSAGE(n, troupe::describe(n.error()));
    return std::move(*n);
  }

  troupe::ipc::child_process start(node& n, const std::vector<std::string>& args) {
    auto child = n.spawn(TROUPE_IPC_CHILD, args);
    REQUIRE_MESSAGE(child, troupe::describe(child.error()));
    return std::move(*child);
  }

  caf::actor find(node& n, const std::string& name) {
    auto x = n.lookup(name, deadline);
    REQUIRE_MESSAGE(x, troupe::describe(x.error()));
    return *x;
  }

  /// Tells a `host m` child to leave; it must exit cleanly.
  void stop_host(node& n, troupe::ipc::child_process& child);
};

void check_exits_cleanly(troupe::ipc::child_process& child) {
  auto status = child.wait(deadline);
  REQUIRE_MESSAGE(status, troupe::describe(status.error()));
  CHECK(status->success());
}

/// Group options whose readers, and blocking callers, spin for `spin`.
troupe::ipc::group_options spinning(caf::timespan spin) {
  troupe::ipc::group_options opts;
  opts.spin = spin;
  return opts;
}

void fixture::stop_host(node& n, troupe::ipc::child_process& child) {
  self->send(find(n, "m.ctl"), leave_atom::value);
  check_exits_cleanly(child);
}

} // namespace

TEST_SUITE("ipc.manager") {

  TEST_CASE("a shared dict answers as Python's dict, name for name, order and errors included") {
    using item = std::pair<std::string, std::string>;
    fixture f{"dict"};
    auto sut = sdict::make(f.sys);
    REQUIRE_FALSE(sut.set("b", "1"));
    REQUIRE_FALSE(sut.set("a", "x"));
    CHECK(sut.at("b") == std::string{"1"});
    CHECK(sut.setdefault("b", "other") == std::string{"1"});
    CHECK(sut.setdefault("c", "2") == std::string{"2"});
    REQUIRE_FALSE(sut.update({{"d", "3"}, {"b", "10"}})); // b keeps its place
    CHECK(sut.len() == int64_t{4});
    CHECK(sut.contains("c") == true);
    CHECK(sut.contains("zz") == false);
    // Insertion order, as Python's dict keeps it.
    CHECK(sut.keys() == std::vector<std::string>{"b", "a", "c", "d"});
    CHECK(sut.values() == std::vector<std::string>{"10", "x", "2", "3"});
    auto items = sut.items();
    REQUIRE(items);
    CHECK(*items == std::vector<item>{{"b", "10"}, {"a", "x"}, {"c", "2"}, {"d", "3"}});
    CHECK(sut.copy() == *items);
    // d.get(k) never fails on a missing key; d[k] does.
    auto present = sut.get("a");
    auto absent = sut.get("zz");
    REQUIRE(present);
    REQUIRE(absent);
    CHECK(*present == std::optional<std::string>{"x"});
    CHECK(*absent == std::nullopt);
    CHECK(sut.get("zz", "fallback") == std::string{"fallback"});
    auto missing = sut.at("zz");
    REQUIRE_FALSE(missing);
    CHECK(troupe::is(missing.error(), errc::key_error));
    CHECK(troupe::describe(missing.error()) == "troupe.key_error: key 'zz' is not in the dict");
    CHECK(sut.pop("c") == std::string{"2"});
    CHECK(troupe::is(sut.pop("c").error(), errc::key_error));
    CHECK(sut.pop("c", "gone") == std::string{"gone"});
    CHECK(sut.popitem() == item{"d", "3"}); // the newest
    REQUIRE_FALSE(sut.erase("a"));          // del d['a']
    CHECK(troupe::is(sut.erase("a"), errc::key_error));
    REQUIRE_FALSE(sut.set("e", "5"));
    CHECK(sut.keys() == std::vector<std::string>{"b", "e"});
    REQUIRE_FALSE(sut.clear());
    CHECK(sut.len() == int64_t{0});
    CHECK(troupe::describe(sut.popitem().error())
          == "troupe.key_error: popitem(): dictionary is empty");
  }

  TEST_CASE("a shared list answers every operation with Python's indices and errors") {
    fixture f{"list"};
    auto sut = slist::make(f.sys, {1, 2, 3});
    REQUIRE_FALSE(sut.append(4));
    REQUIRE_FALSE(sut.extend({5, 6}));
    CHECK(sut.snapshot() == std::vector<int32_t>{1, 2, 3, 4, 5, 6});
    CHECK(sut.get(0) == int32_t{1});
    CHECK(sut.get(-1) == int32_t{6});
    REQUIRE_FALSE(sut.set(1, 20));
    REQUIRE_FALSE(sut.insert(0, 0));
    REQUIRE_FALSE(sut.insert(100, 7)); // clamped, as list.insert does
    CHECK(sut.snapshot() == std::vector<int32_t>{0, 1, 20, 3, 4, 5, 6, 7});
    CHECK(sut.pop() == int32_t{7});
    CHECK(sut.pop(0) == int32_t{0});
    REQUIRE_FALSE(sut.remove(20));
    CHECK(sut.index(4) == int64_t{2});
    CHECK(sut.len() == int64_t{5});
    CHECK(sut.slice(1, -1) == std::vector<int32_t>{3, 4, 5});
    CHECK(sut.slice(-2, 100) == std::vector<int32_t>{5, 6});
    CHECK(sut.slice(3, 1) == std::vector<int32_t>{});
    auto out = sut.get(5);
    REQUIRE_FALSE(out);
    CHECK(troupe::is(out.error(), errc::index_error));
    CHECK(troupe::describe(out.error())
          == "troupe.index_error: get: index 5 out of range for a list of 5");
    CHECK(troupe::is(sut.set(-6, 0), errc::index_error));
    CHECK(troupe::is(sut.remove(42), errc::value_error));
    CHECK(troupe::is(sut.index(42).error(), errc::value_error));
    // Slices with a step and open ends: l[::2], l[::-1], l[3:0:-2], l[-100:2].
    auto open = troupe::ipc::open_end;
    CHECK(sut.snapshot() == std::vector<int32_t>{1, 3, 4, 5, 6});
    CHECK(sut.slice(open, open, 2) == std::vector<int32_t>{1, 4, 6});
    CHECK(sut.slice(open, open, -1) == std::vector<int32_t>{6, 5, 4, 3, 1});
    CHECK(sut.slice(3, 0, -2) == std::vector<int32_t>{5, 3});
    CHECK(sut.slice(-100, 2) == std::vector<int32_t>{1, 3});
    CHECK(sut.slice(open, -100, -1) == std::vector<int32_t>{6, 5, 4, 3, 1});
    CHECK(troupe::is(sut.slice(0, 1, 0).error(), errc::value_error));
    // count, in, del, reverse, sort.
    REQUIRE_FALSE(sut.extend({3, 3}));
    CHECK(sut.count(3) == int64_t{3});
    CHECK(sut.count(42) == int64_t{0});
    CHECK(sut.contains(6) == true);
    CHECK(sut.contains(42) == false);
    REQUIRE_FALSE(sut.erase(-1));
    CHECK(troupe::is(sut.erase(10), errc::index_error));
    REQUIRE_FALSE(sut.reverse());
    CHECK(sut.snapshot() == std::vector<int32_t>{3, 6, 5, 4, 3, 1});
    REQUIRE_FALSE(sut.sort());
    CHECK(sut.snapshot() == std::vector<int32_t>{1, 3, 3, 4, 5, 6});
    auto empty = slist::make(f.sys);
    CHECK(troupe::describe(empty.pop().error()) == "troupe.index_error: pop from empty list");
  }

  TEST_CASE("a shared value gets, sets, compares-and-sets and adds") {
    fixture f{"value"};
    auto sut = svalue::make(f.sys, 5);
    CHECK(sut.get() == int64_t{5});
    CHECK(sut.add(3) == int64_t{8});
    CHECK(sut.compare_and_set(7, 100) == false);
    CHECK(sut.compare_and_set(8, 100) == true);
    REQUIRE_FALSE(sut.set(-1));
    CHECK(sut.get() == int64_t{-1});
    auto text = managed_value<std::string>::make(f.sys, "a");
    CHECK(text.compare_and_set("a", "b") == true);
    CHECK(text.get() == std::string{"b"});
  }

  TEST_CASE("a managed array answers every operation with Python's indices and errors") {
    fixture f{"array"};
    auto zeros = sarray::make(f.sys, 3);
    CHECK(zeros.snapshot() == std::vector<int64_t>{0, 0, 0});
    auto filled = sarray::make(f.sys, 2, 7);
    CHECK(filled.snapshot() == std::vector<int64_t>{7, 7});
    CHECK(sarray::make(f.sys, 0).len() == int64_t{0});
    auto sut = sarray::make(f.sys, std::vector<int64_t>{1, 2, 3, 4, 5});
    CHECK(sut.len() == int64_t{5});
    CHECK(sut.get(0) == int64_t{1});
    CHECK(sut.get(-1) == int64_t{5});
    CHECK(sut.get(-5) == int64_t{1});
    REQUIRE_FALSE(sut.set(1, 20));
    REQUIRE_FALSE(sut.set(-1, 50));
    CHECK(sut.add(0, 9) == int64_t{10});
    CHECK(sut.add(-2, -4) == int64_t{0});
    CHECK(sut.snapshot() == std::vector<int64_t>{10, 20, 3, 0, 50});
    CHECK(sut.slice(1, -1) == std::vector<int64_t>{20, 3, 0});
    CHECK(sut.slice(-2, 100) == std::vector<int64_t>{0, 50});
    CHECK(sut.slice(3, 1) == std::vector<int64_t>{});
    auto out = sut.get(5);
    REQUIRE_FALSE(out);
    CHECK(troupe::is(out.error(), errc::index_error));
    CHECK(troupe::describe(out.error())
          == "troupe.index_error: get: index 5 out of range for an array of 5");
    CHECK(troupe::is(sut.get(-6).error(), errc::index_error));
    CHECK(troupe::is(sut.set(5, 0), errc::index_error));
    CHECK(troupe::describe(sut.add(-6, 1).error())
          == "troupe.index_error: add: index -6 out of range for an array of 5");
    // The failed calls changed nothing, and the length is fixed.
    CHECK(sut.snapshot() == std::vector<int64_t>{10, 20, 3, 0, 50});
    auto doubles = managed_array<double>::make(f.sys, {0.5, 1.5});
    CHECK(doubles.add(1, 0.25) == 1.75);
    auto texts = managed_array<std::string>::make(f.sys, 2, "x");
    REQUIRE_FALSE(texts.set(0, "y"));
    CHECK(texts.snapshot() == std::vector<std::string>{"y", "x"});
    // A handle of another element type than the owner's.
    auto wrong = managed_array<double>{sut.handle()};
    CHECK(troupe::is(wrong.set(0, 1.5), errc::type_error));
    CHECK(troupe::is(wrong.add(0, 1.5).error(), errc::type_error));
    CHECK(sut.get(0) == int64_t{10});
    REQUIRE_FALSE(sut.stop());
    CHECK(troupe::is(sut.len().error(), errc::owner_down));
  }

  TEST_CASE("a handle of other element types than the owner's gets type_error") {
    fixture f{"mismatch"};
    auto owner = svalue::make(f.sys, 1);
    auto sut = managed_value<std::string>{owner.handle()};
    auto err = sut.set("x");
    CHECK(troupe::is(err, errc::type_error));
    CHECK(owner.get() == int64_t{1});
  }

  TEST_CASE("a call on an empty handle fails instead of hanging") {
    sdict sut;
    CHECK(troupe::is(sut.at("a").error(), errc::invalid_argument));
    squeue q;
    CHECK(troupe::is(q.get_leased().error(), errc::invalid_argument));
    // The sync primitives answer the same: one error for an empty handle.
    troupe::ipc::event ev;
    CHECK(troupe::is(ev.set(), errc::invalid_argument));
    troupe::ipc::lock lk;
    fixture f{"emptylock"};
    CHECK(troupe::is(lk.acquire(f.self, milliseconds(10)).error(), errc::invalid_argument));
  }

  TEST_CASE("a shared namespace holds fields of any type and says what a field holds") {
    fixture f{"ns"};
    auto sut = managed_namespace::make(f.sys);
    REQUIRE_FALSE(sut.set("x", int32_t{42}));
    REQUIRE_FALSE(sut.set("name", std::string{"troupe"}));
    CHECK(sut.get<int32_t>("x") == int32_t{42});
    CHECK(sut.get<std::string>("name") == std::string{"troupe"});
    auto wrong = sut.get<std::string>("x");
    REQUIRE_FALSE(wrong);
    CHECK(troupe::is(wrong.error(), errc::type_error));
    CHECK(sut.contains("x") == true);
    CHECK(sut.names() == std::vector<std::string>{"name", "x"});
    REQUIRE_FALSE(sut.erase("x"));
    CHECK(troupe::is(sut.get<int32_t>("x").error(), errc::key_error));
    CHECK(troupe::is(sut.erase("x"), errc::key_error));
    CHECK(sut.contains("x") == false);
  }

  TEST_CASE("a shared queue is FIFO and get waits for an item up to its timeout") {
    fixture f{"queue"};
    auto sut = squeue::make(f.sys);
    REQUIRE_FALSE(sut.put(1));
    REQUIRE_FALSE(sut.put(2));
    CHECK(sut.qsize() == int64_t{2});
    CHECK(sut.get() == int32_t{1});
    CHECK(sut.get() == int32_t{2});
    CHECK(troupe::is(sut.get(caf::timespan{0}).error(), errc::empty));
    auto t0 = std::chrono::steady_clock::now();
    CHECK(troupe::is(sut.get(milliseconds(50)).error(), errc::empty));
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
    fixture f{"bounded"};
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
    fixture f{"join"};
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
    CHECK(troupe::is(sut.task_done(), errc::value_error)); // only the lease is open
    CHECK(joiner.wait_for(milliseconds(0)) != std::future_status::ready);
    REQUIRE_FALSE(sut.ack(item->id));
    CHECK(joiner.get() == caf::error{});
    CHECK(troupe::is(sut.ack(item->id), errc::not_held));
  }

  TEST_CASE("a leased item goes back to the queue when its holder dies before acking") {
    fixture f{"lease"};
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
    fixture f{"lease-actor"};
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

  TEST_CASE("stop ends a container in another process and returns once it has ended") {
    fixture f{"remstop"};
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
    fixture f{"remote"};
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
    CHECK(troupe::is(l.get(9).error(), errc::index_error));
    CHECK(v.add(2) == int64_t{2});
    CHECK(arr.add(-1, 4) == int64_t{4});
    CHECK(arr.snapshot() == std::vector<int64_t>{0, 0, 4});
    CHECK(troupe::describe(arr.get(3).error())
          == "troupe.index_error: get: index 3 out of range for an array of 3");
    REQUIRE_FALSE(q.put(11));
    CHECK(q.get() == int32_t{11});
    CHECK(troupe::is(q.get(milliseconds(10)).error(), errc::empty));
    REQUIRE_FALSE(ns.set("pi", 3.25));
    CHECK(ns.get<double>("pi") == 3.25);
    CHECK(troupe::is(ns.get<double>("e").error(), errc::key_error));
    f.stop_host(n, child);
  }

  TEST_CASE(
    "an answer larger than a quarter of a ring comes back from an owner in another process") {
    // The owner runs on the other node's reader thread, which never waits
    // for ring space: its answer (400 KB, a 1 MiB ring takes 256 KiB per
    // record) goes out in pieces as the ring has room.
    fixture f{"bigans"};
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
    fixture f{"bigout"};
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
    fixture f{"concurrent"};
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
    check_exits_cleanly(a);
    check_exits_cleanly(b);
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

  TEST_CASE("a leased item comes back when its consumer process is killed with SIGKILL") {
    fixture f{"lease-kill"};
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

  TEST_CASE("a blocking caller reads its answer from the rings, and no wake-up is lost") {
    fixture f{"caller-reads"};
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
    fixture f{"caller-hands-back"};
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
    fixture f{"caller-serves"};
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
    check_exits_cleanly(b);
    CHECK(mine.get() == int64_t{per_process});
    CHECK(theirs.get() == int64_t{2 * per_process});
    CHECK(n.stats().late_wakeups == 0);
    f.stop_host(n, a);
  }

  TEST_CASE("a functor attached to a remote actor runs on the reader thread, not on a caller's") {
    fixture f{"caller-functor"};
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
        if (item || !troupe::is(item.error(), errc::empty)) {
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
    fixture f{"caller-leave"};
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
