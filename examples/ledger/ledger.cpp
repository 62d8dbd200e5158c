// ledger: a multi-process bank whose transfers are applied exactly once,
// while a chaos monkey kills its worker processes with SIGKILL.
//
// The chapter's bank guards its balances with a lock; here one ledger actor
// owns every account (no lock anywhere) and worker processes, this program
// started again under a troupe::supervisor (one_for_one, permanent), send it
// transfers as requests across processes. Each transfer has a unique id and
// the ledger applies an id at most once: a worker killed mid-flight is
// restarted, asks which of its ids were acknowledged, and sends the rest
// again; the ledger answers a transfer it has seen with the outcome it gave
// the first time. At the end the parent checks every acknowledged transfer
// against the ledger's journal (applied exactly once, balances replayed from
// the journal, total conserved) and prints PASS or FAIL.
//
//   ledger [--workers 4 --transfers 20000 --chaos-interval 500 ...]    one host
//   ledger --role ledger --listen 127.0.0.1:7000                          the ledger
//   ledger --connect 127.0.0.1:7000 [...]                  its workers, elsewhere
//
// The processes name their role on their command line (`ledger --role
// worker --index 2 ...`), so `ps` shows who is who.

#include "troupe/error.hpp"
#include "troupe/ipc/configure.hpp"
#include "troupe/ipc/managed_types.hpp"
#include "troupe/ipc/node.hpp"
#include "troupe/ipc/process_supervision.hpp"
#include "troupe/ipc/program.hpp"
#include "troupe/supervisor.hpp"

#include <caf/all.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <iomanip>
#include <iostream>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

/// Transfer ids are 0 to `max_transfers` - 1.
constexpr int64_t max_transfers = 10'000'000;

struct options {
  std::string role = "bank";
  int32_t workers = 4;
  int64_t transfers = 300'000;
  double duration = 20;
  int64_t chaos_interval_ms = 500;
  int32_t accounts = 10;
  int32_t window = 16;
  int32_t index = -1;
  std::string listen;  // [ADDR:]PORT, role ledger
  std::string connect; // HOST:PORT, roles bank and worker
};

constexpr const char* usage = R"(usage: ledger [options]

A bank on one host: a ledger process owns the accounts, supervised worker
processes send it transfers, a chaos option kills workers with SIGKILL, and
a final check proves every acknowledged transfer was applied exactly once.

options:
  --workers N           worker processes (default 4)
  --transfers N         transfers to make, ids 0..N-1 (default 300000)
  --duration SECONDS    stop early after this long (default 20)
  --chaos-interval MS   kill a random worker with SIGKILL every MS
                        milliseconds; 0 turns chaos off (default 500)
  --accounts N          accounts in the ledger, at least 2 (default 10)
  --window N            transfers in flight per worker (default 16)
  --role ROLE           bank (default): the ledger and its workers;
                        ledger: the ledger alone, reachable over TCP (--listen)
  --listen [ADDR:]PORT  with --role ledger: publish the ledger through CAF's
                        middleman on ADDR (default 127.0.0.1), PORT 0 picks one
  --connect HOST:PORT   the bank's workers use the ledger published there
                        instead of one of their own
  --help                this text

Exit status: 0 when the check passes, 1 when it fails, 2 for bad options.
)";

/// A bad command line: the message, for the caller to print.
struct bad_option {
  std::string what;
};

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

/// Splits `[host:]port`; `host` keeps `fallback` when the text has none.
bool parse_endpoint(const std::string& text, std::string& host, uint16_t& port) {
  auto colon = text.rfind(':');
  std::string port_text = text;
  if (colon != std::string::npos) {
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (host.empty())
      return false;
  }
  int64_t p = 0;
  if (!parse_int(port_text, 0, 65535, p))
    return false;
  port = static_cast<uint16_t>(p);
  return true;
}

