// troupe-soak: the chaos soak of troupe::ipc (tracker issue 7).
//
// Each round makes a fresh group. The coordinator (this program without
// --role) owns the managed containers (a managed_dict, a managed_value counter,
// a managed_queue handed out under leases), two shared values in the segment
// (one added to lock-free, one under its robust lock), an echo actor and a
// tally. It starts --nodes child processes (this program again, as
// `troupe-soak --role node --index K ...`, so `ps` shows who is who) that
// make traffic against the coordinator's owners and against each other:
// requests without a timeout (every one must be answered, by a value or an
// error such as errc::peer_lost), asynchronous sends, monitors of each
// other's actors, container updates and leased queue items. A child tells
// the tally what it is about to do (an intent) and what was acknowledged.
//
// Meanwhile the coordinator picks random children at random moments and
// sends SIGKILL (then starts a replacement), or SIGSTOP and SIGCONT after a
// random pause. At the end of the round every live child is told to stop; it
// waits (with a deadline) for all its requests to be answered and for the
// down_msg of every killed peer it monitored, reports, and exits. Then the
// coordinator checks:
//   - no hang: every phase has a deadline, every surviving child reports and
//     exits with status 0 in time;
//   - every request a surviving child made was answered; no unexpected error;
//   - monitors: a down_msg (errc::peer_lost) for every killed peer a child
//     monitored, none for a peer that was only stopped;
//   - no acknowledged update lost: every acknowledged dict key is in the dict
//     with its value, the counters lie between what was acknowledged and what
//     was intended, a survivor's acknowledgements all reached the tally, no
//     acknowledged queue item comes back, no lease is left, at most one item
//     per killed child is unaccounted for (acked, but the report died with it);
//   - nothing of the group is left in /dev/shm after it ends.
// One line per round, then `N passed, M failed`; exit status 1 on a failure,
// 2 on a bad option.

#include "churn.hpp"
#include "flood.hpp"
#include "stall.hpp"
#include "troupe/ipc/configure.hpp"
#include "troupe/ipc/error.hpp"
#include "troupe/ipc/managed_dict.hpp"
#include "troupe/ipc/managed_queue.hpp"
#include "troupe/ipc/managed_types.hpp"
#include "troupe/ipc/managed_value.hpp"
#include "troupe/ipc/node.hpp"
#include "troupe/ipc/shared_memory.hpp"
#include "usage_log.hpp"

#include <caf/all.hpp>

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace {

namespace tipc = troupe::ipc;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

struct options {
  std::string role = "coordinator";
  int64_t rounds = 10;
  int64_t nodes = 4;
  double seconds = 5;
  uint64_t seed = 0;
  bool seed_given = false;
  int64_t index = -1;
  std::string inject; // a fault to inject, to show that the checks catch it
  // The long run: one group for `duration` seconds instead of rounds.
  double duration = 0;
  double sample_every = 10;
  std::string samples;   // where the long run writes its samples (CSV)
  int64_t key_space = 0; // a node's dict keys per owner (0: unbounded)
  int64_t flood = 0;     // messages of the flood through one pair of nodes
  double churn = 0;      // seconds of nodes joining and leaving
  double stall = 0;      // seconds a reader is stopped
};

constexpr const char* usage = R"(usage: troupe-soak [options]

The chaos soak of troupe::ipc: each round starts a group of child processes
that make traffic (requests, sends, monitors, managed containers) while random
children are killed (SIGKILL) or paused (SIGSTOP, then SIGCONT); then it checks
that nothing hung, every request was answered, no acknowledged update was lost
and nothing is left in /dev/shm. One line per round, then `N passed, M failed`.

options:
  --rounds N              rounds to run (default 10)
  --nodes N               child processes per round, 2 to 16 (default 4)
  --seconds-per-round S   traffic and chaos per round, in seconds (default 5)
  --seed N                seed of the chaos and the traffic (default: random;
                          the seed is printed, to replay a run)
  --inject FAULT          make a fault on purpose, to see the checks catch it:
                          lost-update (an acknowledged dict key is removed),
                          unanswered (a request is held past the deadline),
                          leftover (a file of the group stays in /dev/shm)
  --help                  this text

The long run, instead of rounds (--duration or --flood):
  --duration S            one group for S seconds (60 to 604800): --nodes
                          long-lived children and two that chaos kills and
                          pauses; samples the resident memory, descriptors and
                          threads of this process and of each long-lived child,
                          and the group's /dev/shm usage, and checks at the end
                          that none grew by more than 10% after the warm-up
                          (the first sixth), besides the round's checks
  --flood N               N messages (1000 to 10^9) from a child to this
                          process, through one pair of nodes, sampled and
                          checked for growth in the same way (both processes)
  --churn S               for S seconds (1 to 3600), 60 child nodes that join a
                          group of 64 slots, ask once, leave, and are replaced
                          at once; checks that each joined and exited with
                          status 0 and that nothing leaked
  --stall S               a child that stops reading (SIGSTOP) for S seconds (5
                          to 3600) while this process sends it requests and
                          messages: each is answered, errc::full after the
                          full_timeout (1 s) at most, and this process's
                          memory does not grow
  --sample-every S        seconds between samples (0.1 to 600; default 10)
  --samples FILE          write the samples there as CSV

Exit status: 0 when every round (or the long run) passed, 1 when one failed,
2 for bad options.
)";

bool parse_int(const std::string& text, int64_t min, int64_t max, int64_t& out) {
  if (text.empty())
    return false;
  errno = 0;
  char* end = nullptr;
  auto x = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || *end != '\0' || x < min || x > max)
    return false;
  out = x;
  return true;
}

