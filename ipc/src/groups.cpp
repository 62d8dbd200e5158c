#include "groups.hpp"

#include "core.hpp"
#include "layout.hpp"
#include "troupe/error.hpp"
#include "troupe/ipc/detail/shared_call.hpp"
#include "troupe/ipc/process_groups.hpp"

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <caf/thread_hook.hpp>

#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <vector>

namespace troupe::ipc::detail {

namespace {

/// What a node sends another's relay: (group, message), from the publisher.
using relay_atom = caf::atom_constant<caf::atom("tgroup_fwd")>;

// What a process of another host sends a gateway (see `group_gateway`):
// (group, its inbox) to subscribe or unsubscribe the inbox, and (group,
// message) from the publisher to send to the group.
using gateway_join_atom = caf::atom_constant<caf::atom("tgrp_join")>;
using gateway_leave_atom = caf::atom_constant<caf::atom("tgrp_leave")>;
using gateway_send_atom = caf::atom_constant<caf::atom("tgrp_send")>;

class group_module;

/// The subscribers of a group in this process.
class subscriber_set {
public:
  /// Adds `who`; the number of subscribers after, or 0 if it was one.
  size_t add(caf::strong_actor_ptr who) {
    std::unique_lock<std::shared_mutex> guard{mtx_};
    return members_.emplace(std::move(who)).second ? members_.size() : 0;
  }

  /// Removes `who`; whether it was the last one.
  bool remove_last(const caf::actor_control_block* who) {
    std::unique_lock<std::shared_mutex> guard{mtx_};
    auto i = members_.find(who);
    if (i == members_.end())
      return false;
    members_.erase(i);
    return members_.empty();
  }

  void deliver(const caf::strong_actor_ptr& sender, const caf::message& msg,
               caf::execution_unit* host) {
    std::shared_lock<std::shared_mutex> guard{mtx_};
    for (auto& s : members_)
      s->enqueue(sender, caf::make_message_id(), msg, host);
  }

  void clear() {
    std::unique_lock<std::shared_mutex> guard{mtx_};
    members_.clear();
  }

  bool empty() {
    std::shared_lock<std::shared_mutex> guard{mtx_};
    return members_.empty();
  }

private:
  std::shared_mutex mtx_;
  std::set<caf::strong_actor_ptr, std::less<>> members_;
};

/// Where a group handle was written: the machine (its boot id) and the run
/// of the troupe group of the writer's node (`core::instance`; empty for
/// none). A handle read on the same machine in the same run of the group is
/// that group by name; elsewhere it is reached through the writer's gateway.
struct group_origin {
  std::string machine;
  std::string troupe_group;
};

/// Writes a group handle: its name, origin and the writer's gateway, the
/// gateway as node and actor id, so that reading it needs a proxy (and a
/// deserializer that can make one) only where the group is distant.
caf::error save_group(caf::serializer& sink, const std::string& name, const group_origin& from,
                      const caf::actor& gateway) {
  auto nid = gateway.node();
  auto aid = gateway.id();
  return sink(const_cast<std::string&>(name), const_cast<std::string&>(from.machine),
              const_cast<std::string&>(from.troupe_group), nid, aid);
}

/// This machine's boot id (empty where the kernel does not say).
const std::string& machine_id() {
  static const std::string id = [] {
    std::ifstream in{"/proc/sys/kernel/random/boot_id"};
    std::string res;
    std::getline(in, res);
    return res;
  }();
  return id;
}

/// One group of the module in this process: its subscribers here, and the
/// relays of the other nodes that have subscribers.
class process_group final : public caf::abstract_group {
public:
  process_group(group_module& mod, std::string name);

  bool subscribe(caf::strong_actor_ptr who) override;
  void unsubscribe(const caf::actor_control_block* who) override;
  void enqueue(caf::strong_actor_ptr sender, caf::message_id, caf::message msg,
               caf::execution_unit* host) override;
  caf::error save(caf::serializer& sink) const override;
  void stop() override;