std::variant<options, bad_option, bool> parse_options(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h")
      return true;
    if (arg.rfind("--", 0) != 0)
      return bad_option{"unexpected argument '" + arg + "'"};
    if (i + 1 >= argc)
      return bad_option{"option " + arg + " needs a value"};
    std::string value = argv[++i];
    int64_t n = 0;
    auto number = [&](int64_t min, int64_t max) -> std::optional<bad_option> {
      if (parse_int(value, min, max, n))
        return std::nullopt;
      return bad_option{"option " + arg + " needs a whole number from " + std::to_string(min)
                        + " to " + std::to_string(max) + ", not '" + value + "'"};
    };
    std::optional<bad_option> err;
    if (arg == "--workers") {
      if (!(err = number(1, 32)))
        o.workers = static_cast<int32_t>(n);
    } else if (arg == "--transfers") {
      if (!(err = number(1, max_transfers)))
        o.transfers = n;
    } else if (arg == "--chaos-interval") {
      if (!(err = number(0, 3'600'000)))
        o.chaos_interval_ms = n;
    } else if (arg == "--accounts") {
      if (!(err = number(2, 1'000'000)))
        o.accounts = static_cast<int32_t>(n);
    } else if (arg == "--window") {
      if (!(err = number(1, 1024)))
        o.window = static_cast<int32_t>(n);
    } else if (arg == "--index") {
      if (!(err = number(0, 31)))
        o.index = static_cast<int32_t>(n);
    } else if (arg == "--duration") {
      char* end = nullptr;
      o.duration = std::strtod(value.c_str(), &end);
      if (value.empty() || *end != '\0' || !(o.duration > 0) || o.duration > 86'400)
        err =
          bad_option{"option --duration needs a number of seconds above 0, not '" + value + "'"};
    } else if (arg == "--role") {
      if (value != "bank" && value != "ledger")
        err = bad_option{"--role is bank or ledger, not '" + value + "'"};
      o.role = value;
    } else if (arg == "--listen") {
      std::string host;
      uint16_t port = 0;
      if (!parse_endpoint(value, host, port))
        err = bad_option{"option --listen needs [ADDR:]PORT, not '" + value + "'"};
      o.listen = value;
    } else if (arg == "--connect") {
      std::string host;
      uint16_t port = 0;
      if (!parse_endpoint(value, host, port) || host.empty() || port == 0)
        err = bad_option{"option --connect needs HOST:PORT, not '" + value + "'"};
      o.connect = value;
    } else {
      err = bad_option{"unknown option '" + arg + "'"};
    }
    if (err)
      return *err;
  }
  if (o.role == "ledger" && o.listen.empty())
    return bad_option{"--role ledger needs --listen [ADDR:]PORT"};
  if (o.role != "ledger" && !o.listen.empty())
    return bad_option{"--listen goes with --role ledger"};
  if (o.role == "ledger" && !o.connect.empty())
    return bad_option{"--connect goes with the bank, not with --role ledger"};
  if (o.index >= o.workers)
    return bad_option{"--index must be below --workers"};
  return o;
}

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

using transfer_atom = caf::atom_constant<caf::atom("transfer")>;
using applied_atom = caf::atom_constant<caf::atom("applied")>;
using report_atom = caf::atom_constant<caf::atom("report")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;
using resume_atom = caf::atom_constant<caf::atom("resume")>;
using acked_atom = caf::atom_constant<caf::atom("acked")>;
using stats_atom = caf::atom_constant<caf::atom("stats")>;
using done_atom = caf::atom_constant<caf::atom("done")>;
using retry_atom = caf::atom_constant<caf::atom("retry")>;
using gone_atom = caf::atom_constant<caf::atom("gone")>;

/// The ledger's own errors: a rejected transfer is an error value, not an
/// exception and not a silent drop.
enum class ledger_errc : uint8_t {
  insufficient_funds = 1,
  bad_transfer,
};

constexpr caf::atom_value ledger_category = caf::atom("ledger");

caf::error make_error(ledger_errc x, std::string what) {
  return caf::error{static_cast<uint8_t>(x), ledger_category, caf::make_message(std::move(what))};
}

bool is(const caf::error& err, ledger_errc x) {
  return err && err.category() == ledger_category && err.code() == static_cast<uint8_t>(x);
}

/// What the ledger answers to `report`: its balances and its journal, the
/// list of every balance change it made, in order.
struct ledger_report {
  int64_t opening_balance = 0;
  std::vector<int64_t> balances;
  std::vector<int64_t> journal_id;
  std::vector<int64_t> journal_from;
  std::vector<int64_t> journal_to;
  std::vector<int64_t> journal_amount;
  std::vector<int64_t> rejected;
  int64_t duplicates = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ledger_report& x) {
  return f(caf::meta::type_name("ledger_report"), x.opening_balance, x.balances, x.journal_id,
           x.journal_from, x.journal_to, x.journal_amount, x.rejected, x.duplicates);
}

/// The same configuration in every process (types travel by name), after
/// `troupe::ipc::configure`, which the program does.
void configure(caf::actor_system_config& cfg) {
  if (troupe::ipc::this_process_role() == "worker")
    cfg.set("scheduler.max-threads", 2);
  troupe::ipc::add_managed_types(cfg);
  cfg.add_message_type<ledger_report>("ledger_report");
  cfg.add_error_category(
    ledger_category, [](uint8_t code, caf::atom_value, const caf::message& ctx) {
      std::string res = code == static_cast<uint8_t>(ledger_errc::insufficient_funds)
                          ? "ledger.insufficient_funds"
                          : "ledger.bad_transfer";
      if (!ctx.empty())
        res += ": " + caf::to_string(ctx);
      return res;
    });
}

// ---------------------------------------------------------------------------
// Transfers: a pure function of the id, so any process can recompute one
// ---------------------------------------------------------------------------

constexpr int64_t opening_balance = 1'000;
constexpr int64_t max_amount = 500;

struct transfer {
  int64_t id = 0;
  int32_t from = 0;
  int32_t to = 0;
  int64_t amount = 0;
};

