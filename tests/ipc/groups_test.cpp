// Process groups: CAF's group API across the processes of a troupe group
// (the group module "troupe", added by troupe::ipc::configure).

#include "support.hpp"
#include "troupe/ipc/inspect.hpp"
#include "troupe/ipc/node.hpp"
#include "troupe/ipc/process_groups.hpp"

#include <caf/io/middleman.hpp>
#include <doctest/doctest.h>

#include <signal.h>

#include <map>
#include <vector>

using namespace troupe::test::ipc;
using troupe::ipc::node;

namespace {

/// What each subscriber (by tag) passed on, in the order it came.
using received_map = std::map<int32_t, std::vector<int32_t>>;

/// Spawns a `pubsub_member` of `name` with `tag` in process `host` (this
/// one for 0), reporting to the fixture's scoped actor.
caf::actor member_in(ipc_fixture& f, node& n, pid_t host, const std::string& name, int32_t tag) {
  auto sink = caf::actor{f.self};
  auto res = host == 0 ? caf::expected<caf::actor>{f.spawn(pubsub_member, name, tag, sink)}
                       : n.spawn_in(host, "pubsub_member", name, tag, sink);
  REQUIRE_MESSAGE(res, troupe::describe(res.error()));
  return *res;
}

/// Receives `(tag, x)` until `done` holds for what came, or the deadline.
template <class Done>
received_map collect(ipc_fixture& f, received_map got, Done done) {
  auto until = std::chrono::steady_clock::now() + deadline;
  while (!done(got) && std::chrono::steady_clock::now() < until)
    f.self->receive([&](int32_t tag, int32_t x) { got[tag].push_back(x); },
                    caf::after(std::chrono::milliseconds(100)) >> [] {});
  return got;
}

/// What is in the mailbox now.
received_map drain(ipc_fixture& f) {
  received_map got;
  for (bool more = true; more;)
    f.self->receive([&](int32_t tag, int32_t x) { got[tag].push_back(x); },
                    caf::after(std::chrono::seconds(0)) >> [&] { more = false; });
  return got;
}

/// Waits for the `(tag, -1)` of each of `tags`: they have joined.
void await_joined(ipc_fixture& f, const std::vector<int32_t>& tags) {
  auto got = collect(f, {}, [&](const received_map& m) { return m.size() == tags.size(); });
  for (auto tag : tags) {
    REQUIRE_MESSAGE(got.count(tag) == 1, "member " << tag << " did not join");
    CHECK(got[tag] == std::vector<int32_t>{-1});
  }
}

std::vector<int32_t> iota(int32_t from, int32_t to) {
  std::vector<int32_t> xs;
  for (auto i = from; i < to; ++i)
    xs.push_back(i);
  return xs;
}

/// The live subscription entries of `group` for process group `name`.
size_t subscription_entries(const std::string& group, const std::string& name) {
  auto info = troupe::ipc::inspect_group(group);
  REQUIRE_MESSAGE(info, troupe::describe(info.error()));
  size_t n = 0;
  for (auto& e : info->names)
    n += e.subscription && e.name == name && e.owner_alive ? 1 : 0;
  return n;
}

/// The values `self` receives until it has `n` of those `keep` takes, or
/// the deadline.
template <class Keep>
std::vector<int32_t> receive_values(caf::scoped_actor& self, size_t n, Keep keep) {
  std::vector<int32_t> got;
  auto until = std::chrono::steady_clock::now() + deadline;
  while (got.size() < n && std::chrono::steady_clock::now() < until)
    self->receive(
      [&](int32_t x) {
        if (keep(x))
          got.push_back(x);
      },
      caf::after(std::chrono::milliseconds(100)) >> [] {});
  return got;
}

/// Sends `probe` to `grp` until `member` gets one: its join, which travels
/// to another host, has taken effect.
bool await_remote_join(caf::scoped_actor& sender, const caf::group& grp, caf::scoped_actor& member,
                       int32_t probe) {
  auto until = std::chrono::steady_clock::now() + deadline;
  bool joined = false;
  while (!joined && std::chrono::steady_clock::now() < until) {
    sender->send(grp, probe);
    member->receive([&](int32_t x) { joined = x == probe; },
                    caf::after(std::chrono::milliseconds(20)) >> [] {});
  }
  return joined;
}

} // namespace

