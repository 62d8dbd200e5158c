#pragma once

#include "troupe/atoms.hpp"

#include <caf/atom.hpp>

/// @file
/// Message tags of the managed containers' protocols (`managed_dict`,
/// `managed_list`, `managed_value`, `managed_queue`, `managed_namespace`).
///
/// Each container is an actor; its handle class wraps these messages in
/// blocking calls. An event-based actor talks to a container's actor (the
/// handle's `handle()`, or what `node::lookup` returned) directly with
/// `request(...).then(...)`, using the messages documented in each
/// container's header. Besides the tags below, the protocols use CAF's
/// `caf::get_atom`, `caf::put_atom`, `caf::add_atom`, `caf::delete_atom`,
/// `caf::update_atom`, `caf::join_atom`, `caf::ok_atom` and troupe's
/// `troupe::set_atom` and `troupe::clear_atom`. Errors come back as the
/// request's error: `troupe::errc` values with a message as context.

namespace troupe::ipc {

using troupe::clear_atom;
using troupe::set_atom;

/// `len(x)`: the number of items.
using len_atom = caf::atom_constant<caf::atom("len")>;

/// `k in x`: whether a key or field exists.
using contains_atom = caf::atom_constant<caf::atom("contains")>;

/// `dict.setdefault(k, v)`.
using setdefault_atom = caf::atom_constant<caf::atom("setdefault")>;

/// `dict.pop(k)`, `list.pop(i)`.
using pop_atom = caf::atom_constant<caf::atom("pop")>;

/// `dict.keys()`, the names of a namespace's fields.
using keys_atom = caf::atom_constant<caf::atom("keys")>;

/// `dict.items()`.
using items_atom = caf::atom_constant<caf::atom("items")>;

/// `dict.values()`.
using values_atom = caf::atom_constant<caf::atom("values")>;

/// `dict.popitem()`.
using popitem_atom = caf::atom_constant<caf::atom("popitem")>;

/// `list.count(x)`.
using count_atom = caf::atom_constant<caf::atom("count")>;

/// `list.reverse()`.
using reverse_atom = caf::atom_constant<caf::atom("reverse")>;

/// `list.sort()`.
using sort_atom = caf::atom_constant<caf::atom("sort")>;

/// `queue.full()`.
using full_atom = caf::atom_constant<caf::atom("full")>;

/// `list.append(x)`.
using append_atom = caf::atom_constant<caf::atom("append")>;

/// `list.extend(xs)`.
using extend_atom = caf::atom_constant<caf::atom("extend")>;

/// `list.insert(i, x)`.
using insert_atom = caf::atom_constant<caf::atom("insert")>;

/// `list.remove(x)`.
using remove_atom = caf::atom_constant<caf::atom("remove")>;

/// `list.index(x)`.
using index_atom = caf::atom_constant<caf::atom("index")>;

/// `list[i:j]`.
using slice_atom = caf::atom_constant<caf::atom("slice")>;

/// `list(x)`: a copy of every item.
using snapshot_atom = caf::atom_constant<caf::atom("snapshot")>;

/// Compare-and-set of a `managed_value`.
using cas_atom = caf::atom_constant<caf::atom("cas")>;

/// Take a queue item under a lease.
using lease_atom = caf::atom_constant<caf::atom("lease")>;

/// Acknowledge a leased queue item.
using ack_atom = caf::atom_constant<caf::atom("ack")>;

/// `queue.task_done()`.
using task_done_atom = caf::atom_constant<caf::atom("task_done")>;

} // namespace troupe::ipc