  /// Hands `msg` to the subscribers in this process.
  void deliver_here(const caf::strong_actor_ptr& sender, const caf::message& msg,
                    caf::execution_unit* host);
  /// Writes this group's entry through `c` if it has subscribers here.
  void announce(core& c);
  /// Drops the relays found through the node that left (and the node with
  /// them, which their proxies hold).
  void forget_relays();

private:
  using relay_list = std::vector<caf::strong_actor_ptr>;
  std::shared_ptr<const relay_list> relays();

  group_module& module_;
  // Taken while the subscription entry is added or removed, so that the
  // entry follows the first and the last subscriber in order.
  std::mutex membership_mtx_;
  subscriber_set subscribers_;
  // The relays found at `relays_version_` of `relays_of_`'s name table;
  // looked up again when names or members change, or were incomplete.
  std::mutex relays_mtx_;
  std::shared_ptr<const relay_list> relays_ = std::make_shared<relay_list>();
  const core* relays_of_ = nullptr;
  uint64_t relays_version_ = 0;
  bool relays_complete_ = false;
};

/// A process group of another host (or another troupe group), reached
/// through the gateway of the process that wrote its handle, over CAF's
/// middleman: its subscribers in this process, and the inbox through which
/// the gateway hands them the group's messages. The inbox joins the group
/// there while this process has subscribers; sends go to the gateway.
class distant_group final : public caf::abstract_group {
public:
  distant_group(group_module& mod, caf::actor gateway, std::string name, group_origin origin);

  /// Spawns the inbox, which holds the group until it stops.
  void start();

  bool subscribe(caf::strong_actor_ptr who) override;
  void unsubscribe(const caf::actor_control_block* who) override;
  void enqueue(caf::strong_actor_ptr sender, caf::message_id, caf::message msg,
               caf::execution_unit* host) override;
  caf::error save(caf::serializer& sink) const override;
  void stop() override;

  void deliver_here(const caf::strong_actor_ptr& sender, const caf::message& msg,
                    caf::execution_unit* host) {
    subscribers_.deliver(sender, msg, host);
  }

  const caf::actor& gateway() const {
    return gateway_;
  }

  const caf::actor& inbox() const {
    return inbox_;
  }

  /// The gateway went: tells the subscribers with a `group_down_msg`, and
  /// each later one when it subscribes.
  void gateway_gone(caf::execution_unit* host);

private:
  caf::actor gateway_;
  group_origin origin_;
  caf::actor inbox_;
  std::mutex membership_mtx_;
  bool gone_ = false; // guarded by membership_mtx_
  subscriber_set subscribers_;
};

class group_module final : public caf::group_module {
public:
  explicit group_module(caf::actor_system& sys) : caf::group_module(sys, group_module_name) {}

  void stop() override {
    std::map<std::string, caf::intrusive_ptr<process_group>> stopping;
    std::map<distant_key, caf::intrusive_ptr<distant_group>> distant;
    std::vector<caf::actor> helpers;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      stopping.swap(groups_);
      distant.swap(distant_);
      helpers.swap(helpers_);
      carrier_.reset();
    }
    for (auto& entry : stopping)
      entry.second->stop();
    for (auto& entry : distant)
      entry.second->stop();
    // Hidden actors the actor system does not wait for: ended here, before
    // its scheduler stops (as CAF's local groups end their brokers).
    caf::scoped_actor self{system(), true};
    for (auto& x : helpers)
      self->send_exit(x, caf::exit_reason::kill);
    self->wait_for(helpers);
  }

  /// Keeps `x` (a gateway, an inbox, a server of `publish_groups_tcp`) to
  /// end it when the module stops.
  void keep(caf::actor x) {
    std::lock_guard<std::mutex> guard{mtx_};
    helpers_.push_back(std::move(x));
  }

  caf::expected<caf::group> get(const std::string& name) override {
    if (name.empty() || name.size() >= actor_name_max)
      return make_error(troupe::errc::invalid_argument, "a process group's name has 1 to "
                                                          + std::to_string(actor_name_max - 1)
                                                          + " characters");
    for (unsigned char c : name)
      if (c < 0x20 || c == 0x7f)
        return make_error(troupe::errc::invalid_argument,
                          "a process group's name holds no control characters");
    std::lock_guard<std::mutex> guard{mtx_};
    auto& slot = groups_[name];
    if (!slot)
      slot = caf::make_counted<process_group>(*this, name);
    return caf::group{slot};
  }

