#include "troupe/worker_pool.hpp"

#include "troupe/detail/relay.hpp"
#include "troupe/error.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <deque>
#include <iostream>
#include <memory>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

namespace troupe {

namespace {

/// Private protocol (tasks may be any message, so nothing public is taken).
using stats_atom = caf::atom_constant<caf::atom("tr_pstats")>;
using cancel_atom = caf::atom_constant<caf::atom("tr_pcancel")>;

struct task {
  caf::response_promise promise; // invalid for asynchronous tasks
  caf::message content;
  std::size_t attempts = 0;
};

/// A task handed to the worker in `slot`, as it was then (`worker`).
struct running_task {
  std::size_t slot;
  caf::actor_addr worker;
  task t;
};

struct worker_slot {
  caf::actor actor;
  std::size_t running = 0;
};

struct pool_state {
  worker_pool::factory_type factory;
  pool_options options;
  std::vector<worker_slot> workers;
  std::deque<task> queue;
  /// Tasks handed to a worker, by the id of the request to the worker.
  std::unordered_map<caf::message_id, running_task> running;
  std::deque<std::chrono::steady_clock::time_point> crashes;
  std::size_t next = 0;
  uint64_t completed = 0;
  uint64_t crashed = 0;
  bool closing = false;
  /// Shared with the cleanup that stops the workers when the pool ends.
  std::shared_ptr<std::vector<caf::actor>> live = std::make_shared<std::vector<caf::actor>>();
  static constexpr const char* name = "troupe.worker_pool";

  pool_state() = default;
  pool_state(const pool_state&) = delete;
  pool_state& operator=(const pool_state&) = delete;

