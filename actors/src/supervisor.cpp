#include "troupe/supervisor.hpp"

#include "troupe/detail/relay.hpp"
#include "troupe/error.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <deque>
#include <iostream>
#include <random>
#include <unordered_map>
#include <unordered_set>

namespace troupe {

namespace {

// -- private protocol -----------------------------------------------------------

/// Supervisor to stable handle: `(incarn_atom, caf::actor)`, the child's new
/// incarnation.
using incarn_atom = caf::atom_constant<caf::atom("tr_incarn")>;
/// Supervisor to stable handle: the child is gone for good.
using gone_atom = caf::atom_constant<caf::atom("tr_gone")>;
/// Supervisor to itself: a backoff delay ended.
using restart_atom = caf::atom_constant<caf::atom("tr_restart")>;
/// Supervisor to itself: a child did not stop within its shutdown timeout.
using stop_timeout_atom = caf::atom_constant<caf::atom("tr_stopto")>;

bool is_normal_exit(const caf::error& reason) {
  return !reason || reason == caf::exit_reason::normal || reason == caf::exit_reason::user_shutdown;
}

// -- stable handle ----------------------------------------------------------------

/// A message that arrived while there was no incarnation to forward it to.
struct held_message {
  caf::strong_actor_ptr sender;
  caf::response_promise promise; // valid for requests only
  caf::message content;
};

/// A request forwarded to an incarnation, waiting for its answer.
struct in_flight_request {
  caf::response_promise promise;
  caf::actor_addr target;
};

struct stable_handle_state {
  /// Weak on purpose: the supervisor holds its handles, so a strong
  /// reference back would keep both alive forever.
  caf::actor_addr supervisor;
  caf::actor current;
  bool gone = false;
  std::size_t max_buffered = 0;
  std::string child_name;
  std::deque<held_message> held;
  /// Requests forwarded to an incarnation and not answered yet, by the id
  /// of the forwarded request.
  std::unordered_map<caf::message_id, in_flight_request> in_flight;
  static constexpr const char* name = "troupe.stable_handle";
};

using stable_handle_actor = caf::stateful_actor<stable_handle_state>;

caf::error child_down(const stable_handle_state& st, const char* what) {
  return make_error(errc::child_down, "child '" + st.child_name + "' " + what);
}

/// Forwards one message to the current incarnation. A request goes out as a
/// request of the handle's own, so the handle sees its answer and can fail
/// it if the incarnation dies first.
void forward(stable_handle_actor* self, caf::strong_actor_ptr sender, caf::response_promise promise,
             caf::message content) {
  auto& st = self->state;
  if (!promise.pending() || promise.async()) {
    caf::send_as(caf::actor_cast<caf::actor>(sender), st.current, std::move(content));
    return;
  }
  auto answered = [self](caf::message_id id) -> std::optional<caf::response_promise> {
    auto& flights = self->state.in_flight;
    auto i = flights.find(id);
    if (i == flights.end())
      return std::nullopt; // already failed: the incarnation died first
    auto promise = std::move(i->second.promise);
    flights.erase(i);
    return promise;
  };
  // A request to an actor in another process that died fails with
  // `peer_lost`: to the caller, that is the child going down like any other.
  bool remote = st.current.node() != self->node();
  auto id = std::make_shared<caf::message_id>();
  *id = detail::relay_request(
    self, st.current, std::move(content),
    [answered, id](caf::message answer) {
      if (auto promise = answered(*id))
        promise->deliver(std::move(answer));
    },
    [self, answered, id, remote](caf::error err) {
      if (auto promise = answered(*id)) {
        // CAF bounces what was still in a dead incarnation's mailbox.
        if (err == caf::sec::request_receiver_down || (remote && is(err, errc::peer_lost)))
          err = child_down(self->state, "terminated before answering");
        promise->deliver(std::move(err));
      }
    });
  st.in_flight.emplace(*id, in_flight_request{promise, st.current.address()});
}

void fail_all(stable_handle_actor* self, const caf::error& err) {
  auto& st = self->state;
  for (auto& [id, request] : st.in_flight)
    request.promise.deliver(err);
  st.in_flight.clear();
  for (auto& msg : st.held)
    if (msg.promise.pending() && !msg.promise.async())
      msg.promise.deliver(err);
  st.held.clear();
}

/// Takes a message for the child: forwards it, holds it during a restart,
/// or fails it once the child is gone.
void accept(stable_handle_actor* self, caf::message content) {
  auto& st = self->state;
  auto sender = self->current_sender();
  auto is_request = self->current_message_id().is_request();
  caf::response_promise promise;
  if (is_request)
    promise = self->make_response_promise();
  if (st.gone) {
    if (is_request)
      promise.deliver(child_down(st, "is gone and will not be restarted"));
    return;
  }
  if (st.current) {
    forward(self, std::move(sender), std::move(promise), std::move(content));
    return;
  }
  if (st.held.size() >= st.max_buffered) {
    if (is_request)
      promise.deliver(child_down(st, "is restarting and its handle is full"));
    else
      std::cerr << "[troupe] stable handle of '" << st.child_name
                << "': full while the child restarts, a message was dropped\n";
    return;
  }
  st.held.push_back(held_message{std::move(sender), std::move(promise), std::move(content)});
}

caf::behavior stable_handle(stable_handle_actor* self, caf::actor_addr supervisor,
                            std::string child_name, std::size_t max_buffered) {
  auto& st = self->state;
  st.supervisor = supervisor;
  st.child_name = std::move(child_name);
  st.max_buffered = max_buffered;
  self->monitor(supervisor);
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& st = self->state;
    if (msg.source == st.supervisor) {
      fail_all(self, child_down(st, "is gone: its supervisor terminated"));
      self->quit(msg.reason);
      return;
    }
    // An incarnation died: what it had not answered fails now. If it is
    // the current one, new messages wait for the next incarnation (or
    // `gone`); the supervisor may also have sent the next one already.
    if (st.current && msg.source == st.current.address())
      st.current = nullptr;
    // CAF 0.17 sends nothing for a promise dropped unanswered, so answer
    // each such request ourselves, as an error to our own response
    // handler: it delivers the error and releases the handler.
    auto err = child_down(st, "terminated before answering");
    for (auto& [id, request] : st.in_flight)
      if (request.target == msg.source)
        self->enqueue(nullptr, id, caf::make_message(err), self->context());
  });
  self->set_exit_handler([self](caf::exit_msg& msg) {
    // Not from a link of ours (the handle links to nobody): someone sent an
    // exit to the stable handle. It is meant for the child.
    auto& st = self->state;
    if (st.current)
      self->send_exit(st.current, std::move(msg.reason));
    else
      std::cerr << "[troupe] stable handle of '" << st.child_name
                << "': exit message while no incarnation runs (dropped)\n";
  });
  self->set_default_handler(
    [self](caf::scheduled_actor*, caf::message_view& x) -> caf::result<caf::message> {
      accept(self, x.move_content_to_message());
      return caf::message{};
    });
  // An error sent as a message (not an answer) is a message for the child
  // like any other; CAF's default would end the handle instead.
  self->set_error_handler([self](caf::error& err) { accept(self, caf::make_message(err)); });
  return {
    [self](incarn_atom, caf::actor incarnation) {
      auto& st = self->state;
      if (caf::actor_cast<caf::actor_addr>(self->current_sender()) != st.supervisor)
        return;
      st.current = std::move(incarnation);
      self->monitor(st.current);
      auto held = std::move(st.held);
      st.held.clear();
      for (auto& msg : held)
        forward(self, std::move(msg.sender), std::move(msg.promise), std::move(msg.content));
    },
    [self](gone_atom) {
      auto& st = self->state;
      if (caf::actor_cast<caf::actor_addr>(self->current_sender()) != st.supervisor)
        return;
      st.gone = true;
      st.current = nullptr;
      fail_all(self, child_down(st, "is gone and will not be restarted"));
    },
  };
}

