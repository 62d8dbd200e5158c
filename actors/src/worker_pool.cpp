#include "troupe/worker_pool.hpp"

#include "troupe/error.hpp"

#include <caf/all.hpp>
#include <caf/default_attachable.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cassert>
#include <deque>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

namespace troupe {

namespace {

/// Private protocol (tasks may be any message, so nothing public is taken).
using stats_atom = caf::atom_constant<caf::atom("tr_pstats")>;
using cancel_atom = caf::atom_constant<caf::atom("tr_pcancel")>;

using element_ptr = caf::mailbox_element_ptr;

/// A task and whom to answer. While it waits in the pool, `element` is the
/// message it came in (its content is the task); while a worker has it,
/// `element` is empty and `content` keeps a copy if it may run again.
struct task {
  caf::strong_actor_ptr sender;
  caf::message_id mid; // as the client sent it: a request, or not
  caf::mailbox_element::forwarding_stack stages;
  element_ptr element;
  caf::message content;
  std::size_t attempts = 0;
};

/// A task handed to a worker, under the id the pool asked it with.
struct running_task {
  uint64_t id;
  /// Answered before tasks handed over earlier: dropped once they are.
  bool done;
  task t;
};

/// The pool's locks. Their critical sections are short and never wait for
/// anything, and a slot's lock is taken by the client's and the worker's
/// threads for every task: spinning briefly (then yielding) costs less than
/// a `std::mutex` that puts a contending thread to sleep in the kernel.
class spinlock {
public:
  void lock() noexcept {
    for (unsigned spins = 0; flag_.exchange(true, std::memory_order_acquire);) {
      while (flag_.load(std::memory_order_relaxed)) {
        if (++spins < 64)
          relax();
        else
          std::this_thread::yield();
      }
    }
  }

  void unlock() noexcept {
    flag_.store(false, std::memory_order_release);
  }

private:
  static void relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }

  std::atomic<bool> flag_{false};
};

/// A worker and the tasks handed to it. `lock` guards every field; `actor`
/// and `id` are written under the pool's lock too, so that either lock
/// suffices to read them. A slot has a cache line of its own: the client
/// and the worker of one slot do not touch another's.
struct alignas(64) worker_slot {
  spinlock lock;
  caf::actor actor;
  caf::actor_id id = 0;
  /// The tasks handed to `actor` (and no other), by ascending id; `running`
  /// of them are not done.
  std::deque<running_task> tasks;
  std::size_t running = 0;
  /// Sequence number of the last task handed to this slot.
  uint64_t seq = 0;
  /// Answers passed back from this slot's workers.
  uint64_t completed = 0;
  /// The worker is going down (it bounced a task), or the pool stopped: no
  /// new tasks until it is replaced.
  bool dying = false;
};

/// Messages to send once the pool's lock is released (sending may bounce
/// back into the pool at once, on the same thread).
/// Room for two without allocating: an answer and the next task.
class outbox {
public:
  void add(caf::strong_actor_ptr to, element_ptr x) {
    if (size_ < near_.size())
      near_[size_++] = {std::move(to), std::move(x)};
    else
      far_.emplace_back(std::move(to), std::move(x));
  }

  void send(caf::execution_unit* eu) {
    for (std::size_t i = 0; i < size_; ++i)
      deliver(near_[i], eu);
    size_ = 0;
    for (auto& item : far_)
      deliver(item, eu);
    far_.clear();
  }

private:
  using item = std::pair<caf::strong_actor_ptr, element_ptr>;

  static void deliver(item& x, caf::execution_unit* eu) {
    auto to = std::move(x.first);
    to->enqueue(std::move(x.second), eu);
  }