/// The options, or the message of a bad command line; `help` is set for --help.
std::optional<std::string> parse_options(int argc, char** argv, options& o, bool& help) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      help = true;
      return std::nullopt;
    }
    if (i + 1 >= argc)
      return "option " + arg + " needs a value";
    std::string value = argv[++i];
    int64_t x = 0;
    if (arg == "--rounds") {
      if (!parse_int(value, 1, 1'000'000, x))
        return "--rounds needs a number from 1, not '" + value + "'";
      o.rounds = x;
    } else if (arg == "--nodes") {
      if (!parse_int(value, 2, 16, x))
        return "--nodes needs a number from 2 to 16, not '" + value + "'";
      o.nodes = x;
    } else if (arg == "--seconds-per-round") {
      char* end = nullptr;
      o.seconds = std::strtod(value.c_str(), &end);
      if (value.empty() || *end != '\0' || !(o.seconds >= 0.5) || o.seconds > 3600)
        return "--seconds-per-round needs 0.5 to 3600 seconds, not '" + value + "'";
    } else if (arg == "--seed") {
      if (!parse_int(value, 0, INT64_MAX, x))
        return "--seed needs a number, not '" + value + "'";
      o.seed = static_cast<uint64_t>(x);
      o.seed_given = true;
    } else if (arg == "--role") {
      if (value != "node" && value != "flood" && value != "churn" && value != "stall")
        return "--role is node, flood, churn or stall (for the children), not '" + value + "'";
      o.role = value;
    } else if (arg == "--duration" || arg == "--sample-every") {
      char* end = nullptr;
      auto x = std::strtod(value.c_str(), &end);
      bool duration = arg == "--duration";
      auto lo = duration ? 60.0 : 0.1;
      auto hi = duration ? 604800.0 : 600.0;
      if (value.empty() || *end != '\0' || !(x >= lo) || x > hi)
        return arg + " needs " + (duration ? "60 to 604800" : "0.1 to 600") + " seconds, not '"
               + value + "'";
      (duration ? o.duration : o.sample_every) = x;
    } else if (arg == "--churn" || arg == "--stall") {
      char* end = nullptr;
      auto x = std::strtod(value.c_str(), &end);
      auto lo = arg == "--churn" ? 1.0 : 5.0; // a stall needs time for samples
      if (value.empty() || *end != '\0' || !(x >= lo) || x > 3600)
        return arg + " needs " + (lo == 1 ? "1" : "5") + " to 3600 seconds, not '" + value + "'";
      (arg == "--churn" ? o.churn : o.stall) = x;
    } else if (arg == "--samples") {
      o.samples = value;
    } else if (arg == "--flood") {
      if (!parse_int(value, 1000, 1'000'000'000, x))
        return "--flood needs a number from 1000 to 10^9, not '" + value + "'";
      o.flood = x;
    } else if (arg == "--key-space") {
      if (!parse_int(value, 1, 1 << 20, x))
        return "--key-space needs a number from 1, not '" + value + "'";
      o.key_space = x;
    } else if (arg == "--inject") {
      if (value != "lost-update" && value != "unanswered" && value != "leftover")
        return "--inject is lost-update, unanswered or leftover, not '" + value + "'";
      o.inject = value;
    } else if (arg == "--index") {
      if (!parse_int(value, 0, 1'000'000, x))
        return "--index needs a number, not '" + value + "'";
      o.index = x;
    } else {
      return "unknown option '" + arg + "'";
    }
  }
  if (o.role == "node" && o.index < 0)
    return "--role node needs --index";
  if ((o.duration > 0) + (o.flood > 0) + (o.churn > 0) + (o.stall > 0) > 1)
    return "--duration, --flood, --churn and --stall are four runs: give one";
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

using hello_atom = caf::atom_constant<caf::atom("hello")>;
using intent_atom = caf::atom_constant<caf::atom("intent")>;
using acked_atom = caf::atom_constant<caf::atom("acked")>;
using peers_atom = caf::atom_constant<caf::atom("peers")>;
using killed_atom = caf::atom_constant<caf::atom("killed")>;
using gone_atom = caf::atom_constant<caf::atom("gone")>;
using report_atom = caf::atom_constant<caf::atom("report")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;
using bye_atom = caf::atom_constant<caf::atom("bye")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using hold_atom = caf::atom_constant<caf::atom("hold")>;
using later_atom = caf::atom_constant<caf::atom("later")>;
using deadline_atom = caf::atom_constant<caf::atom("deadline")>;
using joined_atom = caf::atom_constant<caf::atom("joined")>;
using thread_atom = caf::atom_constant<caf::atom("thread")>;
using ackq_atom = caf::atom_constant<caf::atom("ackq")>;

/// What a child acknowledges, by kind.
enum kind : int32_t {
  kind_dict = 0,  // a key set in the dict
  kind_add = 1,   // 1 added to the managed_value counter
  kind_queue = 2, // a leased queue item acked
  kind_total = 3, // 1 added lock-free to the shared value `total`
  kind_lock = 4,  // 1 added to the shared value `locked` under its lock
  kinds = 5,
};

constexpr const char* kind_names[kinds] = {"dict", "add", "queue", "total", "lock"};

/// The dict key of a child's `seq`-th set, and the value it sets.
int64_t dict_key(int64_t index, int64_t seq) {
  return (index << 32) | seq;
}

int64_t dict_value(int64_t key) {
  return key * 3 + 1;
}

/// What a child reports when told to stop.
struct node_report {
  int32_t index = 0;
  bool timed_out = false;
  int64_t requests = 0;
  int64_t answered = 0;
  int64_t peer_lost = 0; // answers that were errc::peer_lost (a killed peer)
  int64_t unexpected = 0;
  std::string first_unexpected;
  std::vector<int64_t> sent;   // per kind
  std::vector<int64_t> acked;  // per kind
  std::vector<int64_t> failed; // per kind
  std::vector<int32_t> monitored;
  std::vector<int32_t> downed;
  int64_t bad_downs = 0; // down_msgs whose reason was not errc::peer_lost
  int64_t async_sent = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_report& x) {
  return f(caf::meta::type_name("soak_node_report"), x.index, x.timed_out, x.requests, x.answered,
           x.peer_lost, x.unexpected, x.first_unexpected, x.sent, x.acked, x.failed, x.monitored,
           x.downed, x.bad_downs, x.async_sent);
}

/// What the tally heard from the children (in the coordinator's process).
struct tally_report {
  std::vector<int32_t> joined;
  std::vector<int64_t> dict_intents;
  std::vector<int64_t> dict_acks;
  std::vector<int64_t> queue_acks;
  // Per child index and kind: [index * kinds + kind].
  std::vector<int64_t> intents;
  std::vector<int64_t> acks;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, tally_report& x) {
  return f(caf::meta::type_name("soak_tally_report"), x.joined, x.dict_intents, x.dict_acks,
           x.queue_acks, x.intents, x.acks);
}

/// The same configuration in every process: types travel by name.
void configure(caf::actor_system_config& cfg) {
  tipc::configure(cfg);
  tipc::add_managed_types(cfg);
  cfg.add_message_type<node_report>("soak_node_report");
  cfg.add_message_type<tally_report>("soak_tally_report");
}

using sdict = tipc::managed_dict<int64_t, int64_t>;
using svalue = tipc::managed_value<int64_t>;
using squeue = tipc::managed_queue<int32_t>;

// ---------------------------------------------------------------------------
// Echo: answers at once, or after a pause (a request pending on its node)
// ---------------------------------------------------------------------------

struct echo_state {
  std::map<int64_t, caf::response_promise> held;
  int64_t next = 0;
  int64_t received = 0;
  static inline const char* name = "soak.echo";
};

caf::behavior echo_actor(caf::stateful_actor<echo_state>* self) {
  return {
    [](int32_t x) { return x; },
    [self](hold_atom, int32_t ms, int32_t x) {
      auto id = self->state.next++;
      auto rp = self->make_response_promise();
      self->state.held.emplace(id, rp);
      self->delayed_send(self, std::chrono::milliseconds(ms), later_atom::value, id, x);
      return rp;
    },
    [self](later_atom, int64_t id, int32_t x) {
      auto i = self->state.held.find(id);
      if (i == self->state.held.end())
        return;
      i->second.deliver(x);
      self->state.held.erase(i);
    },
    [self](const std::string&) { ++self->state.received; },
  };
}

// ---------------------------------------------------------------------------
// The tally (coordinator): who joined, intents and acknowledgements
// ---------------------------------------------------------------------------

struct tally_state {
  std::map<int32_t, caf::actor> echoes;   // live children's echo actors
  std::map<int32_t, caf::actor> controls; // live children's traffic actors
  std::set<int32_t> killed;
  std::set<caf::actor_addr> up; // traffic actors not down yet
  std::vector<caf::response_promise> gone_waiters;
  std::vector<std::pair<std::set<int32_t>, caf::response_promise>> join_waiters;
  tally_report data;
  std::map<int32_t, std::array<int64_t, kinds>> intents;
  std::map<int32_t, std::array<int64_t, kinds>> acks;
  // The long run keeps what it hears bounded: node indices come back (a
  // replacement takes a killed node's index), dict keys are kept as sets (a
  // node's keys repeat) and queue items are only counted.
  bool bounded = false;
  std::set<int64_t> dict_intent_keys;
  std::set<int64_t> dict_ack_keys;
  static inline const char* name = "soak.tally";
};

bool all_joined(const tally_state& st, const std::set<int32_t>& want) {
  for (auto k : want)
    if (std::find(st.data.joined.begin(), st.data.joined.end(), k) == st.data.joined.end())
      return false;
  return true;
}

caf::behavior tally_actor(caf::stateful_actor<tally_state>* self, bool bounded) {
  self->state.bounded = bounded;
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    st.up.erase(dm.source);
    for (auto i = st.controls.begin(); i != st.controls.end();)
      if (i->second.address() == dm.source) {
        st.echoes.erase(i->first);
        i = st.controls.erase(i);
      } else {
        ++i;
      }
    if (st.up.empty()) {
      for (auto& rp : st.gone_waiters)
        rp.deliver(caf::ok_atom::value);
      st.gone_waiters.clear();
    }
  });
  return {
    [self](hello_atom, int32_t k, const caf::actor& echo, const caf::actor& control) {
      auto& st = self->state;
      auto& joined = st.data.joined;
      if (!st.bounded || std::find(joined.begin(), joined.end(), k) == joined.end())
        joined.push_back(k);
      if (st.bounded)
        st.killed.erase(k); // a replacement under a killed node's index
      // CAF 0.17 cannot monitor an invalid handle (it crashes); troupe gives
      // actors of a node that is gone as dead proxies, but be safe.
      if (!echo || !control)
        return;
      if (st.killed.count(k) == 0) {
        st.echoes[k] = echo;
        st.controls[k] = control;
      }
      st.up.insert(control.address());
      self->monitor(control);
      for (auto i = st.join_waiters.begin(); i != st.join_waiters.end();)
        if (all_joined(st, i->first)) {
          i->second.deliver(caf::ok_atom::value);
          i = st.join_waiters.erase(i);
        } else {
          ++i;
        }
    },
    [self](intent_atom, int32_t k, int32_t what, int64_t key) {
      auto& st = self->state;
      if (what < 0 || what >= kinds)
        return;
      st.intents[k][static_cast<size_t>(what)] += 1;
      if (what == kind_dict && st.bounded)
        st.dict_intent_keys.insert(key);
      else if (what == kind_dict)
        st.data.dict_intents.push_back(key);
    },
    [self](acked_atom, int32_t k, int32_t what, int64_t key) {
      auto& st = self->state;
      if (what < 0 || what >= kinds)
        return;
      st.acks[k][static_cast<size_t>(what)] += 1;
      if (what == kind_dict && st.bounded)
        st.dict_ack_keys.insert(key);
      else if (what == kind_dict)
        st.data.dict_acks.push_back(key);
      else if (what == kind_queue && !st.bounded)
        st.data.queue_acks.push_back(key);
    },
    [self](peers_atom) {
      auto& st = self->state;
      std::vector<int32_t> ks;
      std::vector<caf::actor> xs;
      for (auto& [k, x] : st.echoes) {
        ks.push_back(k);
        xs.push_back(x);
      }
      return std::make_tuple(std::move(ks), std::move(xs));
    },
    [self](killed_atom, int32_t k) {
      auto& st = self->state;
      st.killed.insert(k);
      if (st.bounded) // its index comes back with a replacement, which must say hello
        st.data.joined.erase(std::remove(st.data.joined.begin(), st.data.joined.end(), k),
                             st.data.joined.end());
      st.echoes.erase(k);
      st.controls.erase(k);
    },
    // Answered once every child in `want` has said hello.
    [self](joined_atom, const std::vector<int32_t>& want) -> caf::result<caf::ok_atom> {
      auto& st = self->state;
      std::set<int32_t> w(want.begin(), want.end());
      if (all_joined(st, w))
        return caf::ok_atom::value;
      st.join_waiters.emplace_back(std::move(w), self->make_response_promise());
      return st.join_waiters.back().second;
    },
    [self](stop_atom) {
      auto& st = self->state;
      std::vector<int32_t> ks;
      std::vector<caf::actor> xs;
      for (auto& [k, x] : st.controls) {
        ks.push_back(k);
        xs.push_back(x);
      }
      return std::make_tuple(std::move(ks), std::move(xs));
    },
    // Answered once every child that said hello is down (killed or left).
    [self](gone_atom) -> caf::result<caf::ok_atom> {
      auto& st = self->state;
      if (st.up.empty())
        return caf::ok_atom::value;
      st.gone_waiters.push_back(self->make_response_promise());
      return st.gone_waiters.back();
    },
    [self](report_atom) {
      auto& st = self->state;
      auto res = st.data;
      if (st.bounded) {
        res.dict_intents.assign(st.dict_intent_keys.begin(), st.dict_intent_keys.end());
        res.dict_acks.assign(st.dict_ack_keys.begin(), st.dict_ack_keys.end());
      }
      int32_t n = 0;
      for (auto& kv : st.intents)
        n = std::max(n, kv.first + 1);
      for (auto& kv : st.acks)
        n = std::max(n, kv.first + 1);
      res.intents.assign(static_cast<size_t>(n) * kinds, 0);
      res.acks.assign(static_cast<size_t>(n) * kinds, 0);
      for (auto& [k, a] : st.intents)
        for (size_t i = 0; i < kinds; ++i)
          res.intents[static_cast<size_t>(k) * kinds + i] = a[i];
      for (auto& [k, a] : st.acks)
        for (size_t i = 0; i < kinds; ++i)
          res.acks[static_cast<size_t>(k) * kinds + i] = a[i];
      return res;
    },
  };
}