// -- supervisor -------------------------------------------------------------------

struct child_slot {
  child_spec spec;
  caf::actor handle;      // the stable handle
  caf::actor incarnation; // null while not running
  bool done = false;      // ended for good (temporary, or transient after a normal exit)
  std::size_t consecutive_restarts = 0;
  caf::actor_clock::time_point started;
};

enum class phase {
  running,
  stopping_for_restart, // stopping siblings before a restart batch
  backing_off,          // waiting for a backoff delay
  shutting_down,        // stopping everything, then exit
};

struct supervisor_state {
  supervisor_flags flags;
  std::vector<child_slot> children;
  /// When the recent restarts happened, by the actor clock (virtual time
  /// under CAF's test coordinator).
  std::deque<caf::actor_clock::time_point> restarts;
  phase mode = phase::running;
  /// Children to stop, one at a time, first to last.
  std::deque<std::size_t> stop_queue;
  std::optional<std::size_t> stopping;
  uint64_t stop_token = 0;
  /// Children to start (in order) once the stops are done.
  std::vector<std::size_t> restart_batch;
  /// The child whose crash started the current restart (for the backoff),
  /// and why it ended (for `on_event`).
  std::size_t crashed = 0;
  caf::error crash_reason;
  uint64_t backoff_token = 0;
  /// Terminations that arrived while a restart was in progress.
  std::deque<std::pair<std::size_t, caf::error>> deferred;
  caf::error exit_reason;
  caf::error start_error;
  std::mt19937_64 rng{std::random_device{}()};
  /// The running incarnations, shared with the cleanup that stops them if
  /// the supervisor ends without an orderly shutdown (killed, unreachable).
  std::shared_ptr<std::vector<caf::actor>> live = std::make_shared<std::vector<caf::actor>>();
  static constexpr const char* name = "troupe.supervisor";
};