transfer make_transfer(int64_t id, int32_t accounts) {
  // splitmix64: well spread, and the same in every process.
  auto z = static_cast<uint64_t>(id) + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  auto n = static_cast<uint64_t>(accounts);
  transfer t;
  t.id = id;
  t.from = static_cast<int32_t>(z % n);
  t.to = static_cast<int32_t>((z % n + 1 + (z >> 20) % (n - 1)) % n);
  t.amount = 1 + static_cast<int64_t>((z >> 40) % static_cast<uint64_t>(max_amount));
  return t;
}

// ---------------------------------------------------------------------------
// The ledger: owns the accounts; applies each transfer id at most once
// ---------------------------------------------------------------------------

struct ledger_state {
  std::vector<int64_t> balances;
  // The outcome given to each id (0: none yet, 1: applied, 2: rejected),
  // so that a resent id gets the same answer and changes nothing.
  std::vector<int8_t> outcomes;
  ledger_report journal;
  static inline const char* name = "ledger";
};

caf::behavior ledger_actor(caf::stateful_actor<ledger_state>* self, int32_t accounts) {
  auto& st = self->state;
  st.balances.assign(static_cast<size_t>(accounts), opening_balance);
  st.journal.opening_balance = opening_balance;
  return {
    [self](transfer_atom, int64_t id, int32_t from, int32_t to,
           int64_t amount) -> caf::result<applied_atom, bool> {
      auto& st = self->state;
      auto n = static_cast<int32_t>(st.balances.size());
      if (id < 0 || id >= max_transfers || from < 0 || from >= n || to < 0 || to >= n || from == to
          || amount <= 0)
        return make_error(ledger_errc::bad_transfer, "transfer " + std::to_string(id));
      if (static_cast<size_t>(id) >= st.outcomes.size())
        st.outcomes.resize(std::max(static_cast<size_t>(id) + 1, 2 * st.outcomes.size()), 0);
      auto& seen = st.outcomes[static_cast<size_t>(id)];
      // 1. Seen before: the same answer as the first time, nothing changes.
      if (seen != 0) {
        ++st.journal.duplicates;
        if (seen == 1)
          return {applied_atom::value, true};
        return make_error(ledger_errc::insufficient_funds,
                          "transfer " + std::to_string(id) + " was rejected before");
      }
      // 2. Would overdraw: rejected, and remembered as rejected.
      auto& src = st.balances[static_cast<size_t>(from)];
      if (src < amount) {
        seen = 2;
        st.journal.rejected.push_back(id);
        return make_error(ledger_errc::insufficient_funds, "account " + std::to_string(from)
                                                             + " holds " + std::to_string(src)
                                                             + ", transfer " + std::to_string(id)
                                                             + " needs " + std::to_string(amount));
      }
      // 3. Applied: both balances and the journal change in one step.
      src -= amount;
      st.balances[static_cast<size_t>(to)] += amount;
      seen = 1;
      st.journal.journal_id.push_back(id);
      st.journal.journal_from.push_back(from);
      st.journal.journal_to.push_back(to);
      st.journal.journal_amount.push_back(amount);
      return {applied_atom::value, false};
    },
    [self](report_atom) {
      auto res = self->state.journal;
      res.balances = self->state.balances;
      return res;
    },
    [self](stop_atom) {
      self->quit();
      return caf::unit;
    },
  };
}

// ---------------------------------------------------------------------------
// The tally (in the bank's process): what the workers report acknowledged
// ---------------------------------------------------------------------------

enum outcome : int64_t { unknown = 0, acked_applied = 1, acked_rejected = 2 };

struct tally_state {
  int32_t workers = 0;
  std::vector<int64_t> outcomes;   // per id: an `outcome`
  int64_t applied = 0;             // acknowledged as applied
  int64_t rejected = 0;            // acknowledged as rejected
  int64_t conflicts = 0;           // the same id reported with another outcome
  std::vector<int32_t> pids;       // per worker: its current process
  std::vector<int64_t> starts;     // per worker: processes started
  std::vector<caf::actor> waiters; // told once every id is answered
  // One actor per live worker process that goes down when the process has
  // left the group (or died), and who waits for all of them to be gone.
  std::vector<caf::actor_addr> processes;
  std::vector<caf::response_promise> gone_waiters;
  static inline const char* name = "tally";
};

