// The other process of the ipc tests. Roles:
//
//   troupe-ipc-child serve NAME [at-limit]
//                                    join the group named in the environment,
//                                    publish an echo actor as NAME and a
//                                    control actor as NAME.ctl; leave on
//                                    `leave_atom`. With `at-limit`, then open
//                                    files until none is left (ulimit -n);
//                                    with `leave-on-usr1`, leave on SIGUSR1
//                                    too (a node that cannot be messaged)
//   troupe-ipc-child create GROUP F  create GROUP, write its key to file F,
//                                    then wait to be killed
//   troupe-ipc-child host P          join, host managed containers P.dict,
//                                    P.list, P.value, P.array, P.queue and P.ns
//                                    (manager_test's types); leave when P.ctl
//                                    gets `leave_atom`
//   troupe-ipc-child mixed P N TAG C join; run N rounds of every operation of
//                                    the containers P.* as process TAG, owner
//                                    of array cell C (manager_workload.hpp);
//                                    exit
//   troupe-ipc-child add P N         join; add 1 to the shared value P.value N
//                                    times, one call each; exit
//   troupe-ipc-child contend P N     join; run N rounds of sync_workload.hpp on
//                                    the primitives P.*; exit
//   troupe-ipc-child lease P         join; lease an item of P.queue, send it
//                                    to P.report, never ack, wait to be killed
//   troupe-ipc-child shm-add NAME N  join the group named in the environment;
//                                    N times: add 1 to shared_value<int64_t>
//                                    NAME and to cell 0 of shared_array<int64_t>
//                                    NAME-a (lock-free), and add 1 under the
//                                    lock to shared_value<double> NAME-l
//   troupe-ipc-child shm-hold NAME   join; take the lock of
//                                    shared_value<double> NAME, set it to -1
//                                    and stop itself (SIGSTOP) holding it
//   troupe-ipc-child shm-create NAME join; create shared_value<int64_t> NAME
//                                    holding 5 and stop itself (SIGSTOP)
//   troupe-ipc-child sync STEP...    join; run each STEP (`OP:NAME`) on the sync
//                                    primitive published as NAME: lock
//                                    (acquire, not told of a dead holder),
//                                    lockdied (acquire, told), unlock, set,
//                                    wait (event), bwait (barrier), bbroken
//                                    (barrier wait that fails as broken),
//                                    cwait (condition wait, notified); `stop`
//                                    stops itself (SIGSTOP). Exits 10 + i if
//                                    step i fails
//   troupe-ipc-child small-shm       (run on a tmpfs of 6 MiB: small_shm_test.sh)
//                                    create a group with 2 MiB rings, start two
//                                    `serve` children; ask the first (its pair
//                                    of rings takes 4 MiB), then the second,
//                                    which must fail with no_shared_memory
//                                    naming /dev/shm, then the first again
//   troupe-ipc-child intrude GROUP KEY SEGMENT...
//                                    (run as another user) try to join GROUP
//                                    with its KEY, and to open each SEGMENT
//                                    (a name under /dev/shm) for writing and
//                                    for reading and to remove it; print one
//                                    line per try: "refused: why" or "DONE"
//   troupe-ipc-child at-process-limit GROUP
//                                    (run as another user) create GROUP and
//                                    start processes at the user's process
//                                    limit; print how each start went
//
// Exit status: 0 after a clean leave, 3 when joining or creating failed.

#include "manager_workload.hpp"
#include "messages.hpp"
#include "sync_workload.hpp"
#include "troupe/ipc/error.hpp"
#include "troupe/ipc/managed_array.hpp"
#include "troupe/ipc/managed_dict.hpp"
#include "troupe/ipc/managed_list.hpp"
#include "troupe/ipc/managed_namespace.hpp"
#include "troupe/ipc/managed_queue.hpp"
#include "troupe/ipc/managed_types.hpp"
#include "troupe/ipc/managed_value.hpp"
#include "troupe/ipc/node.hpp"
#include "troupe/ipc/process.hpp"
#include "troupe/ipc/process_supervision.hpp"
#include "troupe/ipc/shared_memory.hpp"
#include "troupe/ipc/sync.hpp"
#include "troupe/ipc/testing/node_hooks.hpp"
#include "troupe/supervisor.hpp"