  std::array<item, 2> near_;
  std::size_t size_ = 0;
  std::vector<item> far_;
};

/// Passes `x` (an answer) on to the client of `t`, as a response promise of
/// the pool would; answers to tasks that were no requests are dropped.
void answer(task& t, element_ptr x, outbox& out) {
  if (!t.mid.is_request())
    return;
  if (!t.stages.empty()) {
    auto next = std::move(t.stages.back());
    t.stages.pop_back();
    x->sender = std::move(t.sender);
    x->mid = t.mid;
    x->stages = std::move(t.stages);
    out.add(std::move(next), std::move(x));
  } else if (t.sender) {
    x->mid = t.mid.response_id();
    x->stages.clear();
    out.add(std::move(t.sender), std::move(x));
  }
}

void fail(task& t, const caf::error& err, outbox& out) {
  if (t.mid.is_request())
    answer(t, caf::make_mailbox_element(nullptr, caf::message_id{}, {}, err), out);
}

/// Whether the worker's mailbox is closed: it is terminating.
bool terminating(const caf::actor& worker) {
  auto* ptr = caf::actor_cast<caf::abstract_actor*>(worker);
  if (auto* scheduled = dynamic_cast<caf::scheduled_actor*>(ptr))
    return scheduled->mailbox().closed();
  if (auto* blocking = dynamic_cast<caf::blocking_actor*>(ptr))
    return blocking->mailbox().closed();
  return false;
}

/// The pool: an actor without a mailbox of its own. Whoever sends it a
/// message runs its `enqueue`, which hands a task straight to a worker's
/// mailbox, and a worker's answer goes straight on to the client (as with
/// `caf::actor_pool`). Unlike CAF's pool, it asks the workers itself, under
/// ids of its own, and keeps every task a worker has not answered, so that
/// a worker's crash fails or retries its tasks instead of losing them.
///
/// Locks: each worker slot has its own (its tasks), so that round-robin
/// dispatch and answers only take the lock of the one slot they touch;
/// `mtx_` guards the rest (the queue, crashes, replacing workers, closing)
/// and is taken before a slot's lock, never after. Nothing is sent (and no
/// factory called) while either is held.
class pool_core final : public caf::monitorable_actor {
public:
  pool_core(caf::actor_config& cfg, worker_pool::factory_type factory, pool_options options)
    : caf::monitorable_actor(cfg), factory_(std::move(factory)), options_(options),
      size_(options.workers),
      workers_(std::make_unique<worker_slot[]>(options.workers)) { // slots never move
    while ((std::size_t{1} << slot_bits_) < size_)
      ++slot_bits_;
    register_at_system();
  }

  const char* name() const override {
    return "troupe.worker_pool";
  }

  /// Spawns the workers; on failure, the pool ends with the returned error.
  caf::error start() {
    for (std::size_t i = 0; i < size_; ++i) {
      auto worker = spawn_worker();
      if (!worker) {
        give_up(worker.error(), worker.error(), nullptr);
        return std::move(worker.error());
      }
      {
        std::lock_guard<spinlock> guard{mtx_};
        install(i, *worker);
      }
      watch(*worker);
    }
    return caf::none;
  }

  void enqueue(element_ptr x, caf::execution_unit* eu) override {
    if (x->mid.is_response()) {
      on_answer(std::move(x), eu);
      return;
    }
    // The type token first: one call instead of a match per kind.
    auto& content = x->content();
    auto token = content.type_token();
    if (token == down_token && content.match_elements<caf::down_msg>())
      on_down(content.get_as<caf::down_msg>(0), eu);
    else if (token == exit_token && content.match_elements<caf::exit_msg>())
      on_exit(content.get_as<caf::exit_msg>(0).reason, eu);
    else if (token == atom_token && content.match_elements<stats_atom>())
      on_stats(std::move(x), eu);
    else if (token == atom_token && content.match_elements<cancel_atom>())
      on_cancel(eu);
    else if (token == error_token && content.match_elements<caf::error>())
      // An error sent as a message (not an answer): not a task.
      std::cerr << "[troupe] worker pool: an error message was sent to the pool and dropped: "
                << describe(content.get_as<caf::error>(0)) << '\n';
    else
      on_task(std::move(x), eu);
  }

  void on_destroy() override {
    // The last handle is gone: nobody can send tasks any more.
    give_up(make_error(errc::cancelled, "the worker pool stopped"), caf::exit_reason::unreachable,
            nullptr);
    caf::monitorable_actor::on_destroy();
  }

private:
  static constexpr uint32_t down_token = caf::make_type_token<caf::down_msg>();
  static constexpr uint32_t exit_token = caf::make_type_token<caf::exit_msg>();
  static constexpr uint32_t atom_token = caf::make_type_token<caf::atom_value>();
  static constexpr uint32_t error_token = caf::make_type_token<caf::error>();