caf::behavior tally_actor(caf::stateful_actor<tally_state>* self, int32_t workers,
                          int64_t transfers) {
  auto& st = self->state;
  st.workers = workers;
  st.outcomes.assign(static_cast<size_t>(transfers), unknown);
  st.pids.assign(static_cast<size_t>(workers), 0);
  st.starts.assign(static_cast<size_t>(workers), 0);
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& st = self->state;
    st.processes.erase(std::remove(st.processes.begin(), st.processes.end(), msg.source),
                       st.processes.end());
    if (st.processes.empty()) {
      for (auto& rp : st.gone_waiters)
        rp.deliver(caf::unit);
      st.gone_waiters.clear();
    }
  });
  auto all_answered = [self] {
    auto& st = self->state;
    return st.applied + st.rejected == static_cast<int64_t>(st.outcomes.size());
  };
  return {
    // A worker process (re)starts: which of its ids are acknowledged already?
    [self](resume_atom, int32_t k, int32_t pid, const caf::actor& process) {
      auto& st = self->state;
      self->monitor(process);
      st.processes.push_back(process.address());
      st.pids[static_cast<size_t>(k)] = pid;
      ++st.starts[static_cast<size_t>(k)];
      std::vector<int64_t> done;
      for (auto id = int64_t{k}; id < static_cast<int64_t>(st.outcomes.size()); id += st.workers)
        if (st.outcomes[static_cast<size_t>(id)] != unknown)
          done.push_back(id);
      return done;
    },
    [self, all_answered](acked_atom, int64_t id, bool applied) {
      auto& st = self->state;
      if (id < 0 || id >= static_cast<int64_t>(st.outcomes.size())) {
        ++st.conflicts;
        return;
      }
      auto& slot = st.outcomes[static_cast<size_t>(id)];
      auto now = applied ? acked_applied : acked_rejected;
      if (slot != unknown) {
        // Reported again (by a killed worker and its successor): fine, if
        // the outcome is the same.
        if (slot != now)
          ++st.conflicts;
        return;
      }
      slot = now;
      (applied ? st.applied : st.rejected) += 1;
      if (all_answered())
        for (auto& w : st.waiters)
          self->send(w, done_atom::value);
    },
    [self, all_answered](done_atom, caf::actor waiter) {
      if (all_answered())
        self->send(waiter, done_atom::value);
      else
        self->state.waiters.push_back(std::move(waiter));
    },
    // Answered once every worker process that ever resumed is gone.
    [self](gone_atom) -> caf::result<void> {
      auto& st = self->state;
      if (st.processes.empty())
        return caf::unit;
      st.gone_waiters.push_back(self->make_response_promise());
      return st.gone_waiters.back();
    },
    [self](stats_atom) {
      auto& st = self->state;
      int64_t restarts = 0;
      for (auto n : st.starts)
        restarts += std::max<int64_t>(0, n - 1);
      return std::make_tuple(st.applied, st.rejected, restarts, st.pids);
    },
    [self](report_atom) {
      auto& st = self->state;
      return std::make_tuple(st.outcomes, st.conflicts);
    },
  };
}

// ---------------------------------------------------------------------------
// A worker: sends its share of the transfers, `window` at a time
// ---------------------------------------------------------------------------

struct worker_state {
  std::deque<int64_t> todo;
  int32_t in_flight = 0;
  static inline const char* name = "ledger-worker";
};

void pump(caf::stateful_actor<worker_state>* self, const caf::actor& ledger,
          const caf::actor& tally, int32_t accounts, int32_t window);

void send_transfer(caf::stateful_actor<worker_state>* self, const caf::actor& ledger,
                   const caf::actor& tally, int32_t accounts, int32_t window, int64_t id) {
  auto t = make_transfer(id, accounts);
  ++self->state.in_flight;
  // No timeout: the worker monitors the ledger, and a request to an actor
  // that dies (or whose process or connection is lost) fails at once.
  self->request(ledger, caf::infinite, transfer_atom::value, t.id, t.from, t.to, t.amount)
    .then(
      [=](applied_atom, bool) {
        --self->state.in_flight;
        self->send(tally, acked_atom::value, id, true);
        pump(self, ledger, tally, accounts, window);
      },
      [=](caf::error& err) {
        --self->state.in_flight;
        if (is(err, ledger_errc::insufficient_funds)) {
          self->send(tally, acked_atom::value, id, false);
        } else {
          // Not answered: send it again a little later (the ledger
          // dedups, so a transfer it did apply is not applied twice).
          std::cerr << "worker: transfer " << id << ": " << troupe::describe(err) << '\n';
          self->delayed_send(self, std::chrono::milliseconds(100), retry_atom::value, id);
        }
        pump(self, ledger, tally, accounts, window);
      });
}

void pump(caf::stateful_actor<worker_state>* self, const caf::actor& ledger,
          const caf::actor& tally, int32_t accounts, int32_t window) {
  auto& st = self->state;
  while (st.in_flight < window && !st.todo.empty()) {
    auto id = st.todo.front();
    st.todo.pop_front();
    send_transfer(self, ledger, tally, accounts, window, id);
  }
}

caf::behavior worker_actor(caf::stateful_actor<worker_state>* self, options o, caf::actor ledger,
                           caf::actor tally, caf::actor process) {
  // The ledger or the bank gone (process killed, connection lost): stop.
  self->monitor(ledger);
  self->monitor(tally);
  self->set_down_handler([self](caf::down_msg& msg) { self->quit(std::move(msg.reason)); });
  // 1. Resume: ask which of our ids are acknowledged; send the others.
  self
    ->request(tally, caf::infinite, resume_atom::value, o.index, int32_t{::getpid()},
              std::move(process))
    .then([=](const std::vector<int64_t>& done) {
      std::set<int64_t> skip(done.begin(), done.end());
      for (auto id = int64_t{o.index}; id < o.transfers; id += o.workers)
        if (skip.count(id) == 0)
          self->state.todo.push_back(id);
      pump(self, ledger, tally, o.accounts, o.window);
    });
  return {
    [=](retry_atom, int64_t id) {
      self->state.todo.push_back(id);
      pump(self, ledger, tally, o.accounts, o.window);
    },
  };
}