#include <caf/all.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace troupe::test::ipc;
namespace tipc = troupe::ipc;

namespace {

caf::behavior echo(caf::event_based_actor* self, tipc::node* n) {
  auto held = std::make_shared<std::vector<caf::response_promise>>();
  auto ints = std::make_shared<int64_t>(0);
  return {
    [ints](const std::string& s) {
      ++*ints;
      return s;
    },
    [ints](int32_t x) {
      ++*ints;
      return x;
    },
    [ints](count_atom) { return *ints; },
    [](pid_atom) { return static_cast<int32_t>(::getpid()); },
    [](const point& p) {
      return point{p.y, p.x};
    },
    [n](stats_atom) {
      auto s = n->stats();
      return std::vector<uint64_t>{s.frames_sent, s.frames_received, s.frames_rejected,
                                   s.peers_polled};
    },
    [self, n](ask_atom, const std::string& target, int32_t x) {
      // Asks the echo actor published as `target` for `x` (for `hold` when
      // `x` is negative), from this node: the answer, or how it failed.
      auto rp = self->make_response_promise();
      auto t = n->lookup(target, std::chrono::seconds(1));
      if (!t) {
        rp.deliver(std::move(t.error()));
        return rp;
      }
      auto answer = [rp](int32_t y) mutable { rp.deliver(y); };
      auto failure = [rp](caf::error& err) mutable { rp.deliver(std::move(err)); };
      if (x < 0)
        self->request(*t, caf::infinite, hold_atom::value).then(answer, failure);
      else
        self->request(*t, caf::infinite, x).then(answer, failure);
      return rp;
    },
    [n](flood_atom, const std::string& target, int32_t count) -> caf::result<caf::atom_value> {
      // A short wait: the target may have been killed on purpose.
      auto t = n->lookup(target, std::chrono::seconds(1));
      if (!t)
        return std::move(t.error());
      // Anonymous, so that an echoing target does not answer back.
      for (int32_t i = 0; i < count; ++i)
        caf::anon_send(*t, i);
      return caf::atom("done");
    },
    [](blob_atom, uint64_t size) { return std::string(size, 'x'); },
    [self](die_atom) { self->quit(caf::exit_reason::user_shutdown); },
    [self, n](stall_atom, const std::string& target) {
      auto t = n->lookup(target, std::chrono::seconds(10));
      if (!t)
        return;
      tipc::testing::stall_next_frame(*n);
      self->send(*t, int32_t{42}); // stops this process half-way through
    },
    [self, held](hold_atom) {
      // A request this actor never answers (until it dies).
      held->push_back(self->make_response_promise());
      return held->back();
    },
    [self](linkto_atom, const caf::actor& other) {
      self->link_to(other);
      return caf::atom("linked");
    },
  };
}

/// Opens /dev/null until no descriptor is left (the soft limit lowered to
/// 256 first, so that this takes a moment): a process at its `ulimit -n`.
std::vector<int> use_up_descriptors() {
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = std::min<rlim_t>(lim.rlim_cur, 256);
  ::setrlimit(RLIMIT_NOFILE, &lim);
  std::vector<int> fds;
  for (int fd; (fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;)
    fds.push_back(fd);
  return fds;
}

/// Sends `leave_atom` to an actor when this process gets SIGUSR1 (blocked
/// in every thread, so that one thread of its own takes it with sigwait).
class leave_on_usr1 {
public:
  leave_on_usr1() {
    pthread_sigmask(SIG_BLOCK, &usr1(), nullptr);
  }
  void start(caf::actor to) {
    waiter_ = std::thread{[this, to] {
      int sig = 0;
      sigwait(&usr1(), &sig);
      if (!stopping_)
        caf::anon_send(to, leave_atom::value);
    }};
  }
  /// Ends the waiting thread, while the actor system still runs.
  void stop() {
    if (!waiter_.joinable())
      return;
    stopping_ = true;
    ::kill(::getpid(), SIGUSR1); // taken by the waiter if no signal came
    waiter_.join();
  }

private:
  static const sigset_t& usr1() {
    static const sigset_t set = [] {
      sigset_t x;
      sigemptyset(&x);
      sigaddset(&x, SIGUSR1);
      return x;
    }();
    return set;
  }
  std::thread waiter_;
  std::atomic<bool> stopping_{false};
};

int serve(const std::string& name, bool at_limit, bool on_usr1) {
  std::optional<leave_on_usr1> usr1; // before the actor system's threads
  if (on_usr1)
    usr1.emplace();
  config cfg;
  caf::actor_system sys{cfg};
  auto n = tipc::node::join_from_env(sys);
  if (!n) {
    std::cerr << "ipc_child: cannot join: " << troupe::describe(n.error()) << '\n';
    return 3;
  }
  auto e = sys.spawn(echo, &*n);
  caf::scoped_actor self{sys};
  auto echo_name = n->publish(name, e);
  auto ctl_name = n->publish(name + ".ctl", caf::actor{self});
  if (!echo_name || !ctl_name) {
    auto err = echo_name ? ctl_name.error() : echo_name.error();
    std::cerr << "ipc_child: " << troupe::describe(err) << '\n';
    return 3;
  }
  auto used_up = at_limit ? use_up_descriptors() : std::vector<int>{};
  if (usr1)
    usr1->start(caf::actor{self});
  // Leave when told to, or when the echo actor is gone (as a supervised
  // process does).
  self->monitor(e);
  bool done = false;
  self->receive_while([&] { return !done; })(
    [&](leave_atom) { done = true; }, [&](caf::down_msg&) { done = true; },
    [&](count_atom) { return static_cast<int64_t>(used_up.size()); });
  if (usr1)
    usr1->stop();
  self->send_exit(e, caf::exit_reason::user_shutdown);
  n->leave();
  for (auto fd : used_up)
    ::close(fd);
  return 0;
}

int create(const std::string& group, const std::string& key_file) {
  config cfg;
  caf::actor_system sys{cfg};
  auto n = tipc::node::create(sys, group);
  if (!n) {
    std::cerr << "ipc_child: cannot create: " << troupe::describe(n.error()) << '\n';
    return 3;
  }
  {
    std::ofstream out{key_file + ".tmp"};
    out << n->key() << '\n';
  }
  std::rename((key_file + ".tmp").c_str(), key_file.c_str());
  caf::scoped_actor self{sys};
  self->receive([](leave_atom) {});
  return 0;
}

/// Starts processes as a user at its process limit (the soft `ulimit -u`
/// lowered to 1, which every user running anything is at): directly, by a
/// node, and by a supervisor restarting a killed process child. Says how
/// each went, one line each, and whether the group still works. Run as
/// another user than root, whom the limit does not stop.
int at_process_limit(const std::string& group) {
  config cfg;
  caf::actor_system sys{cfg};
  tipc::group_options opts;
  opts.quiet = true;
  auto n = tipc::node::create(sys, group, opts);
  if (!n) {
    std::cout << "cannot create: " << troupe::describe(n.error()) << std::endl;
    return 3;
  }
  auto exe = std::filesystem::read_symlink("/proc/self/exe").string();
  tipc::process_spec spec;
  spec.name = "w";
  spec.program = exe;
  spec.args = {"serve", "w"};
  troupe::supervisor_flags flags;
  flags.max_restarts = 2;
  auto sup = troupe::supervisor::make(sys, flags, {tipc::process_child(*n, spec)});
  if (!sup) {
    std::cout << "cannot supervise: " << troupe::describe(sup.error()) << std::endl;
    return 3;
  }
  caf::scoped_actor self{sys};
  int32_t pid = 0;
  self->request(*sup->child("w"), std::chrono::seconds(30), pid_atom::value)
    .receive([&](int32_t x) { pid = x; }, [](caf::error&) {});
  if (pid == 0) {
    std::cout << "the supervised process did not answer" << std::endl;
    return 3;
  }
  rlimit lim{};
  ::getrlimit(RLIMIT_NPROC, &lim);
  auto soft = lim.rlim_cur;
  lim.rlim_cur = 1;
  ::setrlimit(RLIMIT_NPROC, &lim);
  auto outcome = [](auto&& x) { return x ? std::string{"DONE"} : troupe::describe(x.error()); };
  std::cout << "spawn_process: " << outcome(tipc::spawn_process("/bin/true")) << std::endl;
  std::cout << "node spawn: " << outcome(n->spawn(exe, {"serve", "x"})) << std::endl;
  self->monitor(sup->handle());
  ::kill(pid, SIGKILL);
  self->receive(
    [](caf::down_msg& dm) {
      std::cout << "supervisor: " << troupe::describe(dm.reason) << std::endl;
    },
    caf::after(std::chrono::seconds(30)) >>
      [] { std::cout << "supervisor: runs on" << std::endl; });
  // The node goes on: it publishes and finds a name.
  auto published = n->publish("still", caf::actor{self});
  auto found = n->lookup("still", std::chrono::seconds(5));
  std::cout << "group: " << (published && found && *found == caf::actor{self} ? "works" : "broken")
            << std::endl;
  // The soft limit back up: LeakSanitizer's check at exit starts a thread.
  lim.rlim_cur = soft;
  ::setrlimit(RLIMIT_NPROC, &lim);
  n->leave();
  return 0;
}

/// Tries, as another user, what a group's owner alone may do.
int intrude(const std::string& group, const std::string& key,
            const std::vector<std::string>& segments) {
  config cfg;
  caf::actor_system sys{cfg};
  auto joined = tipc::node::join(sys, group, key);
  std::cout << "join " << group << ": "
            << (joined ? std::string{"DONE"} : "refused: " + troupe::describe(joined.error()))
            << std::endl;
  auto outcome = [](int rc) {
    return rc >= 0 ? std::string{"DONE"} : std::string{"refused: "} + std::strerror(errno);
  };
  for (auto& name : segments) {
    auto path = "/" + name;
    for (auto [what, flags] : {std::pair{"write", O_RDWR}, std::pair{"read", O_RDONLY}}) {
      auto fd = ::shm_open(path.c_str(), flags, 0);
      std::cout << "open for " << what << ' ' << name << ": " << outcome(fd) << std::endl;
      if (fd >= 0)
        ::close(fd);
    }
    std::cout << "remove " << name << ": " << outcome(::shm_unlink(path.c_str())) << std::endl;
  }
  return 0;
}

/// Runs `fn(node&)` as a member of the group named in the environment.
template <class F>
int in_group(F fn) {
  config cfg;
  caf::actor_system sys{cfg};
  auto n = tipc::node::join_from_env(sys);
  if (!n) {
    std::cerr << "ipc_child: cannot join: " << troupe::describe(n.error()) << '\n';
    return 3;
  }
  return fn(*n);
}

int fail(const caf::error& err) {
  std::cerr << "ipc_child: " << troupe::describe(err) << '\n';
  return 3;
}

int shm_add(const std::string& name, int64_t count) {
  return in_group([&](tipc::node& n) {
    auto value = tipc::shared_value<int64_t>::open(n, name);
    if (!value)
      return fail(value.error());
    auto array = tipc::shared_array<int64_t>::open(n, name + "-a");
    if (!array)
      return fail(array.error());
    auto locked = tipc::shared_value<double>::open(n, name + "-l");
    if (!locked)
      return fail(locked.error());
    for (int64_t i = 0; i < count; ++i) {
      value->add(1);
      if (auto res = array->add(0, 1); !res)
        return fail(res.error());
      if (auto res = locked->with_lock([](double& x) { x += 1; }); !res)
        return fail(res.error());
    }
    return 0;
  });
}

int shm_hold(const std::string& name) {
  return in_group([&](tipc::node& n) {
    auto value = tipc::shared_value<double>::open(n, name);
    if (!value)
      return fail(value.error());
    auto res = value->with_lock([](double& x) {
      x = -1;
      ::raise(SIGSTOP); // the test kills us here, holding the lock
    });
    return res ? 0 : fail(res.error());
  });
}

int shm_create(const std::string& name) {
  return in_group([&](tipc::node& n) {
    auto value = tipc::shared_value<int64_t>::create(n, name, 5);
    if (!value)
      return fail(value.error());
    ::raise(SIGSTOP); // the test kills us here, so the name is left over
    return 0;
  });
}

constexpr auto patience = std::chrono::seconds(10);

int host(const std::string& prefix) {
  manager_config cfg;
  caf::actor_system sys{cfg};
  auto n = tipc::node::join_from_env(sys);
  if (!n) {
    std::cerr << "ipc_child: cannot join: " << troupe::describe(n.error()) << '\n';
    return 3;
  }
  caf::scoped_actor self{sys};
  std::vector<std::pair<std::string, caf::actor>> owners{
    {prefix + ".dict", sdict::make(sys).handle()},
    {prefix + ".list", slist::make(sys).handle()},
    {prefix + ".value", svalue::make(sys).handle()},
    {prefix + ".array", sarray::make(sys, 3).handle()},
    {prefix + ".queue", squeue::make(sys).handle()},
    {prefix + ".ns", tipc::managed_namespace::make(sys).handle()},
    {prefix + ".ctl", caf::actor{self}},
  };
  std::vector<tipc::publication> published;
  for (auto& [name, owner] : owners) {
    auto p = n->publish(name, owner);
    if (!p) {
      std::cerr << "ipc_child: " << troupe::describe(p.error()) << '\n';
      return 3;
    }
    published.push_back(std::move(*p));
  }
  self->receive([](leave_atom) {});
  n->leave(); // ends the published owners
  return 0;
}

int mixed(const std::string& prefix, int32_t rounds, const std::string& tag, int64_t cell) {
  manager_config cfg;
  caf::actor_system sys{cfg};
  auto n = tipc::node::join_from_env(sys);
  if (!n) {
    std::cerr << "ipc_child: cannot join: " << troupe::describe(n.error()) << '\n';
    return 3;
  }
  std::vector<caf::actor> owners;
  for (auto what : {".dict", ".list", ".value", ".array", ".queue", ".ns"}) {
    auto owner = n->lookup(prefix + what, patience);
    if (!owner) {
      std::cerr << "ipc_child: " << troupe::describe(owner.error()) << '\n';
      return 3;
    }
    owners.push_back(std::move(*owner));
  }
  mixed_containers c{sdict{owners[0]},  slist{owners[1]},  svalue{owners[2]},
                     sarray{owners[3]}, squeue{owners[4]}, tipc::managed_namespace{owners[5]}};
  if (auto err = run_mixed(c, rounds, tag, cell)) {
    std::cerr << "ipc_child: " << troupe::describe(err) << '\n';
    return 1;
  }
  n->leave();
  return 0;
}

int add(const std::string& prefix, int32_t times) {
  manager_config cfg;
  caf::actor_system sys{cfg};
  auto n = tipc::node::join_from_env(sys);
  if (!n)
    return fail(n.error());
  auto owner = n->lookup(prefix + ".value", patience);
  if (!owner)
    return fail(owner.error());
  auto value = svalue{*owner};
  for (int32_t i = 0; i < times; ++i)
    if (auto sum = value.add(1); !sum)
      return fail(sum.error());
  n->leave();
  return 0;
}

/// Reads `PREFIX.list` whole `times` times: each snapshot must hold 0 to
/// `size` - 1 (a large answer, written by the owner's node).
int snapshot(const std::string& prefix, int32_t size, int32_t times) {
  manager_config cfg;
  caf::actor_system sys{cfg};
  auto n = tipc::node::join_from_env(sys);
  if (!n)
    return fail(n.error());
  auto owner = n->lookup(prefix + ".list", patience);
  if (!owner)
    return fail(owner.error());
  auto list = slist{*owner};
  for (int32_t round = 0; round < times; ++round) {
    auto items = list.snapshot();
    if (!items)
      return fail(items.error());
    if (items->size() != static_cast<size_t>(size)) {
      std::cerr << "ipc_child: a snapshot of " << items->size() << " items, not " << size << '\n';
      return 4;
    }
    for (int32_t i = 0; i < size; ++i)
      if ((*items)[static_cast<size_t>(i)] != i) {
        std::cerr << "ipc_child: item " << i << " of a snapshot is wrong\n";
        return 4;
      }
  }
  n->leave();
  return 0;
}

int small_shm() {
  config cfg;
  caf::actor_system sys{cfg};
  tipc::group_options opts;
  opts.max_nodes = 4;
  opts.ring_bytes = uint64_t{2} << 20;
  opts.quiet = true;
  auto n = tipc::node::create(sys, "small-shm-" + std::to_string(::getpid()), opts);
  if (!n)
    return fail(n.error());
  caf::scoped_actor self{sys};
  auto ask = [&](const caf::actor& dest) {
    caf::error res;
    self->request(dest, patience, int32_t{7})
      .receive([](int32_t) {}, [&](caf::error& err) { res = std::move(err); });
    return res;
  };
  std::vector<tipc::child_process> children;
  std::vector<caf::actor> servers;
  for (auto name : {"a", "b"}) {
    auto child = n->spawn_self({"serve", name});
    if (!child)
      return fail(child.error());
    children.push_back(std::move(*child));
    auto x = n->lookup(name, patience);
    if (!x)
      return fail(x.error());
    servers.push_back(std::move(*x));
  }
  int rc = 0;
  auto expect = [&](bool ok, const std::string& what) {
    std::cout << (ok ? "ok: " : "FAIL: ") << what << std::endl;
    if (!ok)
      rc = 4;
  };
  auto first = ask(servers[0]);
  expect(!first, "the first pair of rings is reserved: " + troupe::describe(first));
  auto second = ask(servers[1]);
  auto text = troupe::describe(second);
  expect(troupe::is(second, troupe::ipc::errc::no_shared_memory)
           && text.find("/dev/shm") != std::string::npos
           && text.find("needed") != std::string::npos,
         "the second fails: " + text);
  auto again = ask(servers[0]);
  expect(!again, "the group goes on: " + troupe::describe(again));
  for (size_t i = 0; i < children.size(); ++i) {
    auto ctl = n->lookup(i == 0 ? "a.ctl" : "b.ctl", patience);
    if (ctl)
      self->send(*ctl, leave_atom::value);
    // The second child cannot be told (no room for its rings): it goes.
    if (!children[i].wait(std::chrono::seconds(2)))
      children[i].kill(SIGKILL);
    children[i].wait();
  }
  n->leave();
  return rc;
}

int contend(const std::string& prefix, int32_t rounds) {
  manager_config cfg;
  caf::actor_system sys{cfg};
  auto n = tipc::node::join_from_env(sys);
  if (!n)
    return fail(n.error());
  std::vector<caf::actor> found;
  for (auto what : {".lock", ".rlock", ".bsem", ".cond", ".barrier", ".event", ".counters"}) {
    auto x = n->lookup(prefix + what, patience);
    if (!x)
      return fail(x.error());
    found.push_back(std::move(*x));
  }
  contended_primitives c{
    tipc::lock{found[0]},      tipc::rlock{found[1]},   tipc::bounded_semaphore{found[2]},
    tipc::condition{found[3]}, tipc::barrier{found[4]}, tipc::event{found[5]},
    sarray{found[6]}};
  caf::error err;
  {
    caf::scoped_actor self{sys};
    err = run_contended(c, self, rounds, true);
  }
  if (err)
    return fail(err);
  n->leave();
  return 0;
}

int lease(const std::string& prefix) {
  manager_config cfg;
  caf::actor_system sys{cfg};
  auto n = tipc::node::join_from_env(sys);
  if (!n) {
    std::cerr << "ipc_child: cannot join: " << troupe::describe(n.error()) << '\n';
    return 3;
  }
  auto q = n->lookup(prefix + ".queue", patience);
  auto report = n->lookup(prefix + ".report", patience);
  if (!q || !report) {
    std::cerr << "ipc_child: the queue is not published\n";
    return 3;
  }
  auto queue = squeue{*q};
  auto item = queue.get_leased(patience);
  if (!item) {
    std::cerr << "ipc_child: " << troupe::describe(item.error()) << '\n';
    return 1;
  }
  caf::scoped_actor self{sys};
  self->send(*report, item->value);
  self->receive([](leave_atom) {}); // never acks: the parent kills us
  return 0;
}

/// Runs the sync steps (see the role list at the top).
int sync_steps(const std::vector<std::string>& steps) {
  config cfg;
  caf::actor_system sys{cfg};
  auto n = tipc::node::join_from_env(sys);
  if (!n)
    return fail(n.error());
  caf::scoped_actor self{sys};
  for (size_t i = 0; i < steps.size(); ++i) {
    auto step = steps[i];
    auto colon = step.find(':');
    auto op = step.substr(0, colon);
    auto code = static_cast<int>(10 + i);
    if (op == "stop") {
      ::raise(SIGSTOP);
      continue;
    }
    auto found = n->lookup(step.substr(colon + 1), std::chrono::seconds(10));
    if (!found) {
      fail(found.error());
      return code;
    }
    caf::error err;
    if (op == "lock" || op == "lockdied") {
      auto res = tipc::permits{*found}.acquire(self, std::chrono::seconds(10));
      if (!res)
        err = res.error();
      else if (res->previous_holder_died != (op == "lockdied"))
        err = troupe::make_error(troupe::errc::invalid_argument, "wrong previous_holder_died");
    } else if (op == "unlock") {
      err = tipc::permits{*found}.release(self);
    } else if (op == "set") {
      err = tipc::event{*found}.set();
    } else if (op == "wait") {
      err = tipc::event{*found}.wait(std::chrono::seconds(10));
    } else if (op == "bwait") {
      auto res = tipc::barrier{*found}.wait(self, std::chrono::seconds(10));
      if (!res)
        err = res.error();
    } else if (op == "bbroken") {
      auto res = tipc::barrier{*found}.wait(self, std::chrono::seconds(10));
      if (res || !troupe::is(res.error(), troupe::ipc::errc::broken_barrier))
        err = troupe::make_error(troupe::errc::invalid_argument, "the barrier is not broken");
    } else if (op == "cwait") {
      auto res = tipc::condition{*found}.wait(self, std::chrono::seconds(10));
      if (!res)
        err = res.error();
      else if (!res->notified)
        err = troupe::make_error(troupe::errc::timeout, "not notified");
    } else {
      err = troupe::make_error(troupe::errc::invalid_argument, "unknown step " + step);
    }
    if (err) {
      fail(err);
      return code;
    }
  }
  n->leave();
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  std::string role = argc > 1 ? argv[1] : "";
  if (role == "serve" && argc == 3)
    return serve(argv[2], false, false);
  if (role == "serve" && argc == 4 && std::string{argv[3]} == "at-limit")
    return serve(argv[2], true, false);
  if (role == "serve" && argc == 4 && std::string{argv[3]} == "leave-on-usr1")
    return serve(argv[2], false, true);
  if (role == "create" && argc == 4)
    return create(argv[2], argv[3]);
  if (role == "shm-add" && argc == 4)
    return shm_add(argv[2], std::stoll(argv[3]));
  if (role == "shm-hold" && argc == 3)
    return shm_hold(argv[2]);
  if (role == "shm-create" && argc == 3)
    return shm_create(argv[2]);
  if (role == "sync" && argc >= 3)
    return sync_steps(std::vector<std::string>(argv + 2, argv + argc));
  if (role == "host" && argc == 3)
    return host(argv[2]);
  if (role == "add" && argc == 4)
    return add(argv[2], std::stoi(argv[3]));
  if (role == "small-shm" && argc == 2)
    return small_shm();
  if (role == "snapshot" && argc == 5)
    return snapshot(argv[2], std::stoi(argv[3]), std::stoi(argv[4]));
  if (role == "contend" && argc == 4)
    return contend(argv[2], std::stoi(argv[3]));
  if (role == "mixed" && argc == 6)
    return mixed(argv[2], std::stoi(argv[3]), argv[4], std::stoi(argv[5]));
  if (role == "lease" && argc == 3)
    return lease(argv[2]);
  if (role == "at-process-limit" && argc == 3)
    return at_process_limit(argv[2]);
  if (role == "intrude" && argc >= 4)
    return intrude(argv[2], argv[3], std::vector<std::string>(argv + 4, argv + argc));
  std::cerr << "usage: troupe-ipc-child serve NAME | create GROUP KEYFILE | shm-add NAME N"
               " | shm-hold NAME | shm-create NAME\n"
               "       | host PREFIX | mixed PREFIX N TAG CELL | add PREFIX N | contend PREFIX N\n"
               "       | lease PREFIX | snapshot PREFIX SIZE TIMES | small-shm\n"
               "       | intrude GROUP KEY SEGMENT... | at-process-limit GROUP\n";
  return 2;
}