// ---------------------------------------------------------------------------
// A child: the traffic actor
// ---------------------------------------------------------------------------

/// The handles a child works with.
struct node_handles {
  int32_t index = 0;
  caf::actor tally;
  caf::actor dict;
  caf::actor counter;
  caf::actor queue;
  caf::actor host_echo;
  caf::actor own_echo;
  std::shared_ptr<std::atomic<bool>> stop_thread;
};

struct traffic_state {
  node_handles h;
  std::mt19937_64 rng;
  std::map<int32_t, caf::actor> peers;
  std::map<caf::actor_addr, int32_t> index_of;
  std::set<int32_t> downed;
  int64_t bad_downs = 0;
  int64_t requests = 0;
  int64_t answered = 0;
  int64_t peer_lost = 0;
  int64_t unexpected = 0;
  std::string first_unexpected;
  std::array<int64_t, kinds> sent{};
  std::array<int64_t, kinds> acked{};
  std::array<int64_t, kinds> failed{};
  int64_t async_sent = 0;
  int64_t seq = 0;
  int64_t key_space = 0;    // the long run's keys per node (0: every key is new)
  int64_t last_key = -1;    // a dict key this child set and had acknowledged
  bool leasing = false;     // a lease (or its ack) is outstanding
  bool peers_asked = false; // a peers request is outstanding
  clock_type::time_point next_peers;
  bool stopping = false;
  bool thread_done = false;
  bool reported = false;
  std::set<int32_t> killed;
  caf::response_promise stop_rp;
  static inline const char* name = "soak.traffic";
};

using traffic_actor_t = caf::stateful_actor<traffic_state>;

constexpr int64_t window = 16;
constexpr int32_t max_hold_ms = 200;
constexpr int32_t max_ack_delay_ms = 200;

void check_done(traffic_actor_t* self, bool deadline = false);

void note_unexpected(traffic_actor_t* self, const std::string& what, const caf::error& err) {
  auto& st = self->state;
  if (st.unexpected++ == 0)
    st.first_unexpected = what + ": " + troupe::describe(err);
}

/// Counts an answer; `err` (if any) is expected when `peer` and it is
/// errc::peer_lost.
void answered(traffic_actor_t* self) {
  ++self->state.answered;
  check_done(self);
}

void peer_error(traffic_actor_t* self, const caf::error& err) {
  if (troupe::is(err, troupe::errc::peer_lost))
    ++self->state.peer_lost;
  else
    note_unexpected(self, "request to a peer", err);
  answered(self);
}

void watch_peer(traffic_actor_t* self, int32_t k, const caf::actor& x) {
  auto& st = self->state;
  if (k == st.h.index || st.peers.count(k) != 0 || !x)
    return;
  st.peers.emplace(k, x);
  st.index_of.emplace(x.address(), k);
  self->monitor(x);
}

const caf::actor* random_peer(traffic_actor_t* self) {
  auto& st = self->state;
  std::vector<const caf::actor*> live;
  for (auto& [k, x] : st.peers)
    if (st.downed.count(k) == 0)
      live.push_back(&x);
  if (live.empty())
    return nullptr;
  return live[std::uniform_int_distribution<size_t>{0, live.size() - 1}(st.rng)];
}

void intent(traffic_actor_t* self, int32_t what, int64_t key) {
  auto& st = self->state;
  ++st.sent[static_cast<size_t>(what)];
  self->send(st.h.tally, intent_atom::value, st.h.index, what, key);
}

void ack(traffic_actor_t* self, int32_t what, int64_t key) {
  auto& st = self->state;
  ++st.acked[static_cast<size_t>(what)];
  self->send(st.h.tally, acked_atom::value, st.h.index, what, key);
}

void ack_lease(traffic_actor_t* self, uint64_t id, int32_t item) {
  auto& st = self->state;
  ++st.requests;
  self->request(st.h.queue, caf::infinite, tipc::ack_atom::value, id)
    .then(
      [self, item](caf::ok_atom) {
        ack(self, kind_queue, item);
        self->state.leasing = false;
        answered(self);
      },
      [self](caf::error& err) {
        ++self->state.failed[kind_queue];
        note_unexpected(self, "queue ack", err);
        self->state.leasing = false;
        answered(self);
      });
}