std::string worker_name(int32_t k) {
  return "worker-" + std::to_string(k);
}

/// The ledger to use: the group's own, or one published over TCP.
caf::expected<caf::actor> find_ledger(troupe::ipc::node& group, const options& o,
                                      caf::timespan wait) {
  if (o.connect.empty())
    return group.lookup("ledger", wait);
  std::string host;
  uint16_t port = 0;
  parse_endpoint(o.connect, host, port);
  return group.remote_tcp(host, port);
}

/// A worker process (role "worker", started by the bank's supervisor).
int run_worker(troupe::ipc::process_context& ctx, const options& o) {
  // Ctrl-C is for the bank, which stops its workers in order.
  ::signal(SIGINT, SIG_IGN);
  if (o.index < 0)
    ctx.fail("a worker needs --index", troupe::make_error(troupe::errc::invalid_argument));
  auto name = worker_name(o.index);
  auto ledger = ctx.check(find_ledger(ctx.group(), o, std::chrono::seconds(10)), "the ledger");
  auto tally = ctx.check(ctx.group().lookup("tally", std::chrono::seconds(10)), "the tally");
  // `self` lives until this process has left the group: the tally watches
  // it to know when the process is gone.
  caf::scoped_actor self{ctx.system()};
  auto w = ctx.system().spawn(worker_actor, o, ledger, tally, caf::actor{self});
  self->monitor(w);
  auto listing = ctx.group().publish(name, w);
  if (!listing) {
    self->send_exit(w, caf::exit_reason::kill);
    ctx.fail("cannot publish " + name, listing.error());
  }
  // Live as long as the worker actor: the supervisor stops it in the end.
  self->receive([](caf::down_msg&) {});
  ctx.group().leave();
  return 0;
}

// ---------------------------------------------------------------------------
// Ctrl-C and SIGTERM end a run early, in order (so /dev/shm is cleaned up)
// ---------------------------------------------------------------------------

std::atomic<bool> interrupted{false};

void on_signal(int) {
  interrupted.store(true);
}

void catch_signals() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

bool segment_exists(const std::string& group) {
  struct stat st;
  return ::stat(("/dev/shm/troupe." + group).c_str(), &st) == 0;
}

// ---------------------------------------------------------------------------
// --role ledger: the ledger alone, published over TCP
// ---------------------------------------------------------------------------

int run_ledger_server(troupe::ipc::process_context& ctx, const options& o) {
  catch_signals();
  auto& sys = ctx.system();
  auto& group = ctx.group();
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  parse_endpoint(o.listen, host, port);
  // 1. A group of its own, with the ledger published by name (as the bank
  //    does) and through CAF's middleman, for other hosts.
  auto ledger = sys.spawn(ledger_actor, o.accounts);
  caf::scoped_actor self{sys};
  self->monitor(ledger);
  auto port_or = group.publish_tcp(ledger, port, host);
  auto listing = port_or ? group.publish("ledger", ledger)
                         : caf::expected<troupe::ipc::publication>{port_or.error()};
  if (!listing) {
    self->send_exit(ledger, caf::exit_reason::kill);
    ctx.fail("cannot publish the ledger", listing.error());
  }
  std::cout << "ledger listening on " << host << ':' << *port_or << " (" << o.accounts
            << " accounts of " << opening_balance << ")" << std::endl;
  // 2. Serve until a bank says stop (or Ctrl-C).
  bool stopped = false;
  while (!stopped && !interrupted.load())
    self->receive([&](caf::down_msg&) { stopped = true; },
                  caf::after(std::chrono::milliseconds(100)) >> [] {});
  if (!stopped) {
    self->send_exit(ledger, caf::exit_reason::user_shutdown);
    self->receive([](caf::down_msg&) {});
  }
  std::cout << "ledger stopped" << (stopped ? "" : " (interrupted)") << std::endl;
  return stopped ? 0 : 1;
}

// ---------------------------------------------------------------------------
// The check: what the workers acknowledged against the ledger's journal
// ---------------------------------------------------------------------------

struct verdict {
  bool pass = true;
  std::vector<std::string> problems;
  int64_t applied_unacknowledged = 0;
  int64_t total = 0;
  int64_t opening_total = 0;

  void fail(std::string what) {
    pass = false;
    if (problems.size() < 10)
      problems.push_back(std::move(what));
  }
};