  bool balancing() const noexcept {
    return options_.dispatch == dispatch_policy::balancing;
  }

  // -- tasks and answers ------------------------------------------------------

  void on_task(element_ptr x, caf::execution_unit* eu) {
    task t;
    t.sender = std::move(x->sender);
    t.mid = x->mid;
    t.stages = std::move(x->stages);
    t.element = std::move(x);
    // Round robin, nothing waiting in the pool: straight to the next worker
    // that can take it, under its slot's lock alone.
    if (!balancing() && queued_.load(std::memory_order_acquire) == 0
        && !closing_.load(std::memory_order_acquire)) {
      auto first = static_cast<std::size_t>(next_rr_.fetch_add(1, std::memory_order_relaxed));
      for (std::size_t k = 0; k < size_; ++k) {
        auto& slot = workers_[(first + k) % size_];
        std::unique_lock<spinlock> guard{slot.lock};
        if (slot.actor && !slot.dying) {
          auto [to, y] = launch(slot, (first + k) % size_, std::move(t));
          guard.unlock();
          to->enqueue(std::move(y), eu);
          return;
        }
      }
    }
    outbox out;
    std::unique_lock<spinlock> guard{mtx_};
    if (closing_.load(std::memory_order_relaxed)) {
      guard.unlock();
      // As for any actor that is gone.
      fail(t, caf::sec::request_receiver_down, out);
      out.send(eu);
      return;
    }
    // Behind the tasks already waiting, then to a worker if one is free.
    push_back(std::move(t));
    dispatch(out);
    guard.unlock();
    out.send(eu);
  }

  void on_answer(element_ptr x, caf::execution_unit* eu) {
    auto id = x->mid.request_id().integer_value();
    auto i = static_cast<std::size_t>(id & ((uint64_t{1} << slot_bits_) - 1));
    if (i >= size_)
      return;
    auto& slot = workers_[i];
    outbox out;
    std::unique_lock<spinlock> guard{slot.lock};
    auto t = take(slot, id);
    if (!t)
      return; // already failed: the pool stopped, or the worker crashed
    auto& content = x->content();
    if (content.type_token() == error_token && content.match_elements<caf::error>()
        && (content.get_as<caf::error>(0) == caf::sec::request_receiver_down
            || is(content.get_as<caf::error>(0), errc::peer_lost))) {
      // CAF bounced the task from a terminating worker's mailbox, or the
      // worker's process died (troupe::ipc): a crash, not an answer (its down
      // message comes later or came just before).
      if (x->sender == nullptr && terminating(slot.actor))
        slot.dying = true;
      guard.unlock();
      std::unique_lock<spinlock> pool_guard{mtx_};
      crashed(std::move(*t), content.get_as<caf::error>(0), out);
      dispatch(out);
    } else {
      ++slot.completed;
      guard.unlock();
      answer(*t, std::move(x), out);
      // A worker that became idle takes the next waiting task. (A task that
      // started waiting after this read found the worker idle itself: see
      // `dispatch`; the slot's lock orders the two, not the atomic.)
      if (queued_.load(std::memory_order_seq_cst) != 0) {
        std::unique_lock<spinlock> pool_guard{mtx_};
        dispatch(out);
      }
    }
    out.send(eu);
  }

  /// Removes the task with `id` from `slot` (the only one it was handed
  /// to); none if it is no longer there. Needs the slot's lock.
  std::optional<task> take(worker_slot& slot, uint64_t id) {
    auto& q = slot.tasks;
    // Workers mostly answer in order: the oldest task first.
    auto pos = q.begin();
    if (pos == q.end() || pos->id != id) {
      pos = std::lower_bound(q.begin(), q.end(), id,
                             [](const running_task& x, uint64_t y) { return x.id < y; });
      if (pos == q.end() || pos->id != id || pos->done)
        return std::nullopt;
    }
    std::optional<task> result{std::move(pos->t)};
    --slot.running;
    if (pos == q.begin()) {
      q.pop_front();
      while (!q.empty() && q.front().done)
        q.pop_front();
    } else {
      pos->done = true;
    }
    return result;
  }