using supervisor_actor = caf::stateful_actor<supervisor_state>;

void handle_termination(supervisor_actor* self, std::size_t i, caf::error reason);

/// Tells the program's `on_event`, if any, what just happened.
void notify(supervisor_actor* self, supervisor_event::kind what, const std::string& child,
            const caf::error& reason) {
  auto& callback = self->state.flags.on_event;
  if (!callback)
    return;
  try {
    callback(supervisor_event{what, child, reason});
  } catch (const std::exception& ex) {
    std::cerr << "[troupe] supervisor: on_event threw: " << ex.what() << '\n';
  } catch (...) {
    std::cerr << "[troupe] supervisor: on_event threw a non-standard exception\n";
  }
}

/// Forgets the incarnation of child `i`, which terminated.
void retire(supervisor_actor* self, std::size_t i) {
  auto& st = self->state;
  auto& slot = st.children[i];
  auto& live = *st.live;
  live.erase(std::remove(live.begin(), live.end(), slot.incarnation), live.end());
  slot.incarnation = nullptr;
}

std::optional<std::size_t> index_of(supervisor_actor* self, const caf::actor_addr& who) {
  auto& cs = self->state.children;
  for (std::size_t i = 0; i < cs.size(); ++i)
    if (cs[i].incarnation && cs[i].incarnation.address() == who)
      return i;
  return std::nullopt;
}

/// Starts one incarnation of child `i`; returns the failure, if any.
caf::error start_child(supervisor_actor* self, std::size_t i) {
  auto& slot = self->state.children[i];
  // Every attempt counts for the backoff, a failed one too.
  slot.started = self->clock().now();
  caf::actor incarnation;
  try {
    incarnation = slot.spec.start(self->home_system());
  } catch (const std::exception& ex) {
    return make_error(errc::start_failed, "child '" + slot.spec.name + "': " + ex.what());
  } catch (...) {
    return make_error(errc::start_failed, "child '" + slot.spec.name + "': non-standard exception");
  }
  if (!incarnation)
    return make_error(errc::start_failed,
                      "child '" + slot.spec.name + "': the start function returned no actor");
  // The monitor reports the child's end. No link: a crash would then also
  // arrive as an exit message, possibly after the restart, and look like a
  // request to shut down. The supervisor's own end takes its children
  // along through `live` (see supervisor_impl).
  self->monitor(incarnation);
  self->state.live->push_back(incarnation);
  slot.incarnation = incarnation;
  self->send(slot.handle, incarn_atom::value, std::move(incarnation));
  return caf::none;
}