  caf::error load(caf::deserializer& source, caf::group& storage) override {
    std::string name;
    group_origin from;
    caf::node_id nid;
    caf::actor_id aid = 0;
    if (auto err = source(name, from.machine, from.troupe_group, nid, aid))
      return err;
    auto here = origin();
    bool same_group = !here.troupe_group.empty() && here.troupe_group == from.troupe_group
                      && here.machine == from.machine;
    if (nid == system().node() || same_group) {
      auto res = get(name);
      if (!res)
        return std::move(res.error());
      storage = std::move(*res);
      return caf::none;
    }
    // Elsewhere: a proxy of the gateway, through the connection the
    // handle came by.
    caf::strong_actor_ptr gateway;
    if (auto err = caf::load_actor(gateway, source.context(), aid, nid))
      return err;
    if (!gateway)
      return caf::make_error(caf::sec::no_proxy_registry,
                             "no way to reach the gateway of process group '" + name + "'");
    storage = distant(caf::actor_cast<caf::actor>(std::move(gateway)), name, std::move(from));
    return caf::none;
  }

  /// Where this process writes group handles from.
  group_origin origin() {
    auto c = carrier();
    return {machine_id(), c ? c->instance() : std::string{}};
  }

  /// The actor through which processes elsewhere reach this process's
  /// groups; spawned when a handle first leaves.
  caf::actor gateway();

  /// The group `name` behind `gateway`, one per gateway and name while its
  /// gateway lives.
  caf::group distant(caf::actor gateway, const std::string& name, group_origin from) {
    distant_key key{gateway.address(), name};
    std::lock_guard<std::mutex> guard{mtx_};
    auto& slot = distant_[key];
    if (!slot) {
      // Started before any other thread can find it: its inbox is set.
      auto grp = caf::make_counted<distant_group>(*this, std::move(gateway), name, std::move(from));
      grp->start();
      helpers_.push_back(grp->inbox());
      slot = std::move(grp);
    }
    return caf::group{slot};
  }

  /// Its gateway is gone: the next handle read makes a new one (which hears
  /// that at once).
  void forget_distant(const distant_group& grp);

  /// The node that carries the groups across processes, if any.
  std::shared_ptr<core> carrier() {
    std::lock_guard<std::mutex> guard{mtx_};
    return carrier_;
  }

  void attach(const std::shared_ptr<core>& c) {
    std::vector<caf::intrusive_ptr<process_group>> existing;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (carrier_)
        return;
      carrier_ = c;
      for (auto& entry : groups_)
        existing.push_back(entry.second);
    }
    for (auto& g : existing)
      g->announce(*c);
  }

  void detach(const core* c) {
    std::vector<caf::intrusive_ptr<process_group>> existing;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (carrier_.get() != c)
        return;
      carrier_.reset();
      for (auto& entry : groups_)
        existing.push_back(entry.second);
    }
    for (auto& g : existing)
      g->forget_relays();
  }

  /// Hands a message that another node relayed to the group's subscribers
  /// here; a group nobody here asked for has none.
  void deliver(const std::string& name, const caf::strong_actor_ptr& sender,
               const caf::message& msg, caf::execution_unit* host) {
    caf::intrusive_ptr<process_group> g;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      auto i = groups_.find(name);
      if (i == groups_.end())
        return;
      g = i->second;
    }
    g->deliver_here(sender, msg, host);
  }

private:
  using distant_key = std::pair<caf::actor_addr, std::string>;

  std::mutex mtx_;
  std::map<std::string, caf::intrusive_ptr<process_group>> groups_;
  std::map<distant_key, caf::intrusive_ptr<distant_group>> distant_;
  caf::actor gateway_;
  std::vector<caf::actor> helpers_;
  std::shared_ptr<core> carrier_;
};

group_module* module_of(caf::actor_system& sys) {
  auto mod = sys.groups().get_module(group_module_name);
  return mod ? dynamic_cast<group_module*>(&*mod) : nullptr;
}

void report_unjoined(const std::string& name, const caf::error& err) {
  // `join` has no way to return an error (CAF's subscriber mixin only
  // skips a group that refused): say why the actor was not joined.
  std::cerr << "troupe: cannot join process group '" << name << "': " << troupe::describe(err)
            << std::endl;
}