  /// Hands `t` to the worker in slot `i`; returns what to send to whom.
  /// Needs the slot's lock.
  std::pair<caf::strong_actor_ptr, element_ptr> launch(worker_slot& slot, std::size_t i, task t) {
    auto x = std::move(t.element);
    if (!x)
      x = caf::make_mailbox_element(nullptr, caf::message_id{}, {}, t.content);
    else if (t.attempts < options_.retries)
      t.content = x->copy_content_to_message(); // to run it again after a crash
    // The id names the slot, so that an answer finds its task at once.
    auto id = (++slot.seq << slot_bits_) | i;
    x->sender = caf::strong_actor_ptr{ctrl()};
    x->mid = caf::make_message_id(id);
    x->stages.clear();
    ++t.attempts;
    slot.tasks.push_back(running_task{id, false, std::move(t)});
    ++slot.running;
    return {caf::actor_cast<caf::strong_actor_ptr>(slot.actor), std::move(x)};
  }

  void push_back(task t) {
    queue_.push_back(std::move(t));
    queued_.store(queue_.size(), std::memory_order_seq_cst);
  }

  void push_front(task t) {
    queue_.push_front(std::move(t));
    queued_.store(queue_.size(), std::memory_order_seq_cst);
  }

  /// Hands waiting tasks to workers that may take them now (round robin:
  /// any worker that is not going down; balancing: an idle one). Needs
  /// `mtx_`.
  ///
  /// `on_answer` reads `queued_` without `mtx_` to learn whether a worker it
  /// just made idle should take a waiting task. That is only right while
  /// every change to `queue_` stores `queued_` before calling this, and this
  /// looks at every slot, under the slot's lock, before it leaves a task
  /// waiting: a slot it found busy then hands its answer over only after
  /// `queued_` was stored. Do not make it stop early.
  void dispatch(outbox& out) {
    if (queue_.empty())
      return;
    std::size_t tried = 0;
    while (!queue_.empty() && tried < size_) {
      auto i = next_;
      next_ = i + 1 < size_ ? i + 1 : 0;
      auto& slot = workers_[i];
      std::unique_lock<spinlock> guard{slot.lock};
      if (slot.actor && !slot.dying && (!balancing() || slot.running == 0)) {
        auto [to, x] = launch(slot, i, std::move(queue_.front()));
        queue_.pop_front();
        out.add(std::move(to), std::move(x));
        tried = 0;
      } else {
        ++tried;
      }
    }
    queued_.store(queue_.size(), std::memory_order_seq_cst);
  }

  /// A task whose worker crashed: dispatched again if retries allow. Needs
  /// `mtx_`.
  void crashed(task t, const caf::error& reason, outbox& out) {
    if (t.attempts <= options_.retries && !closing_.load(std::memory_order_relaxed)) {
      push_front(std::move(t));
      return;
    }
    fail(t,
         make_error(errc::worker_crashed,
                    "the worker running the task crashed (" + describe(reason) + ")"),
         out);
  }

  // -- workers ------------------------------------------------------------------

  /// Calls the factory (one call at a time, without the pool's lock).
  caf::expected<caf::actor> spawn_worker() {
    std::lock_guard<std::mutex> guard{factory_mtx_};
    try {
      auto worker = factory_(home_system());
      if (!worker)
        return make_error(errc::start_failed, "worker pool: the worker factory returned no actor");
      return worker;
    } catch (const std::exception& ex) {
      return make_error(errc::start_failed, std::string{"worker pool: "} + ex.what());
    }
  }

  /// Monitors a worker once it is installed (not holding the lock: if the
  /// worker is gone already, its down message comes at once).
  void watch(const caf::actor& worker) {
    worker->attach(caf::default_attachable::make_monitor(worker.address(), address()));
  }

  /// Puts `worker` into slot `i`. Needs `mtx_`.
  void install(std::size_t i, caf::actor worker) {
    auto& slot = workers_[i];
    std::lock_guard<spinlock> guard{slot.lock};
    // A slot takes no tasks from its worker's crash until now (`dying`).
    assert(slot.tasks.empty());
    slot.id = worker.id();
    slot.actor = std::move(worker);
    slot.running = 0;
    slot.dying = false;
  }