/// One random operation.
void operate(traffic_actor_t* self) {
  auto& st = self->state;
  auto op = std::uniform_int_distribution<int>{0, 9}(st.rng);
  switch (op) {
  case 0: { // a request to the coordinator's echo
    ++st.requests;
    auto x = static_cast<int32_t>(st.seq++);
    self->request(st.h.host_echo, caf::infinite, x)
      .then(
        [self, x](int32_t y) {
          if (x != y)
            note_unexpected(
              self, "host echo",
              troupe::ipc::make_error(troupe::ipc::errc::value_error, "wrong answer"));
          answered(self);
        },
        [self](caf::error& err) {
          note_unexpected(self, "host echo", err);
          answered(self);
        });
    break;
  }
  case 1:
  case 2: { // a request to a peer, answered at once or after a pause
    auto peer = random_peer(self);
    if (!peer)
      break;
    ++st.requests;
    auto x = static_cast<int32_t>(st.seq++);
    auto on_answer = [self, x](int32_t y) {
      if (x != y)
        note_unexpected(self, "peer echo",
                        troupe::ipc::make_error(troupe::ipc::errc::value_error, "wrong answer"));
      answered(self);
    };
    auto on_error = [self](caf::error& err) { peer_error(self, err); };
    if (op == 1)
      self->request(*peer, caf::infinite, x).then(on_answer, on_error);
    else
      self
        ->request(*peer, caf::infinite, hold_atom::value,
                  std::uniform_int_distribution<int32_t>{0, max_hold_ms}(st.rng), x)
        .then(on_answer, on_error);
    break;
  }
  case 3: { // asynchronous sends to a peer
    auto peer = random_peer(self);
    if (!peer)
      break;
    for (int i = 0; i < 8; ++i)
      self->send(*peer, std::string(64 + 64 * static_cast<size_t>(i), 'x'));
    st.async_sent += 8;
    break;
  }
  case 4:
  case 5: { // a dict update
    auto seq = st.seq++;
    auto key = dict_key(st.h.index, st.key_space > 0 ? seq % st.key_space : seq);
    intent(self, kind_dict, key);
    ++st.requests;
    self->request(st.h.dict, caf::infinite, tipc::set_atom::value, key, dict_value(key))
      .then(
        [self, key](caf::ok_atom) {
          ack(self, kind_dict, key);
          self->state.last_key = key;
          answered(self);
        },
        [self](caf::error& err) {
          ++self->state.failed[kind_dict];
          note_unexpected(self, "dict set", err);
          answered(self);
        });
    break;
  }
  case 6: { // read back a key this child set
    if (st.last_key < 0)
      break;
    auto key = st.last_key;
    ++st.requests;
    self->request(st.h.dict, caf::infinite, caf::get_atom::value, key)
      .then(
        [self, key](int64_t v) {
          if (v != dict_value(key))
            note_unexpected(self, "dict get",
                            troupe::ipc::make_error(troupe::ipc::errc::value_error, "wrong value"));
          answered(self);
        },
        [self](caf::error& err) {
          note_unexpected(self, "dict get of an acknowledged key", err);
          answered(self);
        });
    break;
  }
  case 7:
  case 8: { // an add to the counter
    intent(self, kind_add, 1);
    ++st.requests;
    self->request(st.h.counter, caf::infinite, caf::add_atom::value, int64_t{1})
      .then(
        [self](int64_t) {
          ack(self, kind_add, 1);
          answered(self);
        },
        [self](caf::error& err) {
          ++self->state.failed[kind_add];
          note_unexpected(self, "counter add", err);
          answered(self);
        });
    break;
  }
  case 9: { // a queue item under a lease, acked at once or a little later
    if (st.leasing)
      break;
    st.leasing = true;
    ++st.requests;
    self
      ->request(st.h.queue, caf::infinite, tipc::lease_atom::value,
                caf::timespan{std::chrono::milliseconds(20)})
      .then(
        [self](uint64_t id, int32_t item) {
          auto& st = self->state;
          ++st.sent[kind_queue];
          auto delay = std::uniform_int_distribution<int32_t>{0, max_ack_delay_ms}(st.rng);
          if (delay < max_ack_delay_ms / 2 || st.stopping)
            ack_lease(self, id, item);
          else
            self->delayed_send(self, std::chrono::milliseconds(delay), ackq_atom::value, id, item);
          answered(self);
        },
        [self](caf::error& err) {
          self->state.leasing = false;
          if (!troupe::is(err, troupe::ipc::errc::empty))
            note_unexpected(self, "queue lease", err);
          answered(self);
        });
    break;
  }
  default:
    break;
  }
}

void refresh_peers(traffic_actor_t* self) {
  auto& st = self->state;
  st.peers_asked = true;
  ++st.requests;
  self->request(st.h.tally, caf::infinite, peers_atom::value)
    .then(
      [self](std::vector<int32_t>& ks, std::vector<caf::actor>& xs) {
        for (size_t i = 0; i < ks.size() && i < xs.size(); ++i)
          watch_peer(self, ks[i], xs[i]);
        self->state.peers_asked = false;
        answered(self);
      },
      [self](caf::error& err) {
        self->state.peers_asked = false;
        note_unexpected(self, "peers", err);
        answered(self);
      });
}

void check_done(traffic_actor_t* self, bool deadline) {
  auto& st = self->state;
  if (!st.stopping || st.reported)
    return;
  bool done = st.requests == st.answered && !st.leasing && st.thread_done;
  for (auto k : st.killed)
    if (st.peers.count(k) != 0 && st.downed.count(k) == 0)
      done = false;
  if (!done && !deadline)
    return;
  node_report r;
  r.index = st.h.index;
  r.timed_out = !done;
  r.requests = st.requests;
  r.answered = st.answered;
  r.peer_lost = st.peer_lost;
  r.unexpected = st.unexpected;
  r.first_unexpected = st.first_unexpected;
  r.sent.assign(st.sent.begin(), st.sent.end());
  r.acked.assign(st.acked.begin(), st.acked.end());
  r.failed.assign(st.failed.begin(), st.failed.end());
  for (auto& kv : st.peers)
    r.monitored.push_back(kv.first);
  r.downed.assign(st.downed.begin(), st.downed.end());
  r.bad_downs = st.bad_downs;
  r.async_sent = st.async_sent;
  st.reported = true;
  st.stop_rp.deliver(std::move(r));
}