process_group::process_group(group_module& mod, std::string name)
  : caf::abstract_group(mod, std::move(name), mod.system().node()), module_(mod) {}

bool process_group::subscribe(caf::strong_actor_ptr who) {
  if (!who)
    return false;
  auto* raw = who.get();
  std::lock_guard<std::mutex> guard{membership_mtx_};
  auto count = subscribers_.add(std::move(who));
  if (count != 1)
    return count > 0;
  // The first subscriber here: the other processes send here from now on.
  if (auto c = module_.carrier()) {
    if (auto err = c->add_subscription(identifier_)) {
      subscribers_.remove_last(raw);
      report_unjoined(identifier_, err);
      return false;
    }
  }
  return true;
}

void process_group::unsubscribe(const caf::actor_control_block* who) {
  std::lock_guard<std::mutex> guard{membership_mtx_};
  if (subscribers_.remove_last(who))
    if (auto c = module_.carrier())
      c->remove_subscription(identifier_);
}

void process_group::announce(core& c) {
  std::lock_guard<std::mutex> guard{membership_mtx_};
  if (subscribers_.empty())
    return;
  if (auto err = c.add_subscription(identifier_))
    report_unjoined(identifier_, err);
}

void process_group::deliver_here(const caf::strong_actor_ptr& sender, const caf::message& msg,
                                 caf::execution_unit* host) {
  subscribers_.deliver(sender, msg, host);
}

void process_group::forget_relays() {
  std::lock_guard<std::mutex> guard{relays_mtx_};
  relays_ = std::make_shared<relay_list>();
  relays_of_ = nullptr;
  relays_complete_ = false;
}

std::shared_ptr<const process_group::relay_list> process_group::relays() {
  auto c = module_.carrier();
  if (!c)
    return nullptr;
  auto version = c->membership_version();
  std::lock_guard<std::mutex> guard{relays_mtx_};
  if (relays_of_ != c.get() || relays_version_ != version || !relays_complete_) {
    relays_ = std::make_shared<relay_list>(c->subscribed_relays(identifier_, relays_complete_));
    relays_of_ = c.get();
    relays_version_ = version;
  }
  return relays_;
}

void process_group::enqueue(caf::strong_actor_ptr sender, caf::message_id, caf::message msg,
                            caf::execution_unit* host) {
  deliver_here(sender, msg, host);
  // One frame per node with subscribers, however many it has.
  if (auto targets = relays())
    for (auto& relay : *targets)
      relay->enqueue(caf::make_mailbox_element(sender, caf::make_message_id(), {},
                                               relay_atom::value, identifier_, msg),
                     host);
}

caf::error process_group::save(caf::serializer& sink) const {
  // A process of the same troupe group loads it by name: the same group
  // there. Elsewhere it is reached through this process's gateway.
  return save_group(sink, identifier_, module_.origin(), module_.gateway());
}

void process_group::stop() {
  subscribers_.clear();
}

// -- groups of other hosts ----------------------------------------------------------------------

/// The group an inbox serves; dropped when the inbox ends (CAF destroys an
/// actor's state then), which breaks the cycle group -> inbox -> group.
struct inbox_state {
  caf::intrusive_ptr<distant_group> grp;
  static inline const char* name = "troupe.group_inbox";
};

/// Hands what the gateway sends to the subscribers here, with its sender;
/// when the gateway goes (its process, or the connection to its host), the
/// subscribers get a `group_down_msg`, as with CAF's remote groups.
caf::behavior distant_inbox(caf::stateful_actor<inbox_state>* self,
                            caf::intrusive_ptr<distant_group> grp) {
  self->state.grp = std::move(grp);
  self->monitor(self->state.grp->gateway());
  self->set_down_handler([self](caf::down_msg&) {
    self->state.grp->gateway_gone(self->context());
    self->quit();
  });
  self->set_default_handler(
    [self](caf::scheduled_actor*, caf::message_view& x) -> caf::result<caf::message> {
      self->state.grp->deliver_here(self->current_sender(), x.move_content_to_message(),
                                    self->context());
      return caf::message{};
    });
  return {[] {}};
}

