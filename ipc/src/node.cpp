#include "troupe/ipc/node.hpp"

#include "core.hpp"
#include "fork_server.hpp"
#include "groups.hpp"
#include "roles.hpp"
#include "segment.hpp"
#include "troupe/configure.hpp"
#include "troupe/detail/relay.hpp"
#include "troupe/ipc/configure.hpp"
#include "troupe/ipc/detail/shared_call.hpp"
#include "troupe/ipc/error.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace troupe::ipc {

namespace {

constexpr const char* group_env = "TROUPE_GROUP";
constexpr const char* key_env = "TROUPE_GROUP_KEY";
constexpr const char* key_fd_env = "TROUPE_GROUP_KEY_FD";
constexpr const char* parent_env = "TROUPE_PARENT";

/// Adds `name=value` to `env` unless the caller set `name` there.
void set_default(std::vector<std::string>& env, const std::string& name, const std::string& value) {
  auto prefix = name + "=";
  for (auto& e : env)
    if (e.compare(0, prefix.size(), prefix) == 0)
      return;
  env.push_back(prefix + value);
}

/// The value of the first `name=value` entry in `env`, or nothing.
std::string value_in(const std::vector<std::string>& env, const std::string& name) {
  auto prefix = name + "=";
  for (auto& e : env)
    if (e.compare(0, prefix.size(), prefix) == 0)
      return e.substr(prefix.size());
  return {};
}

/// What a child of the node behind `c` gets in its environment besides
/// `env`: the group to join, its parent (the key goes another way).
std::vector<std::string> child_environment(const detail::core& c, std::vector<std::string> env) {
  env.push_back(std::string{group_env} + "=" + c.group());
  env.push_back(std::string{parent_env} + "=" + std::to_string(::getpid()));
  // A child plays the role it is given, not the one this process plays.
  set_default(env, detail::role_env, "");
  set_default(env, detail::publish_as_env, "");
  return env;
}

/// Starts `program` with the group's key on a pipe, whose read end is open
/// in the child under the number `TROUPE_GROUP_KEY_FD` names. Never in its
/// environment: /proc/PID/environ shows a process's first environment for
/// its whole life, to anyone who may read the process's files.
caf::expected<child_process> spawn_with_key(const std::string& program,
                                            const std::vector<std::string>& args,
                                            std::vector<std::string> env, const std::string& key) {
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0)
    return make_error(errc::spawn_failed, std::string{"pipe: "} + std::strerror(errno));
  // 32 hex digits, far below a pipe's buffer: the write does not block.
  auto written = ::write(ends[1], key.data(), key.size());
  ::close(ends[1]);
  if (written != static_cast<ssize_t>(key.size())) {
    ::close(ends[0]);
    return make_error(errc::spawn_failed, "cannot write the group's key to the child's pipe");
  }
  env.push_back(std::string{key_fd_env} + "=" + std::to_string(ends[0]));
  auto res = detail::spawn_process_keeping(program, args, env, ends[0]);
  ::close(ends[0]);
  return res;
}

/// The key a parent handed over: on the pipe `TROUPE_GROUP_KEY_FD` names
/// (`spawn_with_key`), or in `TROUPE_GROUP_KEY` (a host forked by the fork
/// server gets it there, in memory, not in its first environment); empty
/// for none. Takes both out of the environment.
std::string take_key() {
  std::string res;
  if (auto* fd_text = std::getenv(key_fd_env)) {
    auto fd = std::atoi(fd_text);
    char buf[128];
    ssize_t n = 0;
    while (fd > 2 && (n = ::read(fd, buf, sizeof(buf))) != 0) {
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        break;
      res.append(buf, static_cast<size_t>(n));
    }
    if (fd > 2)
      ::close(fd);
  } else if (auto* key = std::getenv(key_env)) {
    res = key;
  }
  ::unsetenv(key_fd_env);
  ::unsetenv(key_env);
  return res;
}

/// A local stand-in for an actor of another node, so that CAF's middleman
/// (which only reaches actors of its own process) can publish it. A request
/// is made again by the stand-in, whose answer (or error) goes back to the
/// original requester; other messages are passed on as they are. It ends
/// when the target does.
caf::behavior tcp_forwarder(caf::event_based_actor* self, caf::actor target) {
  self->monitor(target);
  self->set_down_handler([self](caf::down_msg& dm) { self->quit(dm.reason); });
  self->set_default_handler(
    [self, target](caf::scheduled_actor*, caf::message_view& x) -> caf::result<caf::message> {
      auto msg = x.move_content_to_message();
      if (!self->current_message_id().is_request()) {
        self->send(target, std::move(msg));
        return caf::message{};
      }
      auto rp = self->make_response_promise();
      troupe::detail::relay_request(
        self, target, std::move(msg), [rp](caf::message answer) mutable { rp.deliver(answer); },
        [rp](caf::error err) mutable { rp.deliver(std::move(err)); });
      return caf::delegated<caf::message>{};
    });
  // A behavior that never matches keeps the actor alive; the default handler
  // sees every message.
  return {[](caf::unit_t) {}};
}

