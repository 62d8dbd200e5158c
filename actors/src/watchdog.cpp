#include "troupe/watchdog.hpp"

#include "troupe/error.hpp"

#include <caf/all.hpp>

#include <iostream>
#include <optional>
#include <unordered_map>

namespace troupe {

namespace {

using watch_atom = caf::atom_constant<caf::atom("tr_watch")>;
using tick_atom = caf::atom_constant<caf::atom("tr_tick")>;

struct watched {
  caf::weak_actor_ptr actor;
  std::string name;
  std::optional<caf::actor_clock::time_point> probe_sent;
  bool reported = false;
};

struct watchdog_state {
  watchdog_options options;
  std::unordered_map<caf::actor_id, watched> actors;
  static constexpr const char* name = "troupe.watchdog";
};

using watchdog_actor = caf::stateful_actor<watchdog_state>;

void default_report(const stall_report& r) {
  std::cerr << "[troupe] watchdog: actor '" << r.name << "' (id " << r.id
            << ") has not reached its mailbox for "
            << std::chrono::duration_cast<std::chrono::milliseconds>(r.blocked_for).count()
            << " ms: a handler blocks a scheduler thread (a blocking call in an event-based "
               "actor?)\n";
}

void probe(watchdog_actor* self, caf::actor_id id, const caf::actor& who) {
  self->state.actors[id].probe_sent = self->clock().now();
  self
    ->request<caf::message_priority::high>(who, caf::infinite, caf::sys_atom::value,
                                           caf::get_atom::value, std::string{"info"})
    .then(
      [self, id](caf::ok_atom, const std::string&, const caf::strong_actor_ptr&,
                 const std::string& name) {
        auto i = self->state.actors.find(id);
        if (i != self->state.actors.end()) {
          i->second.name = name;
          i->second.probe_sent.reset();
          i->second.reported = false;
        }
      },
      [self, id](caf::error&) { self->state.actors.erase(id); }); // it ended
}

caf::behavior watchdog_impl(watchdog_actor* self, watchdog_options options) {
  if (options.interval <= caf::timespan::zero())
    options.interval = options.threshold / 4;
  if (!options.on_stall)
    options.on_stall = default_report;
  self->state.options = std::move(options);
  self->send(self, tick_atom::value);
  return {
    [self](watch_atom, const caf::actor& who, std::string& name) {
      if (!who)
        return;
      self->state.actors[who.id()] =
        watched{caf::actor_cast<caf::weak_actor_ptr>(who), std::move(name), std::nullopt, false};
      probe(self, who.id(), who);
    },
    [self](tick_atom) {
      auto& st = self->state;
      auto now = self->clock().now();
      for (auto i = st.actors.begin(); i != st.actors.end();) {
        auto strong = i->second.actor.lock();
        if (!strong) {
          i = st.actors.erase(i);
          continue;
        }
        auto& w = i->second;
        if (!w.probe_sent) {
          probe(self, i->first, caf::actor_cast<caf::actor>(strong));
        } else if (!w.reported && now - *w.probe_sent > st.options.threshold) {
          w.reported = true;
          st.options.on_stall(stall_report{
            w.name, i->first, std::chrono::duration_cast<caf::timespan>(now - *w.probe_sent)});
        }
        ++i;
      }
      self->delayed_send(self, st.options.interval, tick_atom::value);
    },
  };
}

} // namespace

caf::expected<watchdog> watchdog::make(caf::actor_system& sys, watchdog_options options) {
  if (options.threshold <= caf::timespan::zero())
    return make_error(errc::invalid_argument, "a watchdog needs a positive threshold");
  // Detached: it must tick when every scheduler thread is blocked, which is
  // what it watches for. Hidden: it never holds up the system's shutdown.
  // On CAF's test coordinator no thread blocks (the test runs each actor
  // when it chooses, on virtual time), and a thread of its own would race
  // with the coordinator: there the watchdog is scheduled like any actor.
  if (caf::get_or(sys.config(), "scheduler.policy", caf::atom("stealing")) == caf::atom("testing"))
    return watchdog{sys.spawn<caf::hidden>(watchdog_impl, std::move(options))};
  return watchdog{sys.spawn<caf::detached + caf::hidden>(watchdog_impl, std::move(options))};
}

watchdog::watchdog(caf::actor impl)
  : owner_handle(std::move(impl)),
    // A watchdog left running when the system shuts down could hold the
    // shutdown: its next tick may be armed in a clock that has stopped.
    stopper_(nullptr, [impl = owner_](const void*) {
      caf::anon_send_exit(impl, caf::exit_reason::user_shutdown);
    }) {}

void watchdog::watch(const caf::actor& who) const {
  if (!who)
    return;
  // The name is read here, while the actor may still be idle; a remote
  // actor has none of its own.
  std::string name = "actor " + std::to_string(who.id());
  if (auto* local = dynamic_cast<caf::local_actor*>(caf::actor_cast<caf::abstract_actor*>(who)))
    name = local->name();
  caf::anon_send(owner_, watch_atom::value, who, std::move(name));
}

} // namespace troupe