caf::behavior traffic_actor(traffic_actor_t* self, node_handles h, uint64_t seed, bool unanswered,
                            int64_t key_space) {
  auto& st = self->state;
  st.h = std::move(h);
  st.key_space = key_space;
  st.rng.seed(seed);
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    if (dm.source == st.h.tally) { // the coordinator is gone: nothing to do here
      self->quit(dm.reason);
      return;
    }
    auto i = st.index_of.find(dm.source);
    if (i == st.index_of.end())
      return;
    if (!troupe::is(dm.reason, troupe::errc::peer_lost))
      ++st.bad_downs;
    if (st.key_space > 0) { // the long run forgets a gone peer: its index comes back
      st.peers.erase(i->second);
      st.index_of.erase(i);
      return;
    }
    st.downed.insert(i->second);
    check_done(self);
  });
  self->monitor(st.h.tally);
  self->send(st.h.tally, hello_atom::value, st.h.index, st.h.own_echo, caf::actor{self});
  self->send(self, tick_atom::value);
  if (unanswered) { // --inject unanswered: held for longer than the deadline
    ++st.requests;
    self->request(st.h.host_echo, caf::infinite, hold_atom::value, int32_t{60'000}, int32_t{0})
      .then([self](int32_t) { answered(self); }, [self](caf::error&) { answered(self); });
  }
  return {
    [self](tick_atom) {
      auto& st = self->state;
      if (st.stopping)
        return;
      auto now = clock_type::now();
      if (!st.peers_asked && now >= st.next_peers) {
        st.next_peers = now + 100ms;
        refresh_peers(self);
      }
      for (int i = 0; i < 4 && st.requests - st.answered < window; ++i)
        operate(self);
      self->delayed_send(self, 2ms, tick_atom::value);
    },
    [self](ackq_atom, uint64_t id, int32_t item) { ack_lease(self, id, item); },
    [self](thread_atom) {
      self->state.thread_done = true;
      check_done(self);
    },
    [self](stop_atom, const std::vector<int32_t>& killed) -> caf::result<node_report> {
      auto& st = self->state;
      if (st.stopping)
        return troupe::make_error(troupe::errc::invalid_argument, "told to stop twice");
      st.stopping = true;
      st.killed.insert(killed.begin(), killed.end());
      st.h.stop_thread->store(true);
      st.stop_rp = self->make_response_promise();
      self->delayed_send(self, 8s, deadline_atom::value);
      check_done(self);
      return st.stop_rp;
    },
    [self](deadline_atom) { check_done(self, true); },
    [self](bye_atom) { self->quit(); },
  };
}

/// The child's plain thread: adds to the shared values in the segment, one
/// lock-free, one under the robust lock, telling the tally before and after.
void shm_worker(tipc::shared_value<int64_t>& total, tipc::shared_value<int64_t>& locked,
                caf::actor tally, caf::actor traffic, int32_t index,
                std::shared_ptr<std::atomic<bool>> stop) {
  int64_t n = 0;
  while (!stop->load()) {
    if (n++ % 2 == 0) {
      caf::anon_send(tally, intent_atom::value, index, int32_t{kind_total}, int64_t{1});
      total.add(1);
      caf::anon_send(tally, acked_atom::value, index, int32_t{kind_total}, int64_t{1});
    } else {
      caf::anon_send(tally, intent_atom::value, index, int32_t{kind_lock}, int64_t{1});
      // A holder paused by SIGSTOP keeps the lock: wait for it, with a deadline.
      auto res = locked.with_lock([](int64_t& x) { ++x; }, std::chrono::seconds(5));
      if (res)
        caf::anon_send(tally, acked_atom::value, index, int32_t{kind_lock}, int64_t{1});
    }
    // Pacing, not synchronisation: a few hundred operations a second.
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
  }
  caf::anon_send(traffic, thread_atom::value);
}

int run_node(const options& o) {
  caf::actor_system_config cfg;
  configure(cfg);
  cfg.set("scheduler.max-threads", 2);
  caf::actor_system sys{cfg};
  auto index = static_cast<int32_t>(o.index);
  auto fail = [&](const std::string& what, const caf::error& err) {
    std::cerr << "soak node " << index << ": " << what << ": " << troupe::describe(err) << '\n';
    return 3;
  };
  tipc::group_options gopts;
  gopts.quiet = true;
  auto group = tipc::node::join_from_env(sys, gopts);
  if (!group)
    return fail("cannot join", group.error());
  node_handles h;
  h.index = index;
  for (auto [name, slot] :
       {std::make_pair("tally", &h.tally), std::make_pair("dict", &h.dict),
        std::make_pair("counter", &h.counter), std::make_pair("queue", &h.queue),
        std::make_pair("echo-host", &h.host_echo)}) {
    auto x = group->lookup(name, std::chrono::seconds(10));
    if (!x)
      return fail(std::string{"cannot find "} + name, x.error());
    *slot = *x;
  }
  auto total = tipc::shared_value<int64_t>::open(*group, "total");
  if (!total)
    return fail("cannot open 'total'", total.error());
  auto locked = tipc::shared_value<int64_t>::open(*group, "locked");
  if (!locked)
    return fail("cannot open 'locked'", locked.error());
  // A value of its own: a killed child leaves it behind, for the group's
  // last node to sweep.
  std::optional<tipc::shared_value<int64_t>> own;
  if (auto x = tipc::shared_value<int64_t>::create(*group, "node-" + std::to_string(index), index))
    own.emplace(std::move(*x));
  else
    return fail("cannot create its own value", x.error());
  auto echo = sys.spawn(echo_actor);
  h.own_echo = echo;
  auto echo_name = group->publish("echo-" + std::to_string(index), echo);
  if (!echo_name)
    return fail("cannot publish its echo", echo_name.error());
  h.stop_thread = std::make_shared<std::atomic<bool>>(false);
  auto stop = h.stop_thread;
  auto tally = h.tally;
  auto traffic =
    sys.spawn(traffic_actor, std::move(h), o.seed, o.inject == "unanswered", o.key_space);
  std::thread worker{shm_worker, std::ref(*total), std::ref(*locked), tally, traffic, index, stop};
  caf::scoped_actor self{sys};
  self->monitor(traffic);
  self->receive([](caf::down_msg&) {});
  stop->store(true);
  worker.join();
  self->send_exit(echo, caf::exit_reason::user_shutdown);
  own.reset(); // removes its name
  group->leave();
  return 0;
}

// ---------------------------------------------------------------------------
// The coordinator: one round
// ---------------------------------------------------------------------------

struct round_result {
  bool pass = true;
  std::vector<std::string> problems;
  int64_t kills = 0;
  int64_t stops = 0;
  int64_t spawned = 0;
  int64_t requests = 0;
  int64_t peer_lost = 0;
  int64_t acked = 0;
  int64_t survivors = 0;
  double seconds = 0;

  void fail(std::string what) {
    pass = false;
    if (problems.size() < 20)
      problems.push_back(std::move(what));
  }
};

/// How many file descriptors this process has open.
int64_t open_fds() {
  int64_t n = 0;
  if (auto* dir = ::opendir("/proc/self/fd")) {
    while (auto* e = ::readdir(dir))
      n += e->d_name[0] != '.';
    ::closedir(dir);
  }
  return n - 1; // the directory's own
}

struct kid {
  int32_t index = 0;
  tipc::child_process proc;
  bool killed = false;
  bool stopped = false;
  clock_type::time_point cont_at;
};

template <class T>
std::string join_list(const T& xs) {
  std::ostringstream out;
  bool first = true;
  for (auto& x : xs) {
    out << (first ? "" : ",") << x;
    first = false;
  }
  return out.str();
}

constexpr int32_t queue_items = 4000;
constexpr auto patience = std::chrono::seconds(15);
constexpr int64_t long_run_key_space = 256; // dict keys per node in the long run

/// What a run sets up in the coordinator: the group, the owners of the
/// managed containers, the tally, the echo, two shared values, their names.
struct soak_world {
  soak_world(caf::actor_system& sys, tipc::node g, bool bounded)
    : group(std::move(g)), dict(sdict::make(sys)), counter(svalue::make(sys, 0)),
      queue(squeue::make(sys)), tally(sys.spawn(tally_actor, bounded)),
      echo(sys.spawn(echo_actor)) {}

  std::string name;
  tipc::node group;
  sdict dict;
  svalue counter;
  squeue queue;
  caf::actor tally;
  caf::actor echo;
  std::optional<tipc::shared_value<int64_t>> total;
  std::optional<tipc::shared_value<int64_t>> locked;
  std::vector<tipc::publication> names;
  int64_t queued = 0; // items ever put in the queue

  void stop_owners() {
    for (const auto& err : {dict.stop(), counter.stop(), queue.stop()})
      if (err)
        std::cerr << "soak: stopping an owner: " << troupe::describe(err) << '\n';
    caf::anon_send_exit(tally, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
  }

  /// Puts items in the queue until it holds `n`.
  void fill_queue(int64_t n, round_result& res) {
    auto have = queue.qsize(patience);
    if (!have) {
      res.fail("cannot read the queue's size: " + troupe::describe(have.error()));
      return;
    }
    for (auto i = *have; i < n; ++i)
      if (auto err = queue.put(static_cast<int32_t>(queued++))) {
        res.fail("cannot fill the queue: " + troupe::describe(err));
        return;
      }
  }
};

/// Step 1 of a run: the group and what the coordinator owns in it.
std::unique_ptr<soak_world> open_world(caf::actor_system& sys, const std::string& group_name,
                                       bool bounded, round_result& res) {
  tipc::group_options gopts;
  gopts.max_nodes = 64; // a killed node's slot rests for a second
  gopts.quiet = true;
  auto group = tipc::node::create(sys, group_name, gopts);
  if (!group) {
    res.fail("cannot create the group: " + troupe::describe(group.error()));
    return nullptr;
  }
  auto w = std::make_unique<soak_world>(sys, std::move(*group), bounded);
  w->name = group_name;
  auto t = tipc::shared_value<int64_t>::create(w->group, "total", 0);
  auto l = tipc::shared_value<int64_t>::create(w->group, "locked", 0);
  if (!t || !l) {
    res.fail("cannot create the shared values");
    w->stop_owners();
    return nullptr;
  }
  w->total.emplace(std::move(*t));
  w->locked.emplace(std::move(*l));
  w->fill_queue(queue_items, res);
  for (auto [name, x] :
       {std::make_pair("dict", w->dict.handle()), std::make_pair("counter", w->counter.handle()),
        std::make_pair("queue", w->queue.handle()), std::make_pair("tally", w->tally),
        std::make_pair("echo-host", w->echo)}) {
    auto published = w->group.publish(name, x);
    if (published)
      w->names.push_back(std::move(*published));
    else
      res.fail(std::string{"cannot publish "} + name + ": " + troupe::describe(published.error()));
  }
  return w;
}

/// Starts a child node under `index`; false (and a problem) when it cannot.
bool spawn_kid(soak_world& w, const options& o, int32_t index, std::mt19937_64& rng,
               std::vector<kid>& kids, round_result& res) {
  kid k;
  k.index = index;
  auto seed = std::uniform_int_distribution<int64_t>{0, INT64_MAX}(rng);
  std::vector<std::string> args{
    "--role", "node", "--index", std::to_string(k.index), "--seed", std::to_string(seed)};
  if (!o.inject.empty()) {
    args.emplace_back("--inject");
    args.push_back(o.inject);
  }
  if (o.duration > 0) {
    args.emplace_back("--key-space");
    args.push_back(std::to_string(long_run_key_space));
  }
  auto p = w.group.spawn_self(args);
  if (!p) {
    res.fail("cannot start node " + std::to_string(k.index) + ": " + troupe::describe(p.error()));
    return false;
  }
  k.proc = std::move(*p);
  ++res.spawned;
  kids.push_back(std::move(k));
  return true;
}

/// One chaos event on a random child of `victims`: SIGKILL (then a
/// replacement, by `replace`) or a pause of 10 to 800 ms with SIGSTOP.
template <class Replace>
void chaos_event(std::vector<kid*> victims, bool may_kill, std::mt19937_64& rng,
                 caf::scoped_actor& self, const soak_world& w, std::vector<int32_t>& killed,
                 round_result& res, Replace replace) {
  if (victims.empty())
    return;
  // A paused child may be killed too (stopped, say, half-way through a frame
  // or holding the lock), but not paused twice.
  auto& k = *victims[std::uniform_int_distribution<size_t>{0, victims.size() - 1}(rng)];
  bool kill = std::uniform_int_distribution<int>{0, 1}(rng) == 0 || k.stopped;
  if (kill && may_kill) {
    k.proc.kill(SIGKILL);
    auto st = k.proc.wait(patience);
    if (!st)
      res.fail("node " + std::to_string(k.index) + " not reaped within "
               + std::to_string(patience.count())
               + " s of SIGKILL: " + troupe_soak::process_condition(k.proc.pid()));
    k.killed = true;
    k.stopped = false;
    killed.push_back(k.index);
    self->send(w.tally, killed_atom::value, k.index);
    ++res.kills;
    replace(k.index); // may invalidate `k`
  } else if (!k.stopped) {
    k.proc.kill(SIGSTOP);
    k.stopped = true;
    k.cont_at = clock_type::now()
                + std::chrono::milliseconds(std::uniform_int_distribution<int64_t>{10, 800}(rng));
    ++res.stops;
  }
}

/// Resumes the paused children whose pause is over (all of them with `all`);
/// returns the earliest end of a pause still running.
clock_type::time_point resume_paused(std::vector<kid>& kids, clock_type::time_point wake,
                                     bool all = false) {
  auto now = clock_type::now();
  for (auto& k : kids)
    if (k.stopped && (all || now >= k.cont_at)) {
      k.proc.kill(SIGCONT);
      k.stopped = false;
    }
  for (auto& k : kids)
    if (k.stopped)
      wake = std::min(wake, k.cont_at);
  return wake;
}

/// Steps 4 to 6 of a run: every live child joins, is told to stop, reports
/// once its requests are answered (and it heard of every killed peer it
/// monitored), and exits with status 0; then the tally has seen them all go.
std::vector<node_report> stop_children(caf::scoped_actor& self, const soak_world& w,
                                       std::vector<kid>& kids, const std::vector<int32_t>& killed,
                                       round_result& res) {
  std::vector<int32_t> live;
  for (auto& k : kids)
    if (!k.killed)
      live.push_back(k.index);
  self->request(w.tally, patience, joined_atom::value, live)
    .receive([](caf::ok_atom) {},
             [&](caf::error& err) {
               res.fail("not every live node joined (" + join_list(live)
                        + "): " + troupe::describe(err));
             });
  std::vector<int32_t> ks;
  std::vector<caf::actor> controls;
  self->request(w.tally, patience, stop_atom::value)
    .receive(
      [&](std::vector<int32_t>& xs, std::vector<caf::actor>& ys) {
        ks = std::move(xs);
        controls = std::move(ys);
      },
      [&](caf::error& err) { res.fail("no list of controls: " + troupe::describe(err)); });
  std::vector<node_report> reports;
  {
    using handle = decltype(self->request(caf::actor{}, patience, stop_atom::value, killed));
    std::vector<handle> pending;
    for (auto& c : controls)
      pending.push_back(self->request(c, patience, stop_atom::value, killed));
    for (size_t i = 0; i < pending.size(); ++i)
      pending[i].receive([&](node_report& r) { reports.push_back(std::move(r)); },
                         [&](caf::error& err) {
                           res.fail("node " + std::to_string(ks[i])
                                    + " did not report: " + troupe::describe(err));
                         });
  }
  for (auto& c : controls)
    self->send(c, bye_atom::value);
  for (auto& k : kids) {
    if (k.killed)
      continue;
    auto st = k.proc.wait(patience);
    if (!st) {
      res.fail("node " + std::to_string(k.index) + " hangs: still running "
               + std::to_string(patience.count()) + " s after it was told to exit");
      k.proc.kill(SIGKILL);
      (void)k.proc.wait(patience);
    } else if (!st->success()) {
      res.fail("node " + std::to_string(k.index) + " " + tipc::to_string(*st));
    }
  }
  // Everything the children sent is delivered once the tally saw them all
  // go (a node's frames are delivered before its down_msg).
  self->request(w.tally, patience, gone_atom::value)
    .receive([](caf::ok_atom) {},
             [&](caf::error& err) {
               res.fail("the tally never saw every node go: " + troupe::describe(err));
             });
  return reports;
}

/// Step 7 of a run: the reports, the tally, the containers and the shared
/// values agree. `shared` holds the indices that more than one child had (the
/// long run's), whose counts the tally cannot tell apart.
void check_run(caf::scoped_actor& self, soak_world& w, const options& o,
               const std::vector<node_report>& reports, const std::set<int32_t>& killed_set,
               int64_t kills, const std::set<int32_t>& shared, round_result& res) {
  std::set<int32_t> survivors;
  for (auto& r : reports) {
    survivors.insert(r.index);
    auto who = "node " + std::to_string(r.index) + ": ";
    res.requests += r.requests;
    res.peer_lost += r.peer_lost;
    if (r.timed_out)
      res.fail(who + "did not finish within its deadline");
    if (r.requests != r.answered)
      res.fail(who + std::to_string(r.requests - r.answered) + " of " + std::to_string(r.requests)
               + " requests never answered");
    if (r.unexpected > 0)
      res.fail(who + std::to_string(r.unexpected)
               + " unexpected errors, the first: " + r.first_unexpected);
    if (r.bad_downs > 0)
      res.fail(who + std::to_string(r.bad_downs) + " down_msgs without errc::peer_lost");
    for (auto d : r.downed)
      if (killed_set.count(d) == 0)
        res.fail(who + "a down_msg for node " + std::to_string(d) + ", which was not killed");
    for (auto m : r.monitored)
      if (killed_set.count(m) != 0
          && std::find(r.downed.begin(), r.downed.end(), m) == r.downed.end())
        res.fail(who + "no down_msg for node " + std::to_string(m) + ", which was killed");
  }
  res.survivors = static_cast<int64_t>(survivors.size());
  std::optional<tally_report> t;
  self->request(w.tally, patience, report_atom::value)
    .receive([&](tally_report& x) { t = std::move(x); },
             [&](caf::error& err) { res.fail("no tally: " + troupe::describe(err)); });
  if (!t)
    return;
  auto at = [&](const std::vector<int64_t>& v, int32_t k, int32_t what) {
    auto i = static_cast<size_t>(k) * kinds + static_cast<size_t>(what);
    return i < v.size() ? v[i] : int64_t{0};
  };
  auto sum = [&](const std::vector<int64_t>& v, int32_t what) {
    int64_t s = 0;
    for (size_t i = static_cast<size_t>(what); i < v.size(); i += kinds)
      s += v[i];
    return s;
  };
  for (auto& x : t->acks)
    res.acked += x;
  // A survivor's acknowledgements and intents all reached the tally.
  for (auto& r : reports)
    for (int32_t wh = 0; wh < kinds; ++wh) {
      auto wi = static_cast<size_t>(wh);
      if (wh == kind_total || wh == kind_lock)
        continue; // counted by its thread, not in the report
      // Queue items are leased, not announced: only their acks are told.
      if (shared.count(r.index) == 0
          && (at(t->acks, r.index, wh) != r.acked[wi]
              || (wh != kind_queue && at(t->intents, r.index, wh) != r.sent[wi])))
        res.fail("node " + std::to_string(r.index) + ": " + kind_names[wh] + ": reported "
                 + std::to_string(r.sent[wi]) + " sent, " + std::to_string(r.acked[wi])
                 + " acked; the tally heard " + std::to_string(at(t->intents, r.index, wh))
                 + " and " + std::to_string(at(t->acks, r.index, wh)));
      if (wh != kind_queue && r.sent[wi] != r.acked[wi] + r.failed[wi])
        res.fail("node " + std::to_string(r.index) + ": " + kind_names[wh] + ": "
                 + std::to_string(r.sent[wi] - r.acked[wi] - r.failed[wi])
                 + " updates neither acknowledged nor failed");
    }
  // The dict: every acknowledged key is there with its value, every key
  // there was intended, a survivor's keys are exactly its acknowledged ones.
  if (o.inject == "lost-update" && !t->dict_acks.empty())
    (void)w.dict.pop(t->dict_acks.front(), patience);
  auto items = w.dict.items(patience);
  if (!items) {
    res.fail("cannot read the dict: " + troupe::describe(items.error()));
  } else {
    std::map<int64_t, int64_t> d(items->begin(), items->end());
    std::set<int64_t> intended(t->dict_intents.begin(), t->dict_intents.end());
    std::set<int64_t> acked_keys;
    for (auto key : t->dict_acks) {
      if (!acked_keys.insert(key).second)
        res.fail("dict: key " + std::to_string(key) + " acknowledged twice");
      auto i = d.find(key);
      if (i == d.end())
        res.fail("dict: acknowledged key " + std::to_string(key) + " (node "
                 + std::to_string(key >> 32) + ") is lost");
      else if (i->second != dict_value(key))
        res.fail("dict: key " + std::to_string(key) + " holds a wrong value");
    }
    for (auto& [key, v] : d) {
      auto owner = static_cast<int32_t>(key >> 32);
      if (intended.count(key) == 0)
        res.fail("dict: key " + std::to_string(key) + " was never set by anyone");
      if (survivors.count(owner) != 0 && shared.count(owner) == 0 && acked_keys.count(key) == 0)
        res.fail("dict: key " + std::to_string(key) + " of a survivor is there unacknowledged");
    }
  }
  // The counters: between what was acknowledged and what was intended (a
  // killed child's last update may be applied without an ack).
  auto check_count = [&](const std::string& what, caf::expected<int64_t> value, int32_t wh) {
    if (!value) {
      res.fail(what + ": cannot read: " + troupe::describe(value.error()));
      return;
    }
    auto lo = sum(t->acks, wh);
    auto hi = sum(t->intents, wh);
    if (*value < lo || *value > hi)
      res.fail(what + " is " + std::to_string(*value) + ", acknowledged " + std::to_string(lo)
               + ", intended " + std::to_string(hi));
    if (kills == 0 && *value != lo)
      res.fail(what + " is " + std::to_string(*value) + " without a kill, acknowledged "
               + std::to_string(lo));
  };
  check_count("counter", w.counter.get(patience), kind_add);
  check_count("shared value 'total'", w.total->get(), kind_total);
  check_count("shared value 'locked'", w.locked->get(), kind_lock);
  // The queue: no lease left, no acknowledged item back, nothing twice, at
  // most one item per killed child unaccounted for. (The long run counts its
  // acknowledged items; it does not keep them.)
  auto leased = w.queue.leased_count(patience);
  if (!leased || *leased != 0)
    res.fail("queue: " + (leased ? std::to_string(*leased) : troupe::describe(leased.error()))
             + " leases left after every holder is gone");
  std::set<int64_t> acked_items;
  for (auto x : t->queue_acks)
    if (!acked_items.insert(x).second)
      res.fail("queue: item " + std::to_string(x) + " acknowledged twice");
  std::set<int64_t> remaining;
  for (;;) {
    auto x = w.queue.get(caf::timespan{0});
    if (!x) {
      if (!troupe::is(x.error(), troupe::ipc::errc::empty))
        res.fail("queue: cannot drain: " + troupe::describe(x.error()));
      break;
    }
    if (!remaining.insert(*x).second)
      res.fail("queue: item " + std::to_string(*x) + " twice in the queue");
    if (acked_items.count(*x) != 0)
      res.fail("queue: acknowledged item " + std::to_string(*x) + " came back");
  }
  auto acked_count =
    o.duration > 0 ? sum(t->acks, kind_queue) : static_cast<int64_t>(acked_items.size());
  auto lost = w.queued - static_cast<int64_t>(remaining.size()) - acked_count;
  if (lost < 0 || lost > kills)
    res.fail("queue: " + std::to_string(lost) + " items unaccounted for, " + std::to_string(kills)
             + " nodes killed");
}

/// Step 8 of a run: the group ends, and nothing of it is left in /dev/shm.
void close_world(std::unique_ptr<soak_world> w, const options& o, round_result& res) {
  auto group_name = w->name;
  w->stop_owners();
  w->names.clear();
  w->total.reset();
  w->locked.reset();
  w->group.leave();
  w.reset();
  if (o.inject == "leftover")
    std::ofstream{"/dev/shm/troupe." + group_name + ".v.injected"};
  auto left = troupe_soak::shm_leftovers(group_name);
  if (!left.empty()) {
    res.fail("left in /dev/shm: " + join_list(left));
    for (auto& name : left)
      ::unlink(("/dev/shm/" + name).c_str());
  }
}

round_result run_round(caf::actor_system& sys, const options& o, int64_t round,
                       std::mt19937_64& rng) {
  round_result res;
  auto started = clock_type::now();
  auto group_name = "soak-" + std::to_string(::getpid()) + "-" + std::to_string(round);
  caf::scoped_actor self{sys};
  auto w = open_world(sys, group_name, false, res);
  if (!w)
    return res;
  std::vector<kid> kids;
  int32_t next_index = 0;
  for (int64_t i = 0; i < o.nodes; ++i)
    spawn_kid(*w, o, next_index++, rng, kids, res);

  // Chaos: at random moments, SIGKILL a random child (and start another) or
  // pause one with SIGSTOP for a random while. Timers pace the chaos; nothing
  // here waits for an event by sleeping.
  auto traffic_end =
    started
    + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(o.seconds));
  auto mean_gap_ms = std::max<int64_t>(
    50, static_cast<int64_t>(o.seconds * 1000 / static_cast<double>(2 * o.nodes)));
  auto gap = [&] {
    return std::chrono::milliseconds(
      std::uniform_int_distribution<int64_t>{10, 2 * mean_gap_ms}(rng));
  };
  auto next_chaos = started + gap();
  constexpr int64_t max_kills = 40; // slots: 64, and a dead one rests a second
  std::vector<int32_t> killed;
  for (;;) {
    auto wake = resume_paused(kids, std::min(next_chaos, traffic_end));
    auto now = clock_type::now();
    if (now >= traffic_end)
      break;
    if (now >= next_chaos) {
      next_chaos = now + gap();
      std::vector<kid*> victims;
      for (auto& k : kids)
        if (!k.killed)
          victims.push_back(&k);
      chaos_event(victims, res.kills < max_kills, rng, self, *w, killed, res,
                  [&](int32_t) { spawn_kid(*w, o, next_index++, rng, kids, res); });
      continue;
    }
    std::this_thread::sleep_until(wake);
  }
  resume_paused(kids, traffic_end, true);
  auto reports = stop_children(self, *w, kids, killed, res);
  check_run(self, *w, o, reports, {killed.begin(), killed.end()},
            static_cast<int64_t>(killed.size()), {}, res);
  close_world(std::move(w), o, res);
  std::chrono::duration<double> took = clock_type::now() - started;
  res.seconds = took.count();
  return res;
}

/// Prints a run's result like a round's, and its problems; the exit status.
int report_run(const char* what, const round_result& r) {
  std::cout << std::fixed << std::setprecision(1) << what << ": " << (r.pass ? "PASS" : "FAIL")
            << " (" << r.seconds << " s, " << r.spawned << " nodes, " << r.kills << " killed, "
            << r.stops << " stopped, " << r.survivors << " survivors, " << r.requests
            << " requests (" << r.peer_lost << " peer_lost), " << r.acked
            << " acknowledged updates)" << std::endl;
  for (auto& p : r.problems)
    std::cout << "  problem: " << p << std::endl;
  return r.pass ? 0 : 1;
}

/// The long run: one group for --duration seconds with --nodes long-lived
/// children and two that chaos kills (each replaced at once) and pauses;
/// samples the coordinator and each long-lived child every --sample-every
/// seconds; then the round's checks and the growth check.
int run_long(caf::actor_system& sys, const options& o, std::mt19937_64& rng) {
  round_result res;
  auto started = clock_type::now();
  auto group_name = "soak-" + std::to_string(::getpid()) + "-long";
  caf::scoped_actor self{sys};
  auto w = open_world(sys, group_name, true, res);
  if (!w)
    return report_run("long run", res);
  std::vector<kid> kids;
  auto lived = static_cast<int32_t>(o.nodes);
  for (int32_t i = 0; i < lived; ++i)
    spawn_kid(*w, o, i, rng, kids, res);
  // The victims take the indices from `lived` to 63 in turn, so an index comes
  // back only after dozens of kills, long after its last holder is gone.
  constexpr int32_t max_index = 64;
  constexpr int victims = 2;
  int32_t next_victim = lived;
  std::set<int32_t> used;
  std::set<int32_t> shared;
  auto spawn_victim = [&] {
    auto index = next_victim;
    next_victim = next_victim + 1 < max_index ? next_victim + 1 : lived;
    if (!used.insert(index).second)
      shared.insert(index);
    spawn_kid(*w, o, index, rng, kids, res);
  };
  for (int i = 0; i < victims; ++i)
    spawn_victim();
  std::vector<std::pair<std::string, pid_t>> watched{{"coordinator", ::getpid()}};
  for (auto& k : kids)
    if (k.index < lived)
      watched.emplace_back("node" + std::to_string(k.index), k.proc.pid());
  troupe_soak::usage_log log{watched, group_name};

  auto seconds = [](double s) {
    return std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(s));
  };
  auto end = started + seconds(o.duration);
  auto every = seconds(o.sample_every);
  auto next_sample = started;
  auto next_progress = started + std::chrono::minutes(1);
  auto gap = [&] {
    return std::chrono::milliseconds(std::uniform_int_distribution<int64_t>{10, 1000}(rng));
  };
  auto next_chaos = started + gap();
  std::vector<int32_t> just_killed; // the long run keeps counts, not lists
  for (;;) {
    auto wake = resume_paused(kids, std::min({next_chaos, next_sample, end}));
    auto now = clock_type::now();
    if (now >= end)
      break;
    if (now >= next_sample) {
      std::chrono::duration<double> t = now - started;
      log.sample(t.count());
      next_sample += every;
      w->fill_queue(queue_items, res); // items are used up; keep some
      if (now >= next_progress) {
        next_progress += std::chrono::minutes(1);
        auto u = troupe_soak::usage_of(::getpid());
        std::cout << std::fixed << std::setprecision(0) << "  " << t.count() << " s: " << res.kills
                  << " killed, " << res.stops << " stopped, coordinator " << u.rss_kib
                  << " KiB resident, " << u.fds << " fds, " << u.threads << " threads, /dev/shm "
                  << troupe_soak::shm_usage_kib(group_name) << " KiB" << std::endl;
      }
      continue;
    }
    if (now >= next_chaos) {
      next_chaos = now + gap();
      std::vector<kid*> targets;
      for (auto& k : kids)
        if (k.index >= lived && !k.killed)
          targets.push_back(&k);
      chaos_event(targets, true, rng, self, *w, just_killed, res, [&](int32_t) {
        kids.erase(std::remove_if(kids.begin(), kids.end(), [](const kid& k) { return k.killed; }),
                   kids.end());
        spawn_victim();
      });
      just_killed.clear();
      continue;
    }
    std::this_thread::sleep_until(wake);
  }
  resume_paused(kids, end, true);
  log.sample(std::chrono::duration<double>(clock_type::now() - started).count());
  auto reports = stop_children(self, *w, kids, {}, res);
  check_run(self, *w, o, reports, {}, res.kills, shared, res);
  close_world(std::move(w), o, res);
  for (auto& p : troupe_soak::check_growth(log, o.duration / 6, std::cout))
    res.fail(std::move(p));
  if (!log.write_csv(o.samples))
    res.fail("cannot write the samples to " + o.samples);
  res.seconds = std::chrono::duration<double>(clock_type::now() - started).count();
  return report_run("long run", res);
}