void finish_shutdown(supervisor_actor* self) {
  auto& st = self->state;
  // What the children's factories hold (a child process, say) ends here,
  // before anyone sees the supervisor go, not whenever CAF frees its state.
  for (auto& slot : st.children)
    slot.spec.start = nullptr;
  for (auto& slot : st.children)
    self->send(slot.handle, gone_atom::value);
  self->quit(st.exit_reason);
}

void run_restart_batch(supervisor_actor* self);

/// Stops the children in `stop_queue` one at a time; then goes on with the
/// restart batch or the exit.
void stop_next(supervisor_actor* self) {
  auto& st = self->state;
  while (!st.stop_queue.empty()) {
    auto i = st.stop_queue.front();
    auto& slot = st.children[i];
    if (!slot.incarnation) {
      st.stop_queue.pop_front();
      continue;
    }
    st.stopping = i;
    self->send_exit(slot.incarnation, caf::exit_reason::user_shutdown);
    ++st.stop_token;
    if (!detail::is_forever(slot.spec.shutdown_timeout))
      self->delayed_send(self, slot.spec.shutdown_timeout, stop_timeout_atom::value, st.stop_token);
    return;
  }
  st.stopping.reset();
  if (st.mode == phase::shutting_down) {
    finish_shutdown(self);
    return;
  }
  // Stops for a restart are done: wait out the backoff, if any. The
  // restart goes through the mailbox either way, so a run of failing
  // restarts is a loop of messages, not a recursion.
  caf::timespan delay{0};
  if (st.flags.backoff) {
    auto& b = *st.flags.backoff;
    auto base = b.min;
    // Double per consecutive restart of the child that crashed, up to max.
    for (std::size_t k = 1; k < st.children[st.crashed].consecutive_restarts && base < b.max; ++k)
      base = base > b.max / 2 ? b.max : 2 * base;
    base = std::min(base, b.max);
    if (b.jitter > 0) {
      std::uniform_real_distribution<double> spread{-b.jitter, b.jitter};
      base = std::chrono::duration_cast<caf::timespan>(base * (1.0 + spread(st.rng)));
    }
    delay = std::max<caf::timespan>(base, caf::timespan{0});
  }
  st.mode = phase::backing_off;
  ++st.backoff_token;
  if (delay > caf::timespan{0})
    self->delayed_send(self, delay, restart_atom::value, st.backoff_token);
  else
    self->send(self, restart_atom::value, st.backoff_token);
}

/// Stops every running child in reverse order, then exits with `reason`.
void shut_down(supervisor_actor* self, caf::error reason) {
  auto& st = self->state;
  if (st.mode == phase::shutting_down)
    return;
  st.mode = phase::shutting_down;
  st.exit_reason = std::move(reason);
  st.restart_batch.clear();
  st.deferred.clear();
  st.stop_queue.clear();
  for (auto i = st.children.size(); i-- > 0;)
    st.stop_queue.push_back(i);
  if (!st.stopping)
    stop_next(self);
}

void run_restart_batch(supervisor_actor* self) {
  auto& st = self->state;
  st.mode = phase::running;
  auto batch = std::move(st.restart_batch);
  st.restart_batch.clear();
  for (auto i : batch) {
    if (st.children[i].done || st.children[i].incarnation)
      continue;
    if (auto err = start_child(self, i)) {
      // A failed restart is a crash of its own and counts against the
      // intensity like one.
      st.deferred.emplace_back(i, std::move(err));
    } else {
      notify(self, supervisor_event::kind::restarted, st.children[i].spec.name, st.crash_reason);
    }
  }
  while (st.mode == phase::running && !st.deferred.empty()) {
    auto [i, reason] = std::move(st.deferred.front());
    st.deferred.pop_front();
    // Stale if the batch started the child again meanwhile.
    if (!st.children[i].incarnation && !st.children[i].done)
      handle_termination(self, i, std::move(reason));
  }
}

/// Records a restart; returns false if that exceeds the intensity.
bool within_intensity(supervisor_actor* self) {
  auto& st = self->state;
  auto now = self->clock().now();
  st.restarts.push_back(now);
  while (!st.restarts.empty() && now - st.restarts.front() > st.flags.period)
    st.restarts.pop_front();
  return st.restarts.size() <= st.flags.max_restarts;
}