distant_group::distant_group(group_module& mod, caf::actor gateway, std::string name,
                             group_origin origin)
  : caf::abstract_group(mod, std::move(name), gateway.node()), gateway_(std::move(gateway)),
    origin_(std::move(origin)) {}

void distant_group::start() {
  inbox_ = system().spawn<caf::hidden>(distant_inbox, caf::intrusive_ptr<distant_group>{this});
}

bool distant_group::subscribe(caf::strong_actor_ptr who) {
  if (!who)
    return false;
  std::lock_guard<std::mutex> guard{membership_mtx_};
  if (gone_) {
    who->enqueue(nullptr, caf::make_message_id(),
                 caf::make_message(caf::group_down_msg{caf::group{this}}), nullptr);
    return false;
  }
  auto count = subscribers_.add(std::move(who));
  if (count == 1)
    caf::anon_send(gateway_, gateway_join_atom::value, identifier_, inbox_);
  return count > 0;
}

void distant_group::gateway_gone(caf::execution_unit* host) {
  {
    std::lock_guard<std::mutex> guard{membership_mtx_};
    gone_ = true;
  }
  subscribers_.deliver(nullptr, caf::make_message(caf::group_down_msg{caf::group{this}}), host);
  static_cast<group_module&>(module()).forget_distant(*this);
}

void distant_group::unsubscribe(const caf::actor_control_block* who) {
  std::lock_guard<std::mutex> guard{membership_mtx_};
  if (subscribers_.remove_last(who))
    caf::anon_send(gateway_, gateway_leave_atom::value, identifier_, inbox_);
}

void distant_group::enqueue(caf::strong_actor_ptr sender, caf::message_id, caf::message msg,
                            caf::execution_unit* host) {
  gateway_->enqueue(caf::make_mailbox_element(std::move(sender), caf::make_message_id(), {},
                                              gateway_send_atom::value, identifier_,
                                              std::move(msg)),
                    host);
}

caf::error distant_group::save(caf::serializer& sink) const {
  return save_group(sink, identifier_, origin_, gateway_);
}

void distant_group::stop() {
  subscribers_.clear(); // the module ends the inbox
}

/// The inboxes of other hosts' processes joined to this process's groups,
/// each with the groups it joined.
struct gateway_state {
  std::map<caf::actor_addr, std::pair<caf::strong_actor_ptr, std::set<std::string>>> joined;
  static inline const char* name = "troupe.group_gateway";
};

/// Stands for this process's groups to processes of other hosts: their
/// inboxes join and leave here, as subscribers of this process, and what
/// they send is sent to the group here (its sender kept).
caf::behavior group_gateway(caf::stateful_actor<gateway_state>* self) {
  auto group_named = [self](const std::string& name) -> caf::intrusive_ptr<caf::abstract_group> {
    auto grp = self->system().groups().get(group_module_name, name);
    if (!grp)
      return nullptr;
    return caf::intrusive_ptr<caf::abstract_group>{grp->get()};
  };
  self->set_down_handler([self, group_named](caf::down_msg& dm) {
    auto i = self->state.joined.find(dm.source);
    if (i == self->state.joined.end())
      return;
    for (auto& name : i->second.second)
      if (auto grp = group_named(name))
        grp->unsubscribe(i->second.first.get());
    self->state.joined.erase(i);
  });
  return {
    [self, group_named](gateway_join_atom, const std::string& name, const caf::actor& inbox) {
      auto grp = group_named(name);
      if (!grp || !inbox || !grp->subscribe(caf::actor_cast<caf::strong_actor_ptr>(inbox)))
        return;
      auto& entry = self->state.joined[inbox.address()];
      if (!entry.first) {
        entry.first = caf::actor_cast<caf::strong_actor_ptr>(inbox);
        self->monitor(inbox);
      }
      entry.second.insert(name);
    },
    [self, group_named](gateway_leave_atom, const std::string& name, const caf::actor& inbox) {
      auto i = self->state.joined.find(inbox.address());
      if (i == self->state.joined.end() || i->second.second.erase(name) == 0)
        return;
      if (auto grp = group_named(name))
        grp->unsubscribe(i->second.first.get());
      if (i->second.second.empty()) {
        self->demonitor(inbox);
        self->state.joined.erase(i);
      }
    },
    [self, group_named](gateway_send_atom, const std::string& name, const caf::message& msg) {
      if (auto grp = group_named(name))
        grp->enqueue(self->current_sender(), caf::make_message_id(), msg, self->context());
    },
  };
}