  void on_down(const caf::down_msg& msg, caf::execution_unit* eu) {
    outbox out;
    std::unique_lock<spinlock> guard{mtx_};
    if (closing_.load(std::memory_order_relaxed))
      return;
    std::size_t i = 0;
    while (i < size_ && workers_[i].id != msg.source.id())
      ++i;
    if (i == size_)
      return;
    auto& slot = workers_[i];
    std::deque<running_task> lost;
    {
      std::lock_guard<spinlock> slot_guard{slot.lock};
      slot.dying = true;
      // The tasks it did not answer (the one it was running; CAF bounced
      // those in its mailbox already): CAF 0.17 sends nothing for a request
      // dropped unanswered, so the pool answers them.
      lost = std::move(slot.tasks);
      slot.tasks.clear();
      slot.running = 0;
    }
    ++crashed_;
    for (auto& r : lost)
      if (!r.done)
        crashed(std::move(r.t), msg.reason, out);
    auto now = std::chrono::steady_clock::now();
    crashes_.push_back(now);
    while (!crashes_.empty() && now - crashes_.front() > options_.period)
      crashes_.pop_front();
    bool too_many = crashes_.size() > options_.max_restarts;
    dispatch(out); // retries may go to the other workers
    guard.unlock();
    out.send(eu);
    if (too_many) {
      auto err =
        make_error(errc::restart_intensity,
                   "worker pool: more than " + std::to_string(options_.max_restarts)
                     + " workers crashed within the period (last: " + describe(msg.reason) + ")");
      give_up(err, err, eu);
      return;
    }
    auto worker = spawn_worker();
    if (!worker) {
      give_up(worker.error(), worker.error(), eu);
      return;
    }
    guard.lock();
    if (closing_.load(std::memory_order_relaxed)) {
      guard.unlock();
      caf::anon_send_exit(*worker, caf::exit_reason::user_shutdown);
      return;
    }
    install(i, *worker);
    dispatch(out);
    guard.unlock();
    out.send(eu);
    watch(*worker);
  }

  // -- control ----------------------------------------------------------------

  void on_stats(element_ptr x, caf::execution_unit* eu) {
    std::unique_lock<spinlock> guard{mtx_};
    caf::message reply;
    if (closing_.load(std::memory_order_relaxed)) {
      reply = caf::make_message(caf::make_error(caf::sec::request_receiver_down));
    } else {
      uint64_t running = 0;
      uint64_t completed = 0;
      for (std::size_t i = 0; i < size_; ++i) {
        std::lock_guard<spinlock> slot_guard{workers_[i].lock};
        running += workers_[i].running;
        completed += workers_[i].completed;
      }
      reply =
        caf::make_message(uint64_t{size_}, uint64_t{queue_.size()}, running, completed, crashed_);
    }
    guard.unlock();
    task t;
    t.sender = std::move(x->sender);
    t.mid = x->mid;
    t.stages = std::move(x->stages);
    outbox out;
    answer(t, caf::make_mailbox_element(nullptr, caf::message_id{}, {}, std::move(reply)), out);
    out.send(eu);
  }

  void on_cancel(caf::execution_unit* eu) {
    std::unique_lock<spinlock> guard{mtx_};
    auto waiting = std::move(queue_);
    queue_.clear();
    queued_.store(0, std::memory_order_seq_cst);
    guard.unlock();
    outbox out;
    auto err = make_error(errc::cancelled, "cancelled while waiting in the pool");
    for (auto& t : waiting)
      fail(t, err, out);
    out.send(eu);
  }

  void on_exit(const caf::error& reason, caf::execution_unit* eu) {
    give_up(make_error(errc::cancelled, "the worker pool stopped"),
            reason ? reason : caf::error{caf::exit_reason::user_shutdown}, eu);
  }