void handle_termination(supervisor_actor* self, std::size_t i, caf::error reason) {
  auto& st = self->state;
  auto& slot = st.children[i];
  if (slot.incarnation)
    retire(self, i);
  if (st.mode != phase::running) {
    // During a restart, a member of the batch is restarted anyway; anyone
    // else's termination is handled once the batch runs.
    auto& batch = st.restart_batch;
    if (st.mode != phase::shutting_down && std::find(batch.begin(), batch.end(), i) == batch.end())
      st.deferred.emplace_back(i, std::move(reason));
    return;
  }
  bool normal = is_normal_exit(reason);
  if (slot.spec.restart == restart_policy::temporary
      || (slot.spec.restart == restart_policy::transient && normal)) {
    slot.done = true;
    self->send(slot.handle, gone_atom::value);
    return;
  }
  if (!within_intensity(self)) {
    notify(self, supervisor_event::kind::gave_up, slot.spec.name, reason);
    shut_down(self, make_error(errc::restart_intensity,
                               "child '" + slot.spec.name + "' terminated (" + describe(reason)
                                 + "), more than " + std::to_string(st.flags.max_restarts)
                                 + " restarts within the period"));
    return;
  }
  // Backoff counts consecutive restarts of a child that did not stay up.
  auto lived = self->clock().now() - slot.started;
  slot.consecutive_restarts = lived > st.flags.period ? 1 : slot.consecutive_restarts + 1;
  // The children the strategy affects: they are stopped (in reverse order)
  // and started again (in order), except temporary ones, which end.
  std::size_t first = i;
  std::size_t last = i + 1;
  if (st.flags.strategy == restart_strategy::one_for_all)
    first = 0;
  if (st.flags.strategy != restart_strategy::one_for_one)
    last = st.children.size();
  st.mode = phase::stopping_for_restart;
  st.crashed = i;
  st.crash_reason = reason;
  st.restart_batch.clear();
  st.stop_queue.clear();
  for (auto j = first; j < last; ++j) {
    auto& sibling = st.children[j];
    if (sibling.done)
      continue;
    if (sibling.spec.restart == restart_policy::temporary) {
      sibling.done = true;
      self->send(sibling.handle, gone_atom::value);
    } else {
      st.restart_batch.push_back(j);
    }
  }
  for (auto j = last; j-- > first;)
    if (j != i && st.children[j].incarnation)
      st.stop_queue.push_back(j);
  stop_next(self);
}

caf::behavior supervisor_impl(supervisor_actor* self, supervisor_flags flags,
                              std::vector<child_spec> specs) {
  auto& st = self->state;
  st.flags = flags;
  for (auto& spec : specs) {
    child_slot slot;
    slot.handle =
      self->home_system().spawn(stable_handle, self->address(), spec.name, flags.max_buffered);
    slot.spec = std::move(spec);
    st.children.push_back(std::move(slot));
  }
  self->set_down_handler([self](caf::down_msg& msg) {
    auto i = index_of(self, msg.source);
    if (!i)
      return;
    auto& st = self->state;
    if (st.stopping == *i) {
      retire(self, *i);
      st.stop_queue.erase(std::remove(st.stop_queue.begin(), st.stop_queue.end(), *i),
                          st.stop_queue.end());
      stop_next(self);
      return;
    }
    handle_termination(self, *i, std::move(msg.reason));
  });
  self->set_exit_handler([self](caf::exit_msg& msg) {
    // From our own supervisor, or someone who wants us gone.
    if (!is_normal_exit(msg.reason) || msg.reason == caf::exit_reason::user_shutdown)
      shut_down(self, std::move(msg.reason));
  });
  self->attach_functor([live = st.live](const caf::error& reason) {
    // Ended without an orderly shutdown: the children go too.
    caf::error why = is_normal_exit(reason) ? caf::error{caf::exit_reason::user_shutdown} : reason;
    for (auto& child : *live)
      child->enqueue(nullptr, caf::make_message_id(),
                     caf::make_message(caf::exit_msg{caf::actor_addr{}, why}), nullptr);
  });
  // Start the children in order; if one fails, stop those already started.
  for (std::size_t i = 0; i < st.children.size(); ++i) {
    if (auto err = start_child(self, i)) {
      st.start_error = err;
      shut_down(self, std::move(err));
      break;
    }
  }
  return {
    [self](caf::get_atom) -> caf::result<std::vector<caf::actor>> {
      auto& st = self->state;
      if (st.start_error)
        return st.start_error;
      std::vector<caf::actor> result;
      for (auto& slot : st.children)
        result.push_back(slot.handle);
      return result;
    },
    [self](caf::get_atom, const std::string& name) -> caf::result<caf::actor> {
      for (auto& slot : self->state.children)
        if (slot.spec.name == name)
          return slot.handle;
      return make_error(errc::invalid_argument, "no child named '" + name + "'");
    },
    [self](restart_atom, uint64_t token) {
      auto& st = self->state;
      if (st.mode == phase::backing_off && token == st.backoff_token)
        run_restart_batch(self);
    },
    [self](stop_timeout_atom, uint64_t token) {
      auto& st = self->state;
      if (st.stopping && token == st.stop_token) {
        auto& slot = st.children[*st.stopping];
        if (slot.incarnation)
          self->send_exit(slot.incarnation, caf::exit_reason::kill);
      }
    },
  };
}

