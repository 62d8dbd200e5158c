#include "groups.hpp"

#include "core.hpp"
#include "layout.hpp"
#include "troupe/error.hpp"
#include "troupe/ipc/detail/shared_call.hpp"

#include <caf/all.hpp>
#include <caf/thread_hook.hpp>

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

class group_module;

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
  std::shared_mutex subscribers_mtx_;
  std::set<caf::strong_actor_ptr, std::less<>> subscribers_;
  // The relays found at `relays_version_` of `relays_of_`'s name table;
  // looked up again when names or members change, or were incomplete.
  std::mutex relays_mtx_;
  std::shared_ptr<const relay_list> relays_ = std::make_shared<relay_list>();
  const core* relays_of_ = nullptr;
  uint64_t relays_version_ = 0;
  bool relays_complete_ = false;
};

class group_module final : public caf::group_module {
public:
  explicit group_module(caf::actor_system& sys) : caf::group_module(sys, group_module_name) {}

  void stop() override {
    std::map<std::string, caf::intrusive_ptr<process_group>> stopping;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      stopping.swap(groups_);
      carrier_.reset();
    }
    for (auto& entry : stopping)
      entry.second->stop();
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
    if (auto err = source(name))
      return err;
    auto res = get(name);
    if (!res)
      return std::move(res.error());
    storage = std::move(*res);
    return caf::none;
  }

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
  std::mutex mtx_;
  std::map<std::string, caf::intrusive_ptr<process_group>> groups_;
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
  std::unique_lock<std::shared_mutex> guard{subscribers_mtx_};
  auto [pos, added] = subscribers_.emplace(std::move(who));
  if (!added || subscribers_.size() > 1)
    return added;
  // The first subscriber here: the other processes send here from now on.
  if (auto c = module_.carrier()) {
    if (auto err = c->add_subscription(identifier_)) {
      subscribers_.erase(pos);
      report_unjoined(identifier_, err);
      return false;
    }
  }
  return true;
}

void process_group::unsubscribe(const caf::actor_control_block* who) {
  std::unique_lock<std::shared_mutex> guard{subscribers_mtx_};
  auto i = subscribers_.find(who);
  if (i == subscribers_.end())
    return;
  subscribers_.erase(i);
  if (subscribers_.empty())
    if (auto c = module_.carrier())
      c->remove_subscription(identifier_);
}

void process_group::announce(core& c) {
  std::shared_lock<std::shared_mutex> guard{subscribers_mtx_};
  if (subscribers_.empty())
    return;
  if (auto err = c.add_subscription(identifier_))
    report_unjoined(identifier_, err);
}

void process_group::deliver_here(const caf::strong_actor_ptr& sender, const caf::message& msg,
                                 caf::execution_unit* host) {
  std::shared_lock<std::shared_mutex> guard{subscribers_mtx_};
  for (auto& s : subscribers_)
    s->enqueue(sender, caf::make_message_id(), msg, host);
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
  // Another process loads it by name: the same group there.
  auto name = identifier_;
  return sink(name);
}

void process_group::stop() {
  std::unique_lock<std::shared_mutex> guard{subscribers_mtx_};
  subscribers_.clear();
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