TEST_SUITE("ipc.groups") {

  TEST_CASE("subscribers in three processes get every message of a publisher, in order, "
            "through one frame per process") {
    ipc_fixture f{"pubsub"};
    auto sut = node::create(f.sys, f.group);
    REQUIRE(sut);
    std::vector<troupe::ipc::child_process> hosts;
    for (auto name : {"h1", "h2", "h3"}) {
      hosts.push_back(f.serve(*sut, name));
      f.find(*sut, name);
    }
    // One subscriber here, one in h1, two in h2, three in h3.
    std::vector<std::pair<pid_t, int32_t>> members{{0, 0},
                                                   {hosts[0].pid(), 10},
                                                   {hosts[1].pid(), 20},
                                                   {hosts[1].pid(), 21},
                                                   {hosts[2].pid(), 30},
                                                   {hosts[2].pid(), 31},
                                                   {hosts[2].pid(), 32}};
    std::vector<int32_t> tags;
    for (auto [host, tag] : members) {
      member_in(f, *sut, host, "news", tag);
      tags.push_back(tag);
    }
    await_joined(f, tags);
    CHECK(subscription_entries(f.group, "news") == 4);
    auto grp = f.sys.groups().get("troupe", "news");
    REQUIRE_MESSAGE(grp, troupe::describe(grp.error()));
    constexpr int32_t n = 500;
    auto sent_before = sut->stats().frames_sent;
    for (auto i = 0; i < n; ++i)
      f.self->send(*grp, i);
    auto got = collect(f, {}, [&](const received_map& m) {
      for (auto tag : tags)
        if (m.count(tag) == 0 || m.at(tag).size() < static_cast<size_t>(n))
          return false;
      return true;
    });
    for (auto tag : tags)
      CHECK_MESSAGE(got[tag] == iota(0, n), "subscriber " << tag);
    // Six subscribers in other processes, three processes: each message
    // crossed each ring once, not once per subscriber (a few frames of
    // other kinds may come with them).
    auto sent = sut->stats().frames_sent - sent_before;
    CHECK(sent >= 3u * n);
    CHECK(sent < 3u * n + n / 2);
  }

  TEST_CASE("a subscriber's process killed mid-stream drops out; the others miss nothing") {
    ipc_fixture f{"pubsubkill"};
    auto sut = node::create(f.sys, f.group);
    REQUIRE(sut);
    std::vector<troupe::ipc::child_process> hosts;
    for (auto name : {"k1", "k2", "k3"}) {
      hosts.push_back(f.serve(*sut, name));
      f.find(*sut, name);
    }
    for (int32_t i = 0; i < 3; ++i)
      member_in(f, *sut, hosts[static_cast<size_t>(i)].pid(), "ticks", i + 1);
    await_joined(f, {1, 2, 3});
    auto grp = f.sys.groups().get("troupe", "ticks");
    REQUIRE(grp);
    constexpr int32_t n = 400;
    for (auto i = 0; i < n / 2; ++i)
      f.self->send(*grp, i);
    REQUIRE_FALSE(hosts[1].kill(SIGKILL));
    for (auto i = n / 2; i < n; ++i)
      f.self->send(*grp, i);
    auto got = collect(f, {}, [&](const received_map& m) {
      return m.count(1) != 0 && m.at(1).size() == n && m.count(3) != 0 && m.at(3).size() == n;
    });
    CHECK(got[1] == iota(0, n));
    CHECK(got[3] == iota(0, n));
    // What the killed one passed on before it died came in order.
    CHECK(got[2].size() <= static_cast<size_t>(n));
    CHECK(got[2] == iota(0, static_cast<int32_t>(got[2].size())));
    CHECK(eventually([&] { return subscription_entries(f.group, "ticks") == 2; }));
    // The group goes on with the two that are left.
    f.self->send(*grp, int32_t{n});
    got = collect(f, {}, [&](const received_map& m) { return m.size() == 2; });
    CHECK(got[1] == std::vector<int32_t>{n});
    CHECK(got[3] == std::vector<int32_t>{n});
  }

  TEST_CASE("a member that leaves gets no more; the last one here takes its process's entry") {
    ipc_fixture f{"pubsubleave"};
    auto sut = node::create(f.sys, f.group);
    REQUIRE(sut);
    auto host = f.serve(*sut, "l1");
    f.find(*sut, "l1");
    auto a = member_in(f, *sut, host.pid(), "board", 1);
    auto b = member_in(f, *sut, host.pid(), "board", 2);
    await_joined(f, {1, 2});
    CHECK(subscription_entries(f.group, "board") == 1);
    auto grp = f.sys.groups().get("troupe", "board");
    REQUIRE(grp);
    CHECK(f.ask<int32_t>(a, leave_atom::value) == int32_t{1});
    f.self->send(*grp, int32_t{7});
    auto got = collect(f, {}, [](const received_map& m) { return m.count(2) != 0; });
    CHECK(got[2] == std::vector<int32_t>{7});
    // Member 1's answer comes after anything it passed on before it.
    CHECK(f.ask<int32_t>(a, leave_atom::value) == int32_t{1});
    for (auto& [tag, xs] : drain(f))
      got[tag].insert(got[tag].end(), xs.begin(), xs.end());
    CHECK(got.count(1) == 0);
    // The second one's end takes it out, and the process's entry with it:
    // a message to the group then crosses no ring.
    f.self->send_exit(b, caf::exit_reason::user_shutdown);
    CHECK(eventually([&] { return subscription_entries(f.group, "board") == 0; }));
    auto sent_before = sut->stats().frames_sent;
    f.self->send(*grp, int32_t{8});
    CHECK(sut->stats().frames_sent == sent_before);
    CHECK(f.ask<int32_t>(a, leave_atom::value) == int32_t{1});
    CHECK(drain(f).empty());
  }

  TEST_CASE("a process group is CAF's: its name is checked, it travels in a message, it works "
            "in one process before a node exists") {
    config cfg;
    caf::actor_system sys{cfg};
    for (auto bad : {std::string{}, std::string(64, 'g'), std::string{"a\nb"}}) {
      auto res = sys.groups().get("troupe", bad);
      REQUIRE_FALSE(res);
      CHECK(troupe::is(res.error(), troupe::errc::invalid_argument));
    }
    auto longest = sys.groups().get("troupe", std::string(63, 'g'));
    REQUIRE_MESSAGE(longest, troupe::describe(longest.error()));
    auto grp = sys.groups().get("troupe", "local");
    REQUIRE(grp);
    CHECK(*grp == *sys.groups().get("troupe:local"));
    // Serialized as another process would read it: the same group.
    std::vector<char> buf;
    caf::binary_serializer sink{sys, buf};
    REQUIRE_FALSE(sink(*grp));
    caf::group back;
    caf::binary_deserializer source{sys, buf};
    REQUIRE_FALSE(source(back));
    CHECK(back == *grp);
    // No node yet: the group reaches this process's subscribers.
    caf::scoped_actor self{sys};
    auto member = sys.spawn(pubsub_member, std::string{"local"}, int32_t{5}, caf::actor{self});
    self->receive([](int32_t tag, int32_t x) { CHECK((tag == 5 && x == -1)); },
                  caf::after(deadline) >> [] { FAIL("the member did not join"); });
    self->send(*grp, int32_t{42});
    self->receive([](int32_t tag, int32_t x) { CHECK((tag == 5 && x == 42)); },
                  caf::after(deadline) >> [] { FAIL("the member got nothing"); });
    self->send_exit(member, caf::exit_reason::user_shutdown);
  }

  TEST_CASE("a process group reaches another host through CAF's remote_group, both ways, in "
            "order") {
    ipc_fixture f{"pubsubtcp"};
    auto sut = node::create(f.sys, f.group);
    REQUIRE(sut);
    auto host = f.serve(*sut, "t1");
    f.find(*sut, "t1");
    member_in(f, *sut, 0, "news", 0);
    member_in(f, *sut, host.pid(), "news", 10);
    await_joined(f, {0, 10});
    auto port = troupe::ipc::publish_groups_tcp(f.sys, 0, "127.0.0.1");
    REQUIRE_MESSAGE(port, troupe::describe(port.error()));
    // Another host: an actor system in no troupe group, over TCP.
    config other_cfg;
    caf::actor_system other{other_cfg};
    {
      auto news = other.middleman().remote_group("news", "127.0.0.1", *port);
      REQUIRE_MESSAGE(news, troupe::describe(news.error()));
      CHECK(news->get()->module().name() == "troupe");
      caf::scoped_actor remote{other};
      remote->join(*news);
      auto grp = f.sys.groups().get("troupe", "news");
      REQUIRE(grp);
      REQUIRE(await_remote_join(f.self, *grp, remote, -2));
      constexpr int32_t n = 200;
      for (int32_t i = 0; i < n; ++i)
        f.self->send(*grp, i);
      CHECK(receive_values(remote, n, [](int32_t x) { return x >= 0; }) == iota(0, n));
      // From there: every subscriber here, in both processes, in order.
      for (int32_t i = 0; i < n; ++i)
        remote->send(*news, 1000 + i);
      auto got = collect(f, {}, [&](const received_map& m) {
        for (auto tag : {0, 10})
          if (m.count(tag) == 0 || m.at(tag).empty() || m.at(tag).back() != 1000 + n - 1)
            return false;
        return true;
      });
      for (auto tag : {0, 10}) {
        std::vector<int32_t> from_there;
        for (auto x : got[tag])
          if (x >= 1000)
            from_there.push_back(x);
        CHECK_MESSAGE(from_there == iota(1000, 1000 + n), "subscriber " << tag);
      }
      // The handle read here again is this host's group, not a detour.
      std::vector<char> buf;
      caf::binary_serializer sink{other, buf};
      REQUIRE_FALSE(sink(*news));
      caf::group back;
      caf::binary_deserializer source{f.sys, buf};
      REQUIRE_FALSE(source(back));
      CHECK(back == *grp);
    }
  }

  TEST_CASE("another host's subscriber leaves, or its host goes, and it is out of the group; "
            "when the group's host goes, its subscribers elsewhere hear it") {
    ipc_fixture f{"pubsubtcpend"};
    auto sut = node::create(f.sys, f.group);
    REQUIRE(sut);
    auto port = troupe::ipc::publish_groups_tcp(f.sys, 0, "127.0.0.1");
    REQUIRE_MESSAGE(port, troupe::describe(port.error()));
    auto grp = f.sys.groups().get("troupe", "solo");
    REQUIRE(grp);
    {
      config other_cfg;
      caf::actor_system other{other_cfg};
      caf::scoped_actor remote{other};
      auto solo = other.middleman().remote_group("solo", "127.0.0.1", *port);
      REQUIRE_MESSAGE(solo, troupe::describe(solo.error()));
      // Its only subscriber is on the other host: this process holds the
      // entry for it.
      remote->join(*solo);
      REQUIRE(await_remote_join(f.self, *grp, remote, -2));
      CHECK(subscription_entries(f.group, "solo") == 1);
      remote->leave(*solo);
      CHECK(eventually([&] { return subscription_entries(f.group, "solo") == 0; }));
      remote->join(*solo);
      REQUIRE(await_remote_join(f.self, *grp, remote, -3));
      CHECK(subscription_entries(f.group, "solo") == 1);
    } // the other host's actor system ends: its connection closes
    CHECK(eventually([&] { return subscription_entries(f.group, "solo") == 0; }));
    // The other way round: the group's host goes, a subscriber here hears it.
    uint16_t origin_port = 0;
    auto origin_cfg = std::make_unique<config>();
    auto origin = std::make_unique<caf::actor_system>(*origin_cfg);
    {
      auto published = troupe::ipc::publish_groups_tcp(*origin, 0, "127.0.0.1");
      REQUIRE_MESSAGE(published, troupe::describe(published.error()));
      origin_port = *published;
    }
    auto far = f.sys.middleman().remote_group("far", "127.0.0.1", origin_port);
    REQUIRE_MESSAGE(far, troupe::describe(far.error()));
    f.self->join(*far);
    {
      caf::scoped_actor there{*origin};
      auto far_there = origin->groups().get("troupe", "far");
      REQUIRE(far_there);
      REQUIRE(await_remote_join(there, *far_there, f.self, -4));
    }
    origin.reset();
    bool heard = false;
    auto until = std::chrono::steady_clock::now() + deadline;
    while (!heard && std::chrono::steady_clock::now() < until)
      f.self->receive([&](caf::group_down_msg& down) { heard = down.source == *far; },
                      [](int32_t) {}, caf::after(std::chrono::milliseconds(100)) >> [] {});
    CHECK(heard);
    // A subscriber that comes later hears it at once.
    f.self->leave(*far);
    f.self->join(*far);
    heard = false;
    f.self->receive([&](caf::group_down_msg& down) { heard = down.source == *far; },
                    caf::after(deadline) >> [] {});
    CHECK(heard);
  }

} // TEST_SUITE