caf::error validate(const std::vector<child_spec>& specs, const supervisor_flags& flags) {
  std::unordered_set<std::string> names;
  for (auto& spec : specs) {
    if (spec.name.empty())
      return make_error(errc::invalid_argument, "a child spec without a name");
    if (!names.insert(spec.name).second)
      return make_error(errc::invalid_argument, "two children named '" + spec.name + "'");
    if (!spec.start)
      return make_error(errc::invalid_argument, "child '" + spec.name + "' has no start function");
    if (spec.shutdown_timeout < caf::timespan::zero())
      return make_error(errc::invalid_argument,
                        "child '" + spec.name + "' has a negative shutdown timeout");
  }
  if (flags.period <= caf::timespan::zero())
    return make_error(errc::invalid_argument, "the restart period must be positive");
  if (flags.backoff
      && (flags.backoff->min <= caf::timespan::zero() || flags.backoff->max < flags.backoff->min
          || flags.backoff->jitter < 0 || flags.backoff->jitter >= 1))
    return make_error(errc::invalid_argument,
                      "backoff needs 0 < min <= max and a jitter in [0, 1)");
  return caf::none;
}

} // namespace

caf::actor spawn_supervisor(caf::actor_system& sys, supervisor_flags flags,
                            std::vector<child_spec> children) {
  if (auto err = validate(children, flags)) {
    // An actor that fails at once, so a parent supervisor sees a failed
    // start like any other.
    return sys.spawn([err](caf::event_based_actor* self) { self->quit(err); });
  }
  return sys.spawn(supervisor_impl, flags, std::move(children));
}

caf::expected<supervisor> supervisor::make(caf::actor_system& sys, supervisor_flags flags,
                                           std::vector<child_spec> children) {
  if (auto err = validate(children, flags))
    return err;
  std::vector<std::string> names;
  names.reserve(children.size());
  for (auto& spec : children)
    names.push_back(spec.name);
  caf::scoped_actor self{sys};
  auto impl = sys.spawn(supervisor_impl, flags, std::move(children));
  self->monitor(impl);
  caf::expected<std::vector<caf::actor>> handles{caf::error{}};
  self->request(impl, caf::infinite, caf::get_atom::value)
    .receive([&](std::vector<caf::actor>& xs) { handles = std::move(xs); },
             [&](caf::error& err) { handles = std::move(err); });
  if (!handles) {
    // A failed start ends the supervisor: its exit reason says why.
    caf::error reason = handles.error();
    self->receive([&](caf::down_msg& msg) { reason = std::move(msg.reason); });
    return reason;
  }
  self->demonitor(impl);
  std::vector<std::pair<std::string, caf::actor>> named;
  for (std::size_t i = 0; i < names.size(); ++i)
    named.emplace_back(std::move(names[i]), std::move((*handles)[i]));
  return supervisor{std::move(impl), std::move(named)};
}

caf::expected<caf::actor> supervisor::child(const std::string& name) const {
  for (auto& [n, h] : handles_)
    if (n == name)
      return h;
  return make_error(errc::invalid_argument, "no child named '" + name + "'");
}

} // namespace troupe