  ~pool_state() {
    // Whatever is still held ends here with an answer, never silence.
    auto err = make_error(errc::cancelled, "the worker pool stopped");
    for (auto& t : queue)
      if (t.promise.pending())
        t.promise.deliver(err);
    for (auto& [id, entry] : running)
      if (entry.t.promise.pending())
        entry.t.promise.deliver(err);
  }
};

using pool_actor = caf::stateful_actor<pool_state>;

void dispatch(pool_actor* self);

void fail(task& t, const caf::error& err) {
  if (t.promise.pending() && !t.promise.async())
    t.promise.deliver(err);
}

/// A task whose worker crashed: dispatched again if retries allow.
void crashed_task(pool_actor* self, task t, const caf::error& reason) {
  auto& st = self->state;
  if (t.attempts <= st.options.retries && !st.closing) {
    st.queue.push_front(std::move(t));
    return;
  }
  fail(t, make_error(errc::worker_crashed,
                     "the worker running the task crashed (" + describe(reason) + ")"));
}

void start_worker(pool_actor* self, std::size_t i) {
  auto& st = self->state;
  caf::actor worker = st.factory(self->home_system());
  if (!worker)
    throw std::runtime_error("the worker factory returned no actor");
  self->monitor(worker);
  st.live->push_back(worker);
  st.workers[i].actor = std::move(worker);
  st.workers[i].running = 0;
}

void run_on(pool_actor* self, std::size_t i, task t) {
  auto& st = self->state;
  ++t.attempts;
  ++st.workers[i].running;
  auto id = std::make_shared<caf::message_id>();
  auto finished = [self, id]() -> std::optional<task> {
    auto& st = self->state;
    auto entry = st.running.find(*id);
    if (entry == st.running.end())
      return std::nullopt; // already handled as a crash
    auto result = std::move(entry->second);
    st.running.erase(entry);
    // Only the worker that ran it is less busy now, not its replacement.
    auto& slot = st.workers[result.slot];
    if (slot.actor.address() == result.worker && slot.running > 0)
      --slot.running;
    return std::move(result.t);
  };
  auto content = t.content;
  *id = detail::relay_request(
    self, st.workers[i].actor, std::move(content),
    [self, finished](caf::message answer) {
      if (auto entry = finished()) {
        ++self->state.completed;
        if (entry->promise.pending() && !entry->promise.async())
          entry->promise.deliver(std::move(answer));
        dispatch(self);
      }
    },
    [self, finished](caf::error err) {
      if (auto entry = finished()) {
        if (err == caf::sec::request_receiver_down || is(err, errc::worker_crashed)
            || is(err, errc::peer_lost)) {
          // Bounced from a dead worker's mailbox, what it was running when
          // it died, or a worker in a process that died: a crash, not an
          // answer.
          crashed_task(self, std::move(*entry), err);
        } else {
          ++self->state.completed;
          fail(*entry, err);
        }
        dispatch(self);
      }
    });
  st.running.emplace(*id, running_task{i, st.workers[i].actor.address(), std::move(t)});
}

void dispatch(pool_actor* self) {
  auto& st = self->state;
  auto n = st.workers.size();
  while (!st.queue.empty()) {
    std::optional<std::size_t> target;
    if (st.options.dispatch == dispatch_policy::round_robin) {
      target = st.next;
      st.next = (st.next + 1) % n;
    } else {
      for (std::size_t k = 0; k < n && !target; ++k) {
        auto i = (st.next + k) % n;
        if (st.workers[i].running == 0)
          target = i;
      }
      if (!target)
        return; // everyone is busy: the task waits for an idle worker
      st.next = (*target + 1) % n;
    }
    auto t = std::move(st.queue.front());
    st.queue.pop_front();
    run_on(self, *target, std::move(t));
  }
}

/// Fails every task the pool holds with `task_error` and exits with
/// `reason` (the tasks' error if none is given).
void give_up(pool_actor* self, caf::error task_error, caf::error reason = {}) {
  auto& st = self->state;
  st.closing = true;
  for (auto& t : st.queue)
    fail(t, task_error);
  st.queue.clear();
  for (auto& [id, entry] : st.running)
    fail(entry.t, task_error);
  st.running.clear();
  self->quit(reason ? std::move(reason) : std::move(task_error));
}

caf::behavior pool_impl(pool_actor* self, worker_pool::factory_type factory, pool_options options) {
  auto& st = self->state;
  st.factory = std::move(factory);
  st.options = options;
  st.workers.resize(options.workers);
  self->attach_functor([live = st.live](const caf::error& reason) {
    caf::error why = reason ? reason : caf::error{caf::exit_reason::user_shutdown};
    for (auto& worker : *live)
      worker->enqueue(nullptr, caf::make_message_id(),
                      caf::make_message(caf::exit_msg{caf::actor_addr{}, why}), nullptr);
  });
  try {
    for (std::size_t i = 0; i < st.workers.size(); ++i)
      start_worker(self, i);
  } catch (const std::exception& ex) {
    give_up(self, make_error(errc::start_failed, std::string{"worker pool: "} + ex.what()));
    return {};
  }
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& st = self->state;
    auto w = std::find_if(st.workers.begin(), st.workers.end(),
                          [&](const worker_slot& x) { return x.actor.address() == msg.source; });
    if (w == st.workers.end())
      return;
    auto i = static_cast<std::size_t>(w - st.workers.begin());
    auto& live = *st.live;
    live.erase(std::remove(live.begin(), live.end(), w->actor), live.end());
    ++st.crashed;
    // Its tasks that got no answer (the one it was running; CAF bounces
    // those still in its mailbox): answer them ourselves, as an error to our
    // own response handler, which then releases the handler. CAF 0.17 sends
    // nothing for a promise dropped unanswered.
    auto lost = make_error(errc::worker_crashed, describe(msg.reason));
    for (auto& [id, entry] : st.running)
      if (entry.worker == msg.source)
        self->enqueue(nullptr, id, caf::make_message(lost), self->context());
    auto now = std::chrono::steady_clock::now();
    st.crashes.push_back(now);
    while (!st.crashes.empty() && now - st.crashes.front() > st.options.period)
      st.crashes.pop_front();
    if (st.crashes.size() > st.options.max_restarts) {
      give_up(self, make_error(errc::restart_intensity,
                               "worker pool: more than " + std::to_string(st.options.max_restarts)
                                 + " workers crashed within the period (last: "
                                 + describe(msg.reason) + ")"));
      return;
    }
    try {
      start_worker(self, i);
    } catch (const std::exception& ex) {
      give_up(self, make_error(errc::start_failed, std::string{"worker pool: "} + ex.what()));
      return;
    }
    dispatch(self);
  });
  self->set_exit_handler([self](caf::exit_msg& msg) {
    auto reason = msg.reason ? msg.reason : caf::error{caf::exit_reason::user_shutdown};
    give_up(self, make_error(errc::cancelled, "the worker pool stopped"), std::move(reason));
  });
  self->set_error_handler([self](caf::error& err) {
    // An error sent as a message (not an answer): not a task, and not a
    // reason to die as CAF's default would.
    std::cerr << "[troupe] worker pool: an error message was sent to the pool and dropped: "
              << describe(err) << '\n';
  });
  self->set_default_handler(
    [self](caf::scheduled_actor*, caf::message_view& x) -> caf::result<caf::message> {
      task t;
      if (self->current_message_id().is_request())
        t.promise = self->make_response_promise();
      t.content = x.move_content_to_message();
      self->state.queue.push_back(std::move(t));
      dispatch(self);
      return caf::message{};
    });
  return {
    [self](stats_atom) {
      auto& st = self->state;
      return caf::make_message(uint64_t{st.workers.size()}, uint64_t{st.queue.size()},
                               uint64_t{st.running.size()}, st.completed, st.crashed);
    },
    [self](cancel_atom) {
      auto& st = self->state;
      for (auto& t : st.queue)
        fail(t, make_error(errc::cancelled, "cancelled while waiting in the pool"));
      st.queue.clear();
    },
  };
}

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
  caf::scoped_actor self{sys};
  auto impl = sys.spawn(pool_impl, std::move(factory), options);
  self->monitor(impl);
  caf::error err;
  self->request(impl, caf::infinite, stats_atom::value)
    .receive([](uint64_t, uint64_t, uint64_t, uint64_t, uint64_t) {},
             [&](caf::error& x) { err = std::move(x); });
  if (err) {
    // A failed start ends the pool: its exit reason says why.
    self->receive([&](caf::down_msg& msg) { err = std::move(msg.reason); });
    return err;
  }
  self->demonitor(impl);
  return worker_pool{std::move(impl)};
}