/// CAF 0.17 only gives a process a node id when its middleman is loaded.
caf::error check_system(caf::actor_system& sys) {
  if (!sys.node())
    return make_error(troupe::errc::invalid_argument,
                      "this actor system has no node id: call troupe::ipc::configure(cfg) (or "
                      "cfg.load<caf::io::middleman>()) before the actor system starts");
  return caf::none;
}

} // namespace

void configure(caf::actor_system_config& cfg) {
  troupe::configure(cfg);
  // Idle scheduler workers sleep until woken instead of polling every 50 us
  // for a while first: a message arriving from another process then starts
  // at once (measured: a cross-process round trip drops from ~135 us to
  // ~40 us on the development VM; see troupe-bench ipc).
  cfg.set("work-stealing.moderate-poll-attempts", size_t{0});
  // An idle worker sleeps on a condition variable that new work for it
  // signals; the timeout paces its attempts to steal work queued behind a
  // busy worker (which signals nobody). CAF's 10 ms made each idle worker
  // wake 100 times a second; 25 ms keeps a queued job's wait short.
  cfg.set("work-stealing.relaxed-sleep-duration", caf::timespan{std::chrono::milliseconds(25)});
  cfg.load<caf::io::middleman>();
  detail::add_group_module(cfg);
}

node::node(std::shared_ptr<detail::core> core) : core_(std::move(core)) {}

node::node(node&&) noexcept = default;

node& node::operator=(node&& other) noexcept {
  if (this != &other) {
    leave();
    core_ = std::move(other.core_);
  }
  return *this;
}

node::~node() {
  leave();
}

caf::expected<node> node::create(caf::actor_system& sys, const std::string& group,
                                 group_options opts) {
  if (auto err = check_system(sys))
    return err;
  auto seg = detail::create_segment(group, opts);
  if (!seg)
    return std::move(seg.error());
  auto shm_name = (*seg)->shm_name;
  auto c = std::make_shared<detail::core>(sys, std::move(*seg), opts);
  if (auto err = c->start()) {
    detail::remove_segment(shm_name);
    return err;
  }
  return node{std::move(c)};
}

caf::expected<node> node::join(caf::actor_system& sys, const std::string& group,
                               const std::string& key, group_options opts) {
  if (auto err = check_system(sys))
    return err;
  auto k = detail::key_from_hex(key);
  if (!k)
    return std::move(k.error());
  auto seg = detail::open_segment(group, *k, opts.join_timeout);
  if (!seg)
    return std::move(seg.error());
  auto c = std::make_shared<detail::core>(sys, std::move(*seg), opts);
  if (auto err = c->start())
    return err;
  return node{std::move(c)};
}

caf::expected<node> node::join_from_env(caf::actor_system& sys, group_options opts) {
  auto* group = std::getenv(group_env);
  std::string g = group != nullptr ? group : "";
  auto k = take_key();
  if (g.empty() || k.empty())
    return make_error(errc::no_such_group,
                      std::string{"this process was not started by troupe::ipc::node::spawn ("}
                        + group_env + " and " + key_fd_env + " or " + key_env + " are not set)");
  auto* parent = std::getenv(parent_env);
  auto parent_pid = parent != nullptr ? static_cast<pid_t>(std::atol(parent)) : pid_t{0};
  ::unsetenv(group_env);
  ::unsetenv(parent_env);
  auto res = join(sys, g, k, opts);
  if (res && opts.exit_with_parent && parent_pid > 0)
    if (auto err = res->core_->watch_parent(parent_pid))
      return err; // `res` leaves again
  return res;
}

namespace {

/// The role, read once and then taken out of the environment: a process
/// this one starts without `node::spawn` (which sets the role of each child)
/// must not pass for one in this role.
std::string take_role_from_environment() {
  auto* x = std::getenv(detail::role_env);
  std::string res{x != nullptr ? x : ""};
  ::unsetenv(detail::role_env);
  return res;
}

std::string& process_role() {
  static std::string role = take_role_from_environment();
  return role;
}

} // namespace

std::string this_process_role() {
  return process_role();
}

