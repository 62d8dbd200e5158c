#include "troupe/ipc/process_pool.hpp"

#include "roles.hpp"
#include "troupe/detail/relay.hpp"
#include "troupe/detail/task_gate.hpp"
#include "troupe/ipc/configure.hpp"
#include "troupe/ipc/process_supervision.hpp"

#include <caf/all.hpp>

#include <elf.h>
#include <link.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

namespace troupe::ipc {

namespace {

struct task_table {
  std::mutex mtx;
  std::map<std::string, detail::task_invoke_fn> by_name;
};

task_table& tasks() {
  static task_table instance;
  return instance;
}

// -- code references ------------------------------------------------------
//
// A task submitted as a function pointer travels as "@" + the function's
// place + "|" + its invoker's place, each "<module>|<build id>|<offset>".
// A worker is this program again (`node::spawn_self` runs /proc/self/exe),
// so it finds both at the same offsets in the same modules. It checks the
// module's build id and that the address lies in the module's code before
// calling anything. (Trust: like every frame of the group, a task comes from
// a process that knows the group's key and runs as the same user.)

constexpr char ref_mark = '@';
constexpr char ref_sep = '|';

/// The GNU build id of a loaded module, in hex, or "-" without one.
std::string build_id_of(const dl_phdr_info* info) {
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const auto& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_NOTE)
      continue;
    auto* p = reinterpret_cast<const unsigned char*>(info->dlpi_addr + ph.p_vaddr);
    auto* end = p + ph.p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      ElfW(Nhdr) nh;
      std::memcpy(&nh, p, sizeof(nh));
      auto name_len = (nh.n_namesz + 3u) & ~3u;
      auto desc_len = (nh.n_descsz + 3u) & ~3u;
      auto* desc = p + sizeof(nh) + name_len;
      if (desc + nh.n_descsz > end)
        break;
      if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4
          && std::memcmp(p + sizeof(nh), "GNU", 4) == 0) {
        static constexpr char digits[] = "0123456789abcdef";
        std::string hex;
        for (uint32_t j = 0; j < nh.n_descsz; ++j) {
          hex += digits[desc[j] >> 4];
          hex += digits[desc[j] & 15];
        }
        return hex;
      }
      p = desc + desc_len;
    }
  }
  return "-";
}

/// Whether `offset` lies in an executable segment of `info`'s module.
bool in_code(const dl_phdr_info* info, uintptr_t offset) {
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const auto& ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X) != 0 && offset >= ph.p_vaddr
        && offset < ph.p_vaddr + ph.p_memsz)
      return true;
  }
  return false;
}

/// Where `addr` lies: "<module>|<build id>|<offset>", or "" outside code.
std::string place_of(const void* addr) {
  struct search {
    uintptr_t addr;
    std::string place;
  } s{reinterpret_cast<uintptr_t>(addr), std::string{}};
  dl_iterate_phdr(
    [](dl_phdr_info* info, size_t, void* data) {
      auto* s = static_cast<search*>(data);
      if (s->addr < info->dlpi_addr || !in_code(info, s->addr - info->dlpi_addr))
        return 0;
      auto offset = s->addr - info->dlpi_addr;
      s->place = std::string{info->dlpi_name} + ref_sep + build_id_of(info) + ref_sep
                 + std::to_string(offset);
      return 1;
    },
    &s);
  return s.place;
}

/// The address a place names in this process, or an error saying why not.
caf::expected<uintptr_t> resolve_place(const std::string& module, const std::string& id,
                                       uintptr_t offset) {
  struct search {
    const std::string& module;
    const std::string& id;
    uintptr_t offset;
    std::optional<uintptr_t> addr;
    std::string why = "no module '";
  } s{module, id, offset, std::nullopt};
  dl_iterate_phdr(
    [](dl_phdr_info* info, size_t, void* data) {
      auto* s = static_cast<search*>(data);
      if (s->module != info->dlpi_name)
        return 0;
      if (build_id_of(info) != s->id)
        s->why = "another build of '";
      else if (!in_code(info, s->offset))
        s->why = "no code at that offset in '";
      else
        s->addr = info->dlpi_addr + s->offset;
      return 1;
    },
    &s);
  if (s.addr)
    return *s.addr;
  return make_error(troupe::errc::invalid_argument,
                    "cannot find the task: " + s.why + module + "' in this process");
}