int run_coordinator(const options& o) {
  auto seed = o.seed_given ? o.seed : std::random_device{}();
  std::mt19937_64 rng{seed};
  caf::actor_system_config cfg;
  configure(cfg);
  caf::actor_system sys{cfg};
  if (o.duration > 0) {
    std::cout << "troupe-soak: a long run of " << o.duration << " s, " << o.nodes
              << " long-lived nodes and 2 for chaos, a sample every " << o.sample_every
              << " s, seed " << seed << std::endl;
    return run_long(sys, o, rng);
  }
  std::cout << "troupe-soak: " << o.rounds << " rounds of " << o.seconds << " s, " << o.nodes
            << " nodes, seed " << seed << std::endl;
  int64_t passed = 0;
  int64_t failed = 0;
  int64_t kills = 0;
  int64_t stops = 0;
  int64_t requests = 0;
  int64_t acked = 0;
  auto start = clock_type::now();
  int64_t fds_after_first = 0;
  for (int64_t round = 1; round <= o.rounds; ++round) {
    auto r = run_round(sys, o, round, rng);
    // The coordinator's own resources stay flat from round to round: every
    // group's pidfds, segments and mappings are let go.
    auto fds = open_fds();
    if (round == 1)
      fds_after_first = fds;
    else if (fds > fds_after_first + 8)
      r.fail(std::to_string(fds) + " file descriptors open, " + std::to_string(fds_after_first)
             + " after round 1");
    (r.pass ? passed : failed) += 1;
    kills += r.kills;
    stops += r.stops;
    requests += r.requests;
    acked += r.acked;
    std::cout << std::fixed << std::setprecision(1) << "round " << round << ": "
              << (r.pass ? "PASS" : "FAIL") << " (" << r.seconds << " s, " << r.spawned
              << " nodes, " << r.kills << " killed, " << r.stops << " stopped, " << r.survivors
              << " survivors, " << r.requests << " requests (" << r.peer_lost << " peer_lost), "
              << r.acked << " acknowledged updates)" << std::endl;
    for (auto& p : r.problems)
      std::cout << "  problem: " << p << std::endl;
  }
  std::chrono::duration<double> took = clock_type::now() - start;
  std::cout << std::fixed << std::setprecision(1) << passed << " passed, " << failed << " failed ("
            << o.rounds << " rounds in " << took.count() << " s: " << kills << " killed, " << stops
            << " stopped, " << requests << " requests answered, " << acked
            << " acknowledged updates, " << open_fds() << " fds open at the end, seed " << seed
            << ")" << std::endl;
  return failed == 0 ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
  options o;
  bool help = false;
  if (auto bad = parse_options(argc, argv, o, help)) {
    std::cerr << "troupe-soak: " << *bad << "\ntry 'troupe-soak --help'\n";
    return 2;
  }
  if (help) {
    std::cout << usage;
    return 0;
  }
  if (o.role == "node")
    return run_node(o);
  if (o.role == "churn")
    return troupe_soak::run_churn_node();
  if (o.churn > 0)
    return troupe_soak::run_churn(o.churn, 60);
  if (o.role == "stall")
    return troupe_soak::run_stall_node();
  if (o.stall > 0)
    return troupe_soak::run_stall(o.stall, o.sample_every, o.samples);
  if (o.role == "flood" || o.flood > 0) {
    troupe_soak::flood_options f;
    f.messages = o.flood > 0 ? o.flood : f.messages;
    f.sample_every = o.sample_every;
    f.samples = o.samples;
    return o.role == "flood" ? troupe_soak::run_flood_sender(f) : troupe_soak::run_flood(f);
  }
  return run_coordinator(o);
}