void detail::reread_process_role() {
  process_role() = take_role_from_environment();
}

caf::expected<publication> node::publish(const std::string& name, const caf::actor& x) {
  if (auto err = core_->publish(name, x))
    return err;
  return publication{core_, name, x};
}

publication::publication(publication&& other) noexcept
  : core_(std::move(other.core_)), name_(std::move(other.name_)), actor_(std::move(other.actor_)) {
  other.name_.clear();
}

publication& publication::operator=(publication&& other) noexcept {
  if (this != &other) {
    stop();
    core_ = std::move(other.core_);
    name_ = std::move(other.name_);
    actor_ = std::move(other.actor_);
    other.name_.clear();
  }
  return *this;
}

publication::~publication() {
  stop();
}

void publication::stop() {
  if (!actor_)
    return;
  // A node that left has unpublished the name (and stopped the actor).
  if (auto core = core_.lock(); core && !name_.empty())
    core->unpublish(name_); // fails only if the node left, which unpublished it
  caf::anon_send_exit(actor_, caf::exit_reason::user_shutdown);
  release();
}

void publication::release() noexcept {
  core_.reset();
  name_.clear();
  actor_ = nullptr;
}

caf::error node::unpublish(const std::string& name) {
  return core_->unpublish(name);
}

caf::expected<caf::actor> node::lookup(const std::string& name, caf::timespan wait) {
  return core_->lookup(name, wait);
}

caf::expected<caf::actor> node::lookup_in(pid_t pid, const std::string& name, caf::timespan wait) {
  if (pid <= 0)
    return make_error(troupe::errc::invalid_argument, "lookup_in needs a process id");
  return core_->lookup(name, wait, pid);
}

caf::actor_system& node::system() const {
  return core_->system();
}

caf::expected<caf::actor> node::spawn_server_in(pid_t where) {
  if (where <= 0)
    return make_error(troupe::errc::invalid_argument, "spawn_in needs a process id");
  return core_->spawn_server_of(where);
}

caf::expected<caf::actor> node::spawn_server_in(const std::string& where) {
  auto published = core_->lookup(where, forever);
  if (!published)
    return std::move(published.error());
  return core_->spawn_server_of(published->node());
}

caf::expected<caf::actor> node::spawn_with(const caf::expected<caf::actor>& server,
                                           const std::string& type, caf::message args,
                                           std::set<std::string> interface, bool check) {
  if (!server)
    return server.error();
  if (type.empty())
    return make_error(troupe::errc::invalid_argument, "spawn_in needs an actor type");
  return troupe::detail::ask<caf::actor>(*server, forever, spawn_in_atom::value, type,
                                         std::move(args), std::move(interface), check);
}

caf::expected<child_process> node::spawn(const std::string& program,
                                         const std::vector<std::string>& args,
                                         std::vector<std::string> env) {
  // The child would join a group this node is no longer in (or that is gone).
  if (auto err = core_->check_member())
    return err;
  return spawn_with_key(program, args, child_environment(*core_, std::move(env)), core_->key());
}

caf::expected<child_process> node::spawn_role(const std::string& role,
                                              const std::vector<std::string>& args,
                                              std::vector<std::string> env) {
  if (role.empty())
    return make_error(troupe::errc::invalid_argument, "spawn_role needs a role");
  set_default(env, detail::role_env, role);
  return spawn_self(args, std::move(env));
}

caf::expected<child_process> node::spawn_self(const std::vector<std::string>& args,
                                              std::vector<std::string> env) {
  if (auto err = core_->check_member())
    return err;
  env = child_environment(*core_, std::move(env));
  if (detail::forkable_role(value_in(env, detail::role_env))) {
    // The request travels on a socket only this process and its server
    // hold; the host sets the key in memory, never in its first environment.
    auto request_env = env;
    request_env.push_back(std::string{key_env} + "=" + core_->key());
    if (auto forked = detail::fork_self(args, request_env))
      return forked; // otherwise started anew below: slower, and the same
  }
  char path[4096];
  auto n = ::readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (n <= 0)
    return make_error(errc::spawn_failed, "cannot read /proc/self/exe");
  path[n] = '\0';
  return spawn_with_key(path, args, std::move(env), core_->key());
}

caf::expected<uint16_t> node::publish_tcp(const caf::actor& x, uint16_t port,
                                          const std::string& in) {
  auto& sys = core_->system();
  if (!x)
    return make_error(troupe::errc::invalid_argument, "cannot publish an invalid actor handle");
  if (!sys.has_middleman())
    return make_error(troupe::errc::invalid_argument, "publish_tcp needs CAF's middleman: call "
                                                      "cfg.load<caf::io::middleman>() before the "
                                                      "actor system starts");
  auto target = x;
  if (x->node() != sys.node())
    target = sys.spawn<caf::hidden>(tcp_forwarder, x);
  return sys.middleman().publish(target, port, in.empty() ? nullptr : in.c_str(), true);
}