caf::actor group_module::gateway() {
  std::lock_guard<std::mutex> guard{mtx_};
  if (!gateway_) {
    gateway_ = system().spawn<caf::hidden>(group_gateway);
    helpers_.push_back(gateway_);
    // Found by id when another host's message names it (what CAF's
    // serializer does for an actor handle it writes).
    system().registry().put(gateway_.id(), caf::actor_cast<caf::strong_actor_ptr>(gateway_));
  }
  return gateway_;
}

void group_module::forget_distant(const distant_group& grp) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = distant_.find(distant_key{grp.gateway().address(), grp.identifier()});
  if (i != distant_.end() && i->second.get() == &grp)
    distant_.erase(i);
}

caf::behavior group_relay(caf::event_based_actor* self) {
  return {
    [self](relay_atom, const std::string& name, const caf::message& msg) {
      if (auto* mod = module_of(self->system()))
        mod->deliver(name, self->current_sender(), msg, self->context());
    },
  };
}

/// Hands the actor system under construction to the module's factory:
/// CAF calls thread hooks' `init` before it makes the group modules, and a
/// factory gets no arguments.
struct system_cell {
  caf::actor_system* sys = nullptr;
};

class system_binder final : public caf::thread_hook {
public:
  explicit system_binder(std::shared_ptr<system_cell> cell) : cell_(std::move(cell)) {}
  void init(caf::actor_system& sys) override {
    cell_->sys = &sys;
  }
  void thread_started() override {}
  void thread_terminates() override {}

private:
  std::shared_ptr<system_cell> cell_;
};

} // namespace

void add_group_module(caf::actor_system_config& cfg) {
  auto cell = std::make_shared<system_cell>();
  cfg.add_thread_hook<system_binder>(cell);
  cfg.group_module_factories.emplace_back(
    [cell]() -> caf::group_module* { return new group_module(*cell->sys); });
}

std::string subscription_entry(const std::string& group) {
  return subscription_mark + group;
}

void attach_groups(caf::actor_system& sys, const std::shared_ptr<core>& c) {
  if (auto* mod = module_of(sys))
    mod->attach(c);
}

void detach_groups(caf::actor_system& sys, const core* c) {
  if (auto* mod = module_of(sys))
    mod->detach(c);
}

caf::actor start_group_relay(caf::actor_system& sys) {
  // Served on the reader threads: a group message from another process
  // reaches the subscribers here without a scheduler thread waking up.
  return served_on_readers(sys.spawn(group_relay));
}

} // namespace troupe::ipc::detail

namespace troupe::ipc {

caf::expected<uint16_t> publish_groups_tcp(caf::actor_system& sys, uint16_t port,
                                           const std::string& in) {
  if (!sys.has_middleman())
    return make_error(troupe::errc::invalid_argument,
                      "publish_groups_tcp needs CAF's middleman: call troupe::ipc::configure(cfg) "
                      "before the actor system starts");
  if (!detail::module_of(sys))
    return make_error(troupe::errc::invalid_argument,
                      "publish_groups_tcp needs the group module \"troupe\": call "
                      "troupe::ipc::configure(cfg) before the actor system starts");
  // What CAF's remote_group asks the actor at the port: a group by name.
  auto server = sys.spawn<caf::hidden>([](caf::event_based_actor* self) -> caf::behavior {
    return {
      [self](caf::get_atom, const std::string& name) -> caf::result<caf::group> {
        auto grp = self->system().groups().get(detail::group_module_name, name);
        if (!grp)
          return std::move(grp.error());
        return std::move(*grp);
      },
    };
  });
  auto res = sys.middleman().publish(server, port, in.empty() ? nullptr : in.c_str(), true);
  if (!res)
    caf::anon_send_exit(server, caf::exit_reason::user_shutdown);
  else
    detail::module_of(sys)->keep(server);
  return res;
}

} // namespace troupe::ipc