/// The function and invoker a reference names (see `task_reference`).
caf::expected<std::pair<detail::any_function, detail::erased_invoke_fn>>
resolve_reference(const std::string& ref) {
  std::vector<std::string> parts;
  size_t pos = 1;
  for (;;) {
    auto next = ref.find(ref_sep, pos);
    parts.push_back(ref.substr(pos, next == std::string::npos ? next : next - pos));
    if (next == std::string::npos)
      break;
    pos = next + 1;
  }
  auto bad = make_error(troupe::errc::invalid_argument, "a malformed task reference");
  if (parts.size() != 6)
    return bad;
  uintptr_t addrs[2];
  for (int i = 0; i < 2; ++i) {
    auto& text = parts[3 * i + 2];
    if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos)
      return bad;
    auto where = resolve_place(parts[3 * i], parts[3 * i + 1], std::stoull(text));
    if (!where)
      return std::move(where.error());
    addrs[i] = *where;
  }
  return std::make_pair(reinterpret_cast<detail::any_function>(addrs[0]),
                        reinterpret_cast<detail::erased_invoke_fn>(addrs[1]));
}

/// A worker: runs tasks, one at a time, on a thread of its own.
caf::behavior task_runner(caf::event_based_actor*) {
  return {
    [](task_atom, const std::string& name, const caf::message& args) -> caf::result<caf::message> {
      caf::expected<caf::message> res{caf::message{}};
      if (!name.empty() && name.front() == ref_mark) {
        auto fn = resolve_reference(name);
        if (!fn)
          return std::move(fn.error());
        res = fn->second(fn->first, args);
      } else {
        auto invoke = detail::task_named(name);
        if (invoke == nullptr)
          return make_error(troupe::errc::invalid_argument,
                            "no task named '" + name + "' in this program");
        res = invoke(args);
      }
      if (!res)
        return std::move(res.error());
      return std::move(*res);
    },
  };
}

std::atomic<uint64_t> next_pool_serial{1};

} // namespace

namespace detail {

bool add_task(const char* name, any_function, task_invoke_fn invoke) {
  auto& t = tasks();
  std::lock_guard<std::mutex> guard{t.mtx};
  t.by_name[name] = invoke;
  return true;
}

std::string task_reference(any_function fn, erased_invoke_fn invoke) {
  auto fn_place = place_of(reinterpret_cast<const void*>(fn));
  auto invoke_place = place_of(reinterpret_cast<const void*>(invoke));
  if (fn_place.empty() || invoke_place.empty())
    return {};
  return ref_mark + fn_place + ref_sep + invoke_place;
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
    (void)stop(shutdown_mode::cancel, forever);
  }

  /// As `executor::stop`: takes no more tasks, lets the queued ones run
  /// (`wait`) or fails them (`cancel`), waits for the running ones, then
  /// stops the workers.
  caf::error stop(shutdown_mode mode, caf::timespan timeout) {
    tasks.close();
    if (pool && mode == shutdown_mode::cancel && !cancelling.exchange(true))
      pool->cancel_queued();
    if (!tasks.await_idle(timeout))
      return make_error(troupe::errc::timeout, "the process pool's tasks did not finish in time");
    if (stopped.exchange(true))
      return caf::none;
    caf::error result;
    if (pool)
      result = pool->stop(std::chrono::seconds(10));
    (void)listing.stop();
    // The workers exit once their actors are stopped; reap them (and kill
    // what does not go within the time).
    std::lock_guard<std::mutex> guard{mtx};
    for (auto& p : processes)
      if (p.running() && !p.wait(std::chrono::seconds(5)))
        p.kill(9);
    processes.clear();
    // A group of the pool's own ends with it (the last node out removes it).
    own_group.reset();
    return result;
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
    auto proc = group.spawn_role(detail::pool_worker_role, {name, worker_name});
    if (!proc)
      throw std::runtime_error(describe(proc.error()));
    processes.push_back(std::move(*proc));
    return await_published(group, processes.back(), worker_name, timeout);
  }