caf::expected<caf::actor> node::remote_tcp(const std::string& host, uint16_t port) {
  auto& sys = core_->system();
  if (!sys.has_middleman())
    return make_error(troupe::errc::invalid_argument, "remote_tcp needs CAF's middleman: call "
                                                      "cfg.load<caf::io::middleman>() before the "
                                                      "actor system starts");
  return sys.middleman().remote_actor(host, port);
}

const std::string& node::group() const {
  return core_->group();
}

std::string node::key() const {
  return core_->key();
}

uint32_t node::slot() const {
  return core_->slot();
}

node_stats node::stats() const {
  return core_->stats();
}

void node::leave() {
  if (core_)
    core_->leave();
}

} // namespace troupe::ipc

namespace troupe::ipc::detail {

namespace {

/// A caller borrowed from the pool of the node that reaches `dest`. An
/// answered call gives it back: the owner's process then knows it already,
/// which saves a proxy and its lifetime bookkeeping on both sides per call
/// (most of a call's cost). A caller whose call was not answered is not
/// given back (a late answer may still come), nor one whose call ended by an
/// exception.
class pooled_caller final : public troupe::detail::lent_caller {
public:
  pooled_caller(std::shared_ptr<caller_pool> pool, std::unique_ptr<caf::scoped_actor> self)
    : pool_(std::move(pool)), self_(std::move(self)) {}

  ~pooled_caller() override {
    if (spoiled_ || std::uncaught_exceptions() > uncaught_)
      return;
    std::lock_guard<std::mutex> guard{pool_->mtx};
    if (!pool_->closed && pool_->idle.size() < caller_pool::max_idle)
      pool_->idle.push_back(std::move(self_));
  }

  caf::scoped_actor& self() noexcept override {
    return *self_;
  }

  void spoil() noexcept override {
    spoiled_ = true;
  }

private:
  std::shared_ptr<caller_pool> pool_;
  std::unique_ptr<caf::scoped_actor> self_;
  bool spoiled_ = false;
  int uncaught_ = std::uncaught_exceptions();
};

shm_proxy* as_proxy(const caf::actor& dest) {
  return dynamic_cast<shm_proxy*>(caf::actor_cast<caf::abstract_actor*>(dest));
}

/// Lends a caller for a call to an actor of another process of a group. A
/// call with a finite timeout gets none: CAF leaves a timer message behind
/// in its caller, so that caller could not be lent again.
std::unique_ptr<troupe::detail::lent_caller> lend_caller(const caf::actor& dest, bool reusable) {
  auto* px = reusable ? as_proxy(dest) : nullptr;
  if (px == nullptr)
    return nullptr;
  auto pool = px->owner().callers();
  std::unique_ptr<caf::scoped_actor> self;
  {
    std::lock_guard<std::mutex> guard{pool->mtx};
    if (!pool->idle.empty()) {
      self = std::move(pool->idle.back());
      pool->idle.pop_back();
    }
  }
  if (!self)
    // Hidden: an idle caller must not keep `await_all_actors_done` waiting.
    self = std::make_unique<caf::scoped_actor>(dest->home_system(), true);
  return std::make_unique<pooled_caller>(std::move(pool), std::move(self));
}

/// After `self` sent a request to `dest`: if `dest` is an actor of another
/// process, reads the node's rings on this thread until something is in
/// `self`'s mailbox, for at most `group_options::spin` (or `timeout`, if
/// shorter), so that the answer needs no other thread of this process to
/// wake up. Then `self` receives as usual.
void await_answer(caf::scoped_actor& self, const caf::actor& dest, caf::timespan timeout) {
  auto* px = as_proxy(dest);
  if (px == nullptr)
    return;
  auto& owner = px->owner();
  auto budget = owner.options().spin;
  if (!troupe::detail::is_forever(timeout))
    budget = std::min(budget, timeout);
  auto& mailbox = self->mailbox();
  owner.poll_until([&mailbox] { return !mailbox.empty(); },
                   std::chrono::steady_clock::now() + budget);
}

const troupe::detail::remote_call_hooks call_hooks{lend_caller, await_answer};

} // namespace

void install_call_hooks() noexcept {
  troupe::detail::install_remote_call_hooks(&call_hooks);
}

} // namespace troupe::ipc::detail
