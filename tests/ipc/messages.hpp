#pragma once

// What the ipc tests and their child program (ipc_child.cpp) say to each
// other. Both register the same types under the same names.

#include "troupe/ipc/configure.hpp"

#include <caf/all.hpp>

#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

namespace troupe::test::ipc {

using stats_atom = caf::atom_constant<caf::atom("stats")>;
using flood_atom = caf::atom_constant<caf::atom("flood")>;
using blob_atom = caf::atom_constant<caf::atom("blob")>;
using die_atom = caf::atom_constant<caf::atom("die")>;
using stall_atom = caf::atom_constant<caf::atom("stall")>;
using point_atom = caf::atom_constant<caf::atom("point")>;
using hold_atom = caf::atom_constant<caf::atom("hold")>;
using leave_atom = caf::atom_constant<caf::atom("leave")>;
using linkto_atom = caf::atom_constant<caf::atom("linkto")>;
using count_atom = caf::atom_constant<caf::atom("count")>;
using pid_atom = caf::atom_constant<caf::atom("pid")>;
using ask_atom = caf::atom_constant<caf::atom("ask")>;

/// A user type that both sides register: it travels.
struct point {
  int32_t x = 0;
  int32_t y = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, point& p) {
  return f(caf::meta::type_name("point"), p.x, p.y);
}

/// A type only the test process registers: the child cannot read it.
struct secret {
  std::string text;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, secret& s) {
  return f(caf::meta::type_name("secret"), s.text);
}

/// What `node::spawn_in` makes in the tests: an actor that adds `offset`
/// to what it is sent and says which process it runs in.
inline caf::behavior adder(caf::event_based_actor*, int32_t offset) {
  return {
    [offset](int32_t x) { return x + offset; },
    [](pid_atom) { return static_cast<int32_t>(::getpid()); },
  };
}

/// `adder` as a typed actor (without the pid).
using typed_adder_actor = caf::typed_actor<caf::replies_to<int32_t>::with<int32_t>>;

inline typed_adder_actor::behavior_type typed_adder(typed_adder_actor::pointer, int32_t offset) {
  return {[offset](int32_t x) { return x + offset; }};
}

/// What the process-group tests spawn: an actor that joins the process
/// group `name`, says so to `sink` as `(tag, -1)`, and passes each `int32_t`
/// the group brings on to `sink` as `(tag, x)`; `leave_atom` makes it leave
/// the group (answered with `tag`).
inline caf::behavior pubsub_member(caf::event_based_actor* self, std::string name, int32_t tag,
                                   caf::actor sink) {
  auto grp = self->system().groups().get("troupe", name);
  if (!grp) {
    self->quit(grp.error());
    return {};
  }
  self->join(*grp);
  self->send(sink, tag, int32_t{-1});
  return {
    [self, tag, sink](int32_t x) { self->send(sink, tag, x); },
    [self, tag, g = *grp](leave_atom) {
      self->leave(g);
      return tag;
    },
  };
}

/// The configuration both sides use (the child without `secret`).
struct config : caf::actor_system_config {
  explicit config(bool with_secret = false) {
    add_actor_type("adder", adder);
    add_actor_type("typed_adder", typed_adder);
    add_actor_type("pubsub_member", pubsub_member);
    troupe::ipc::configure(*this);
    set("scheduler.max-threads", 2);
    add_message_type<point>("point");
    add_message_type<std::vector<uint64_t>>("std::vector<uint64_t>");
    if (with_secret)
      add_message_type<secret>("secret");
  }
};

} // namespace troupe::test::ipc
