#include "troupe/ipc/process_pool.hpp"

#include "troupe/detail/relay.hpp"
#include "troupe/ipc/configure.hpp"
#include "troupe/ipc/process_supervision.hpp"

#include <caf/all.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>

namespace troupe::ipc {

namespace {

using task_atom = caf::atom_constant<caf::atom("task")>;

constexpr const char* worker_flag = "--troupe-pool-worker";

struct task_table {
  std::mutex mtx;
  std::map<std::string, detail::task_invoke_fn> by_name;
  std::map<detail::any_function, std::string> by_function;
};

task_table& tasks() {
  static task_table instance;
  return instance;
}

/// A worker: runs tasks by name, one at a time, on a thread of its own.
caf::behavior task_runner(caf::event_based_actor*) {
  return {
    [](task_atom, const std::string& name, const caf::message& args) -> caf::result<caf::message> {
      auto invoke = detail::task_named(name);
      if (invoke == nullptr)
        return make_error(errc::invalid_argument, "no task named '" + name + "' in this program");
      auto res = invoke(args);
      if (!res)
        return std::move(res.error());
      return std::move(*res);
    },
  };
}

std::atomic<uint64_t> next_pool_serial{1};

} // namespace

namespace detail {

bool add_task(const char* name, any_function fn, task_invoke_fn invoke) {
  auto& t = tasks();
  std::lock_guard<std::mutex> guard{t.mtx};
  t.by_name[name] = invoke;
  t.by_function[fn] = name;
  return true;
}

const std::string* task_name_of(any_function fn) {
  auto& t = tasks();
  std::lock_guard<std::mutex> guard{t.mtx};
  auto i = t.by_function.find(fn);
  return i == t.by_function.end() ? nullptr : &i->second;
}

task_invoke_fn task_named(const std::string& name) {
  auto& t = tasks();
  std::lock_guard<std::mutex> guard{t.mtx};
  auto i = t.by_name.find(name);
  return i == t.by_name.end() ? nullptr : i->second;
}

/// The pool's state: the supervised workers and the processes behind them.
class process_pool_core {
public:
  process_pool_core(caf::actor_system& sys, node& group) : sys(sys), group(group) {}

  ~process_pool_core() {
    shutdown();
  }

  void shutdown() {
    if (stopped.exchange(true))
      return;
    if (pool)
      pool->stop(std::chrono::seconds(10));
    group.unpublish(name);
    // The workers exit once their actors are stopped; reap them (and kill
    // what does not go within the time).
    std::lock_guard<std::mutex> guard{mtx};
    for (auto& p : processes)
      if (p.running() && !p.wait(std::chrono::seconds(5)))
        p.kill(9);
    processes.clear();
  }

  /// Starts one worker process and returns its actor.
  caf::actor start_worker(caf::timespan timeout) {
    std::lock_guard<std::mutex> guard{mtx};
    // Reap the workers that are gone.
    for (auto& p : processes)
      if (p.running())
        p.wait(caf::timespan{0});
    processes.erase(std::remove_if(processes.begin(), processes.end(),
                                   [](const child_process& p) { return !p.running(); }),
                    processes.end());
    auto worker_name = name + ".w" + std::to_string(++workers_started);
    auto proc = group.spawn_self({worker_flag, name, worker_name});
    if (!proc)
      throw std::runtime_error(describe(proc.error()));
    processes.push_back(std::move(*proc));
    return await_published(group, processes.back(), worker_name, timeout);
  }

  caf::actor_system& sys;
  node& group;
  std::string name;
  std::optional<worker_pool> pool;
  std::mutex mtx;
  std::vector<child_process> processes;
  uint64_t workers_started = 0;
  std::atomic<bool> stopped{false};
};

} // namespace detail

caf::expected<process_pool> process_pool::make(caf::actor_system& sys, node& group,
                                               process_pool_options options) {
  auto core = std::make_shared<detail::process_pool_core>(sys, group);
  core->name = "pool." + std::to_string(::getpid()) + "." + std::to_string(next_pool_serial++);
  pool_options popts;
  popts.workers = options.workers;
  popts.retries = options.retries;
  popts.max_restarts = options.max_restarts;
  popts.period = options.period;
  popts.dispatch = dispatch_policy::balancing;
  auto* raw = core.get();
  auto timeout = options.start_timeout;
  auto pool = worker_pool::make(
    sys, [raw, timeout](caf::actor_system&) { return raw->start_worker(timeout); }, popts);
  if (!pool) {
    core->stopped = true;
    return std::move(pool.error());
  }
  core->pool = std::move(*pool);
  // Workers watch this name: when the parent dies, so does its publication.
  if (auto err = group.publish(core->name, core->pool->handle())) {
    core->shutdown();
    return err;
  }
  return process_pool{std::move(core)};
}

bool process_pool::is_worker(int argc, char** argv) {
  return argc == 4 && std::strcmp(argv[1], worker_flag) == 0;
}

int process_pool::run_worker(int argc, char** argv,
                             const std::function<void(caf::actor_system_config&)>& prepare) {
  if (!is_worker(argc, argv))
    return 2;
  std::string pool_name = argv[2];
  std::string worker_name = argv[3];
  caf::actor_system_config cfg;
  configure(cfg);
  if (prepare)
    prepare(cfg);
  caf::actor_system sys{cfg};
  auto group = node::join_from_env(sys);
  if (!group) {
    std::cerr << "[troupe] pool worker: cannot join: " << describe(group.error()) << '\n';
    return 3;
  }
  auto runner = sys.spawn<caf::detached>(task_runner);
  caf::scoped_actor self{sys};
  self->monitor(runner);
  if (auto err = group->publish(worker_name, runner)) {
    std::cerr << "[troupe] pool worker: " << describe(err) << '\n';
    self->send_exit(runner, caf::exit_reason::kill);
    return 3;
  }
  // Exit with the pool, or with the parent.
  if (auto pool = group->lookup(pool_name, std::chrono::seconds(10)))
    self->monitor(*pool);
  bool done = false;
  self->receive_while([&] { return !done; })([&](caf::down_msg&) { done = true; });
  self->send_exit(runner, caf::exit_reason::user_shutdown);
  return 0;
}

process_pool::process_pool(std::shared_ptr<detail::process_pool_core> core)
  : core_(std::move(core)) {}

process_pool::process_pool(process_pool&&) noexcept = default;

process_pool& process_pool::operator=(process_pool&& other) noexcept {
  if (this != &other) {
    shutdown();
    core_ = std::move(other.core_);
  }
  return *this;
}

process_pool::~process_pool() {
  shutdown();
}

const worker_pool& process_pool::workers() const {
  return *core_->pool;
}

void process_pool::shutdown() {
  if (core_)
    core_->shutdown();
}

void process_pool::post(const std::string& name, caf::message args,
                        std::function<void(caf::expected<caf::message>)> done) {
  if (core_->stopped) {
    done(make_error(errc::cancelled, "the process pool was shut down"));
    return;
  }
  auto pool = core_->pool->handle();
  auto content = caf::make_message(task_atom::value, name, std::move(args));
  core_->sys.spawn([pool, content, done](caf::event_based_actor* self) {
    troupe::detail::relay_request(
      self, pool, content, [done](caf::message answer) { done(std::move(answer)); },
      [done](caf::error err) { done(std::move(err)); });
  });
}

} // namespace troupe::ipc