caf::expected<pool_stats> worker_pool::stats() const {
  if (!impl_)
    return make_error(errc::owner_down, "empty worker pool handle");
  caf::scoped_actor self{impl_->home_system()};
  caf::expected<pool_stats> result{pool_stats{}};
  self->request(impl_, caf::infinite, stats_atom::value)
    .receive(
      [&](uint64_t workers, uint64_t queued, uint64_t running, uint64_t completed,
          uint64_t crashed) {
        result = pool_stats{workers, queued, running, completed, crashed};
      },
      [&](caf::error& err) { result = detail::normalize_request_error(std::move(err)); });
  return result;
}

void worker_pool::cancel_queued() const {
  caf::anon_send(impl_, cancel_atom::value);
}

caf::error worker_pool::stop(caf::timespan timeout) const {
  if (!impl_)
    return make_error(errc::owner_down, "empty worker pool handle");
  caf::scoped_actor self{impl_->home_system()};
  self->monitor(impl_);
  self->send_exit(impl_, caf::exit_reason::user_shutdown);
  caf::error result;
  self->receive([](const caf::down_msg&) {},
                caf::after(detail::to_duration(timeout)) >>
                  [&] { result = make_error(errc::timeout, "the pool did not stop in time"); });
  return result;
}

} // namespace troupe
