#include "troupe/ipc/host_pool.hpp"

#include "roles.hpp"
#include "troupe/ipc/process_supervision.hpp"

#include <caf/all.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <numeric>
#include <stdexcept>

namespace troupe::ipc {

namespace detail {

namespace {

using host_pid_atom = caf::atom_constant<caf::atom("host_pid")>;

} // namespace

caf::actor spawn_pool_host(caf::actor_system& sys) {
  return sys.spawn([](caf::event_based_actor*) -> caf::behavior {
    return {[](host_pid_atom) { return static_cast<int32_t>(::getpid()); }};
  });
}

/// What a pool's placed actors share: the hosts, by the names they publish,
/// and how many live actors each one has.
struct placement_state {
  node* group = nullptr;
  placement place = placement::round_robin;
  caf::timespan timeout{};
  std::vector<std::string> hosts;
  /// Set when the hosts' supervisor ended: nothing is placed any more.
  std::atomic<bool> closed{false};
  std::mutex mtx;
  size_t next = 0;
  /// The actors placed, by host (`least_loaded` counts the live ones).
  std::vector<std::pair<std::string, caf::actor>> placed;

  /// The pid of host `name` if it runs, waiting up to `wait` for it; 0 if not.
  pid_t pid_of(const std::string& name, caf::timespan wait) {
    auto host = group->lookup(name, wait);
    if (!host)
      return 0;
    caf::scoped_actor self{group->system()};
    pid_t pid = 0;
    self->request(*host, timeout, host_pid_atom::value)
      .receive([&](int32_t x) { pid = x; }, [](caf::error&) {});
    return pid;
  }

  /// How many placed actors live on each host, forgetting those that
  /// ended. Asked at each placement rather than counted down when an actor
  /// ends: a count-down attached to the actor runs after its supervisor's
  /// monitor, so a placement right after `stop()` could still count it. A
  /// monitor attached to an actor that has ended fires at once. Called with
  /// `mtx` held.
  std::map<std::string, size_t> live_load() {
    caf::scoped_actor self{group->system()};
    for (auto& entry : placed)
      self->monitor(entry.second);
    std::vector<caf::actor_addr> ended;
    for (bool more = true; more;)
      self->receive([&](caf::down_msg& dm) { ended.push_back(dm.source); },
                    caf::after(std::chrono::seconds(0)) >> [&] { more = false; });
    std::map<std::string, size_t> load;
    std::vector<std::pair<std::string, caf::actor>> live;
    for (auto& entry : placed) {
      if (std::find(ended.begin(), ended.end(), entry.second.address()) != ended.end())
        continue;
      self->demonitor(entry.second);
      ++load[entry.first];
      live.push_back(std::move(entry));
    }
    placed.swap(live);
    return load;
  }

  /// The hosts in the order the next placement tries them.
  std::vector<std::string> order() {
    std::lock_guard<std::mutex> guard{mtx};
    std::vector<size_t> idx(hosts.size());
    std::iota(idx.begin(), idx.end(), size_t{0});
    if (place == placement::round_robin) {
      std::rotate(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(next % hosts.size()),
                  idx.end());
      ++next;
    } else {
      auto load = live_load();
      std::stable_sort(idx.begin(), idx.end(),
                       [&](size_t a, size_t b) { return load[hosts[a]] < load[hosts[b]]; });
    }
    std::vector<std::string> res;
    for (auto i : idx)
      res.push_back(hosts[i]);
    return res;
  }

  /// An actor of `type` on host `name` (pid `pid`), counted in its load
  /// while it lives; or the error.
  caf::expected<caf::actor> place_on(const std::string& name, pid_t pid, const std::string& type,
                                     const caf::message& args) {
    auto spawned = group->spawn_in(pid, type, args);
    if (!spawned)
      return spawned;
    if (place == placement::least_loaded) {
      std::lock_guard<std::mutex> guard{mtx};
      placed.emplace_back(name, *spawned);
    }
    return spawned;
  }

  /// Places an actor; throws (a failed start, for its supervisor) if no
  /// host can take it now.
  caf::actor place_actor(const std::string& type, const caf::message& args) {
    if (closed.load())
      throw std::runtime_error("the host pool has stopped");
    auto candidates = order();
    // A live host first, in placement order; a host that died meanwhile is
    // passed over.
    for (auto& name : candidates) {
      auto pid = pid_of(name, caf::timespan{0});
      if (pid == 0)
        continue;
      auto res = place_on(name, pid, type, args);
      if (res)
        return *res;
      if (!troupe::is(res.error(), troupe::errc::peer_lost))
        throw std::runtime_error(describe(res.error()));
    }
    // None runs now (all restarting, or the pool stopping): a failed start,
    // which the supervisor retries after its backoff. Waiting here would
    // hold a scheduler thread that the hosts' own restart may need.
    throw std::runtime_error("no host process of the pool runs to take '" + type + "'");
  }
};

} // namespace detail

caf::expected<host_pool> host_pool::make(node& group, host_pool_options opts) {
  if (opts.hosts < 1 || opts.hosts > 64)
    return make_error(troupe::errc::invalid_argument, "a host pool has 1 to 64 processes");
  static std::atomic<uint64_t> pools{0};
  auto state = std::make_shared<detail::placement_state>();
  state->group = &group;
  state->place = opts.place;
  state->timeout = opts.start_timeout;
  auto prefix = "troupe.host." + std::to_string(::getpid()) + "." + std::to_string(++pools) + ".";
  std::vector<child_spec> children;
  for (size_t k = 0; k < opts.hosts; ++k) {
    process_spec spec;
    spec.name = prefix + std::to_string(k);
    spec.role = detail::pool_host_role;
    spec.start_timeout = opts.start_timeout;
    state->hosts.push_back(spec.name);
    children.push_back(process_child(group, std::move(spec)));
  }
  auto sup = supervisor::make(group.system(), opts.flags, std::move(children));
  if (!sup)
    return std::move(sup.error());
  std::weak_ptr<detail::placement_state> weak = state;
  sup->handle()->attach_functor([weak] {
    if (auto st = weak.lock())
      st->closed = true;
  });
  auto res = host_pool{sup->handle(), state};
  res.flags_ = std::move(opts.flags);
  return res;
}

caf::expected<isolated_actor> host_pool::spawn_message(std::string type, caf::message args) {
  if (!state_)
    return make_error(troupe::errc::invalid_argument, "spawn on an empty host_pool handle");
  auto& sys = state_->group->system();
  if (auto err = detail::check_actor_type(sys, type))
    return err;
  static std::atomic<uint64_t> instances{0};
  child_spec child;
  child.name = type + "." + std::to_string(::getpid()) + "." + std::to_string(++instances);
  child.start = [state = state_, type, args](caf::actor_system&) {
    return state->place_actor(type, args);
  };
  return isolated_actor::supervise(sys, flags_, std::move(child));
}

std::vector<pid_t> host_pool::pids() const {
  std::vector<pid_t> res;
  if (!state_)
    return res;
  for (auto& name : state_->hosts)
    if (auto pid = state_->pid_of(name, caf::timespan{0}); pid != 0)
      res.push_back(pid);
  return res;
}

} // namespace troupe::ipc