  /// Fails every task the pool holds with `task_error`, stops the workers
  /// and ends the pool with `reason`.
  void give_up(const caf::error& task_error, caf::error reason, caf::execution_unit* eu) {
    std::unique_lock<spinlock> guard{mtx_};
    if (closing_.load(std::memory_order_relaxed))
      return;
    // From here on, no task gets into a slot (the slots have no actor) or
    // the queue (a sender that finds no slot takes `mtx_` and sees this).
    closing_.store(true, std::memory_order_seq_cst);
    auto waiting = std::move(queue_);
    queue_.clear();
    queued_.store(0, std::memory_order_seq_cst);
    std::vector<caf::actor> workers;
    std::vector<running_task> held;
    for (std::size_t i = 0; i < size_; ++i) {
      auto& slot = workers_[i];
      std::lock_guard<spinlock> slot_guard{slot.lock};
      if (slot.actor)
        workers.push_back(std::move(slot.actor));
      slot.actor = nullptr;
      slot.dying = true;
      for (auto& r : slot.tasks)
        if (!r.done)
          held.push_back(std::move(r));
      slot.tasks.clear();
      slot.running = 0;
    }
    guard.unlock();
    outbox out;
    for (auto& t : waiting)
      fail(t, task_error, out);
    for (auto& r : held)
      fail(r.t, task_error, out);
    out.send(eu);
    for (auto& w : workers)
      w->enqueue(nullptr, caf::make_message_id(),
                 caf::make_message(caf::exit_msg{caf::actor_addr{}, reason}), eu);
    cleanup(std::move(reason), eu);
    unregister_from_system();
  }

  worker_pool::factory_type factory_;
  pool_options options_;
  std::mutex factory_mtx_;
  std::size_t size_;
  std::unique_ptr<worker_slot[]> workers_;
  /// Ids are (the slot's sequence number << slot_bits_) | slot.
  unsigned slot_bits_ = 0;
  /// Round robin's next slot (dispatch without `mtx_`), on a cache line of
  /// its own: only senders write it.
  alignas(64) std::atomic<uint64_t> next_rr_{0};
  /// `queue_.size()`, readable without `mtx_` (on the next cache line: read
  /// with every answer, written only when the queue changes).
  alignas(64) std::atomic<std::size_t> queued_{0};
  /// Written under `mtx_`, read without it on the fast path.
  std::atomic<bool> closing_{false};
  alignas(64) spinlock mtx_;
  // Under `mtx_`:
  std::deque<task> queue_;
  std::deque<std::chrono::steady_clock::time_point> crashes_;
  std::size_t next_ = 0;
  uint64_t crashed_ = 0;
};

} // namespace

std::size_t default_pool_size() noexcept {
  return std::max(1u, std::thread::hardware_concurrency());
}

caf::expected<worker_pool> worker_pool::make(caf::actor_system& sys, factory_type factory,
                                             pool_options options) {
  if (!factory)
    return make_error(errc::invalid_argument, "a worker pool needs a worker factory");
  if (options.workers == 0)
    options.workers = default_pool_size();
  if (options.period <= caf::timespan::zero())
    return make_error(errc::invalid_argument, "the restart period must be positive");
  caf::actor_config cfg{sys.dummy_execution_unit()};
  auto impl = caf::make_actor<pool_core, caf::actor>(sys.next_actor_id(), sys.node(), &sys, cfg,
                                                     std::move(factory), options);
  if (auto err = static_cast<pool_core*>(caf::actor_cast<caf::abstract_actor*>(impl))->start())
    return err;
  return worker_pool{std::move(impl)};
}

caf::expected<pool_stats> worker_pool::stats() const {
  if (!owner_)
    return make_error(errc::invalid_argument, "empty worker pool handle");
  caf::scoped_actor self{owner_->home_system()};
  caf::expected<pool_stats> result{pool_stats{}};
  self->request(owner_, caf::infinite, stats_atom::value)
    .receive(
      [&](uint64_t workers, uint64_t queued, uint64_t running, uint64_t completed,
          uint64_t crashed) {
        result = pool_stats{workers, queued, running, completed, crashed};
      },
      [&](caf::error& err) { result = detail::normalize_request_error(std::move(err)); });
  return result;
}

void worker_pool::cancel_queued() const {
  caf::anon_send(owner_, cancel_atom::value);
}

} // namespace troupe