verdict check(const options& o, const ledger_report& r, const std::vector<int64_t>& acked,
              int64_t conflicts, bool finished) {
  verdict v;
  auto n = r.balances.size();
  if (n != static_cast<size_t>(o.accounts))
    v.fail("the ledger has " + std::to_string(n) + " accounts, not " + std::to_string(o.accounts));
  // 1. How often the journal applied each id: at most once, and it applied
  //    exactly the transfer that id stands for.
  std::vector<int64_t> times(static_cast<size_t>(o.transfers), 0);
  for (size_t i = 0; i < r.journal_id.size(); ++i) {
    auto id = r.journal_id[i];
    if (id < 0 || id >= o.transfers) {
      v.fail("the journal holds an unknown id " + std::to_string(id));
      continue;
    }
    if (++times[static_cast<size_t>(id)] > 1)
      v.fail("transfer " + std::to_string(id) + " was applied more than once");
    auto t = make_transfer(id, o.accounts);
    if (r.journal_from[i] != t.from || r.journal_to[i] != t.to || r.journal_amount[i] != t.amount)
      v.fail("transfer " + std::to_string(id) + " was applied with other accounts or amount");
  }
  std::vector<bool> rejected(static_cast<size_t>(o.transfers), false);
  for (auto id : r.rejected)
    if (id >= 0 && id < o.transfers)
      rejected[static_cast<size_t>(id)] = true;
  // 2. Every acknowledged transfer: applied exactly once, or rejected and
  //    never applied.
  for (int64_t id = 0; id < o.transfers; ++id) {
    auto k = static_cast<size_t>(id);
    if (acked[k] == acked_applied && times[k] != 1)
      v.fail("transfer " + std::to_string(id) + " was acknowledged but applied "
             + std::to_string(times[k]) + " times");
    else if (acked[k] == acked_rejected && (times[k] != 0 || !rejected[k]))
      v.fail("transfer " + std::to_string(id) + " was acknowledged as rejected but not so "
             + "in the ledger");
    else if (acked[k] == unknown && times[k] == 1)
      ++v.applied_unacknowledged;
    if (finished && acked[k] == unknown)
      v.fail("transfer " + std::to_string(id) + " was never acknowledged");
  }
  if (conflicts > 0)
    v.fail(std::to_string(conflicts) + " reports contradicted an earlier one");
  // 3. The balances are the opening balances plus the journal, none is
  //    negative, and the total is conserved.
  std::vector<int64_t> replay(n, r.opening_balance);
  for (size_t i = 0; i < r.journal_id.size(); ++i) {
    auto from = static_cast<size_t>(r.journal_from[i]);
    auto to = static_cast<size_t>(r.journal_to[i]);
    if (from >= n || to >= n)
      continue;
    replay[from] -= r.journal_amount[i];
    replay[to] += r.journal_amount[i];
  }
  if (replay != r.balances)
    v.fail("the balances differ from the journal replayed on the opening balances");
  for (size_t a = 0; a < n; ++a)
    if (r.balances[a] < 0)
      v.fail("account " + std::to_string(a) + " is overdrawn");
  for (auto b : r.balances)
    v.total += b;
  v.opening_total = r.opening_balance * static_cast<int64_t>(n);
  if (v.total != v.opening_total)
    v.fail("the total is " + std::to_string(v.total) + ", it opened at "
           + std::to_string(v.opening_total));
  return v;
}

// ---------------------------------------------------------------------------
// --role bank: the ledger (or a remote one), supervised workers, chaos
// ---------------------------------------------------------------------------

constexpr auto patience = std::chrono::seconds(30);