  caf::actor_system& sys;
  node& group;
  std::unique_ptr<node> own_group; // when the pool made `group` itself
  std::string name;
  std::optional<worker_pool> pool;
  /// The pool's actor, published as `name` for the workers to watch.
  publication listing;
  std::mutex mtx;
  std::vector<child_process> processes;
  uint64_t workers_started = 0;
  std::atomic<bool> stopped{false};
  /// Tasks posted and not answered yet; `stop` closes it and waits.
  troupe::detail::task_gate tasks;
  /// Set by `stop(cancel)`: a task not handed to the pool yet fails.
  std::atomic<bool> cancelling{false};
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
  auto listing = group.publish(core->name, core->pool->handle());
  if (!listing) {
    (void)core->stop(shutdown_mode::cancel, forever);
    return std::move(listing.error());
  }
  core->listing = std::move(*listing);
  return process_pool{std::move(core)};
}

caf::expected<process_pool> process_pool::make(caf::actor_system& sys,
                                               process_pool_options options) {
  group_options gopts;
  auto workers =
    options.workers != 0 ? options.workers : std::max(1u, std::thread::hardware_concurrency());
  // Room for the workers, the parent and as many replacements starting while
  // dead workers' slots are swept.
  gopts.max_nodes = static_cast<uint32_t>(std::clamp<std::size_t>(2 * workers + 2, 8, 64));
  auto group = node::create(
    sys, "pool-" + std::to_string(::getpid()) + "-" + std::to_string(next_pool_serial.load()),
    gopts);
  if (!group)
    return std::move(group.error());
  auto own = std::make_unique<node>(std::move(*group));
  auto pool = make(sys, *own, options);
  if (pool)
    pool->core_->own_group = std::move(own);
  return pool;
}

bool process_pool::is_worker() {
  return this_process_role() == detail::pool_worker_role;
}

int process_pool::run_worker(int argc, char** argv,
                             const std::function<void(caf::actor_system_config&)>& prepare) {
  if (!is_worker())
    return 2;
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
  return detail::serve_as_pool_worker(sys, *group, {argv + 1, argv + argc});
}

int detail::serve_as_pool_worker(caf::actor_system& sys, node& group,
                                 const std::vector<std::string>& args) {
  if (args.size() != 2) {
    std::cerr << "[troupe] pool worker: started with " << args.size()
              << " arguments, not the pool's name and its own\n";
    return 2;
  }
  const auto& pool_name = args[0];
  const auto& worker_name = args[1];
  auto runner = sys.spawn<caf::detached>(task_runner);
  caf::scoped_actor self{sys};
  self->monitor(runner);
  auto listing = group.publish(worker_name, runner);
  if (!listing) {
    std::cerr << "[troupe] pool worker: " << describe(listing.error()) << '\n';
    self->send_exit(runner, caf::exit_reason::kill);
    return 3;
  }
  // Exit with the pool, or with the parent.
  if (auto pool = group.lookup(pool_name, std::chrono::seconds(10)))
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
    (void)stop();
    core_ = std::move(other.core_);
  }
  return *this;
}

process_pool::~process_pool() {
  (void)stop();
}

const worker_pool& process_pool::workers() const {
  return *core_->pool;
}

caf::error process_pool::stop(shutdown_mode mode, caf::timespan timeout) {
  if (!core_)
    return make_error(troupe::errc::invalid_argument, "empty process pool (moved from)");
  return core_->stop(mode, timeout);
}

void process_pool::post(const std::string& name, caf::message args,
                        std::function<void(caf::expected<caf::message>)> on_done) {
  if (!core_ || !core_->tasks.admit()) {
    on_done(make_error(troupe::errc::cancelled, "the process pool was shut down"));
    return;
  }
  auto done = [core = core_, on_done](caf::expected<caf::message> res) {
    on_done(std::move(res));
    core->tasks.finished();
  };
  auto pool = core_->pool->handle();
  auto content = caf::make_message(task_atom::value, name, std::move(args));
  core_->sys.spawn([pool, content, done, core = core_](caf::event_based_actor* self) {
    if (core->cancelling) {
      done(
        make_error(troupe::errc::cancelled, "the process pool was shut down before the task ran"));
      return;
    }
    troupe::detail::relay_request(
      self, pool, content, [done](caf::message answer) { done(std::move(answer)); },
      [done](caf::error err) { done(std::move(err)); });
  });
}

} // namespace troupe::ipc
