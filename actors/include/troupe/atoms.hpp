#pragma once

#include <caf/atom.hpp>

/// @file
/// Message tags of troupe's actor protocols.
///
/// troupe reuses CAF's predefined atoms where one fits (`caf::get_atom`,
/// `caf::update_atom`, `caf::ok_atom`, `caf::timeout_atom`) and adds the ones
/// below. An actor that talks to a troupe primitive directly, instead of
/// through its C++ handle, uses these.

namespace troupe {

/// Wait for an event: `(wait_atom)` or `(wait_atom, caf::timespan)`.
using wait_atom = caf::atom_constant<caf::atom("wait")>;

/// Set an event: `(set_atom)`, answered with `caf::ok_atom`.
using set_atom = caf::atom_constant<caf::atom("set")>;

/// Clear an event: `(clear_atom)`, answered with `caf::ok_atom`.
using clear_atom = caf::atom_constant<caf::atom("clear")>;

/// Take a permit: `(acquire_atom)` or `(acquire_atom, caf::timespan)`.
using acquire_atom = caf::atom_constant<caf::atom("acquire")>;

/// Give a permit back: `(release_atom)`, answered with `caf::ok_atom`.
using release_atom = caf::atom_constant<caf::atom("release")>;

} // namespace troupe