int run_bank(troupe::ipc::process_context& ctx, const options& o) {
  catch_signals();
  auto& sys = ctx.system();
  auto* group = &ctx.group();
  auto warn = [](const std::string& what, const caf::error& err) {
    std::cerr << "ledger: " << what << ": " << troupe::describe(err) << '\n';
  };
  // 1. The ledger in this process (or a remote one), published by name, and
  //    the tally the workers report to.
  caf::actor ledger;
  troupe::ipc::publication ledger_listing;
  if (o.connect.empty()) {
    ledger = sys.spawn(ledger_actor, o.accounts);
    ledger_listing = ctx.check(group->publish("ledger", ledger), "cannot publish the ledger");
  } else {
    ledger = ctx.check(find_ledger(*group, o, patience), "cannot reach the ledger at " + o.connect);
  }
  auto tally = sys.spawn(tally_actor, o.workers, o.transfers);
  auto tally_listing = ctx.check(group->publish("tally", tally), "cannot publish the tally");
  caf::scoped_actor self{sys};
  auto stop_actors = [&] {
    self->send_exit(tally, caf::exit_reason::user_shutdown);
    if (o.connect.empty())
      self->send_exit(ledger, caf::exit_reason::user_shutdown);
  };

  // 2. The worker processes, one_for_one and permanent; the restart
  //    intensity leaves room for the chaos rate (two kills per interval).
  std::vector<troupe::child_spec> children;
  for (int32_t k = 0; k < o.workers; ++k) {
    troupe::ipc::process_spec spec;
    spec.name = worker_name(k);
    spec.role = "worker";
    spec.args = {
      "--index",     std::to_string(k),           "--workers",  std::to_string(o.workers),
      "--transfers", std::to_string(o.transfers), "--accounts", std::to_string(o.accounts),
      "--window",    std::to_string(o.window)};
    if (!o.connect.empty()) {
      spec.args.emplace_back("--connect");
      spec.args.push_back(o.connect);
    }
    spec.published_as = worker_name(k);
    spec.restart = troupe::restart_policy::permanent;
    children.push_back(troupe::ipc::process_child(*group, spec));
  }
  troupe::supervisor_flags flags;
  flags.strategy = troupe::restart_strategy::one_for_one;
  flags.period = std::chrono::seconds(5);
  flags.max_restarts = 10;
  if (o.chaos_interval_ms > 0)
    flags.max_restarts +=
      static_cast<size_t>(2 * (5'000 + o.chaos_interval_ms - 1) / o.chaos_interval_ms);
  // A start that fails at once (say, the group has no free slot yet) is
  // retried after a pause, not in a loop that burns the intensity.
  flags.backoff =
    troupe::restart_backoff{std::chrono::milliseconds(10), std::chrono::milliseconds(250)};
  auto start = clock_type::now();
  auto sup = troupe::supervisor::make(sys, flags, children);
  if (!sup) {
    stop_actors();
    ctx.fail("cannot start the workers", sup.error());
  }
  std::cout << o.workers << " worker processes started, " << o.transfers << " transfers over "
            << o.accounts << " accounts";
  if (o.connect.empty())
    std::cout << ", ledger in this process (" << ::getpid() << ")";
  else
    std::cout << ", ledger at " << o.connect;
  if (o.chaos_interval_ms > 0)
    std::cout << ", chaos: SIGKILL to a random worker every " << o.chaos_interval_ms << " ms";
  std::cout << std::endl;

  // 3. Wait for the last answer, the deadline or Ctrl-C; meanwhile print
  //    progress and, with chaos, kill a random worker now and then.
  bool tty = ::isatty(STDOUT_FILENO) == 1;
  auto deadline =
    start
    + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(o.duration));
  auto tick = std::chrono::milliseconds(500);
  auto next_progress = clock_type::now() + tick;
  auto chaos_every = std::chrono::milliseconds(o.chaos_interval_ms);
  auto next_chaos = clock_type::now() + chaos_every;
  std::mt19937 rng{std::random_device{}()};
  std::set<int32_t> killed;
  int64_t progress_lines = 0;
  auto stats = [&] {
    std::tuple<int64_t, int64_t, int64_t, std::vector<int32_t>> res;
    self->request(tally, patience, stats_atom::value)
      .receive(
        [&](int64_t applied, int64_t rejected, int64_t restarts, std::vector<int32_t>& pids) {
          res = std::make_tuple(applied, rejected, restarts, std::move(pids));
        },
        [&](caf::error& err) { std::cerr << "tally: " << troupe::describe(err) << '\n'; });
    return res;
  };
  auto progress = [&](bool last) {
    auto [applied, rejected, restarts, pids] = stats();
    std::chrono::duration<double> took = clock_type::now() - start;
    std::ostringstream line;
    line << std::fixed << std::setprecision(1) << "[" << took.count() << " s] "
         << applied + rejected << "/" << o.transfers << " transfers done (" << rejected
         << " rejected), " << std::setprecision(0)
         << static_cast<double>(applied + rejected) / std::max(took.count(), 1e-3) << "/s, "
         << killed.size() << " killed, " << restarts << " restarts";
    if (tty)
      std::cout << '\r' << line.str() << "   " << (last ? "\n" : "") << std::flush;
    else if (last || progress_lines % 4 == 0)
      std::cout << line.str() << std::endl;
    ++progress_lines;
  };
  self->send(tally, done_atom::value, caf::actor{self});
  self->monitor(sup->handle());
  bool finished = false;
  caf::error gave_up; // why the supervisor ended, if it did
  while (!finished && !gave_up && !interrupted.load()) {
    auto now = clock_type::now();
    if (now >= deadline)
      break;
    if (o.chaos_interval_ms > 0 && now >= next_chaos) {
      next_chaos += chaos_every;
      auto pids = std::get<3>(stats());
      auto k = std::uniform_int_distribution<size_t>{0, pids.size() - 1}(rng);
      // Each process is killed once; a worker between processes is spared.
      if (auto pid = pids[k]; pid > 0 && killed.insert(pid).second)
        ::kill(pid, SIGKILL);
    }
    if (now >= next_progress) {
      next_progress += tick;
      progress(false);
    }
    auto wake = std::min({deadline, next_progress, o.chaos_interval_ms > 0 ? next_chaos : deadline,
                          clock_type::now() + std::chrono::milliseconds(100)});
    auto wait = std::max(wake - clock_type::now(), clock_type::duration::zero());
    self->receive(
      [&](done_atom) { finished = true; },
      [&](caf::down_msg& msg) { gave_up = msg.reason ? msg.reason : caf::exit_reason::unknown; },
      caf::after(wait) >> [] {});
  }
  progress(true);
  std::chrono::duration<double> took = clock_type::now() - start;
  if (gave_up)
    std::cout << "the supervisor gave up: " << troupe::describe(gave_up) << std::endl;
  else if (interrupted.load())
    std::cout << "interrupted: stopping" << std::endl;
  else if (!finished)
    std::cout << "stopped after --duration " << o.duration << " s" << std::endl;

  // 4. Stop the workers in order; then take what they reported, then the
  //    ledger's journal (everything acknowledged is in it by then).
  auto restarts = std::get<2>(stats());
  if (!gave_up) { // else its workers are gone already
    if (auto err = sup->stop(patience))
      std::cerr << "ledger: stopping the workers: " << troupe::describe(err) << '\n';
  }
  // Wait until every worker process has left the group, so that this node
  // leaves last and removes the segment.
  self->request(tally, patience, gone_atom::value)
    .receive([] {},
             [&](caf::error& err) {
               std::cerr << "ledger: waiting for the workers to leave: " << troupe::describe(err)
                         << '\n';
             });
  std::vector<int64_t> acked;
  int64_t conflicts = 0;
  bool have_tally = false;
  self->request(tally, patience, report_atom::value)
    .receive(
      [&](std::vector<int64_t>& xs, int64_t con) {
        acked = std::move(xs);
        conflicts = con;
        have_tally = true;
      },
      [&](caf::error& err) { std::cerr << "tally: " << troupe::describe(err) << '\n'; });
  std::optional<ledger_report> report;
  self->request(ledger, patience, report_atom::value)
    .receive([&](ledger_report& r) { report = std::move(r); },
             [&](caf::error& err) { warn("no report from the ledger", err); });
  if (!o.connect.empty())
    self->request(ledger, patience, stop_atom::value)
      .receive([] {}, [&](caf::error& err) { warn("cannot stop the ledger", err); });
  stop_actors();

  // 5. The summary and the check.
  int ret = 1;
  if (have_tally && report) {
    auto v = check(o, *report, acked, conflicts, finished);
    if (gave_up)
      v.fail("the supervisor gave up: " + troupe::describe(gave_up));
    int64_t applied = std::count(acked.begin(), acked.end(), int64_t{acked_applied});
    int64_t rejected = std::count(acked.begin(), acked.end(), int64_t{acked_rejected});
    std::cout << std::fixed << std::setprecision(1) << "summary:\n"
              << "  transfers acknowledged: " << applied + rejected << " of " << o.transfers
              << " in " << took.count() << " s (" << std::setprecision(0)
              << static_cast<double>(applied + rejected) / std::max(took.count(), 1e-3) << "/s)\n"
              << "  applied: " << applied << "\n"
              << "  rejected (would overdraw): " << rejected << "\n"
              << "  applied but not acknowledged when stopped: " << v.applied_unacknowledged << "\n"
              << "  resent and answered from the dedup table: " << report->duplicates << "\n"
              << "  workers killed: " << killed.size() << ", restarts: " << restarts << "\n"
              << "  total of all balances: " << v.total << " (opening total " << v.opening_total
              << ")\n";
    for (auto& p : v.problems)
      std::cout << "  problem: " << p << '\n';
    if (v.pass)
      std::cout << "check: PASS (every acknowledged transfer applied exactly once, total "
                   "conserved)"
                << std::endl;
    else
      std::cout << "check: FAIL" << std::endl;
    ret = v.pass ? 0 : 1;
  } else {
    std::cout << "check: FAIL (no report to check)" << std::endl;
  }

  // 6. Leave the group: the last node out removes its segment.
  auto group_name = group->group();
  group->leave();
  if (segment_exists(group_name)) {
    std::cout << "shared memory: /dev/shm/troupe." << group_name << " is still there" << std::endl;
    ret = 1;
  } else {
    std::cout << "shared memory: /dev/shm/troupe." << group_name << " removed" << std::endl;
  }
  return ret;
}

} // namespace

int main(int argc, char** argv) {
  auto parsed = parse_options(argc, argv);
  if (std::holds_alternative<bool>(parsed)) {
    std::cout << usage;
    return 0;
  }
  if (auto* bad = std::get_if<bad_option>(&parsed)) {
    std::cerr << "ledger: " << bad->what << "\ntry 'ledger --help'\n";
    return 2;
  }
  auto& o = std::get<options>(parsed);
  // A killed node's slot rests for `slot_grace` (1 s) before a new process
  // may take it: room for the workers and a second of chaos.
  troupe::ipc::group_options group;
  group.max_nodes = 64;
  return troupe::ipc::program{argc, argv}
    .configure(configure)
    .options(group)
    .role("worker", [&o](troupe::ipc::process_context& ctx) { return run_worker(ctx, o); })
    .run([&o](troupe::ipc::process_context& ctx) {
      return o.role == "ledger" ? run_ledger_server(ctx, o) : run_bank(ctx, o);
    });
}
