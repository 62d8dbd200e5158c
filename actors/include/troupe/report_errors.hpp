#pragma once

/// @file
/// `troupe::report_unhandled_errors`: makes the errors that end an actor unhandled visible.

#include "troupe/error.hpp"

#include <caf/all.hpp>

#include <functional>
#include <iostream>
#include <string>
#include <utility>

namespace troupe {

/// What to do with an error nobody handled: the actor's name and the error.
using unhandled_error_fn = std::function<void(const std::string&, const caf::error&)>;

/// A guard against the chapter's "forgetting to await": makes the errors
/// that reach `self` unhandled visible.
///
/// In CAF, a failed request whose `then` has no error handler, or an error
/// sent to an actor as a message, goes to the actor's error handler, and the
/// default one ends the actor with that error: only a monitor learns why.
/// After this call the error is first reported (by default one line on
/// stderr naming the actor), then the actor ends with it as before.
inline void report_unhandled_errors(caf::scheduled_actor* self, unhandled_error_fn report = {}) {
  if (!report)
    report = [](const std::string& name, const caf::error& err) {
      std::cerr << "[troupe] actor '" << name << "': unhandled error " << describe(err) << '\n';
    };
  self->set_error_handler([report = std::move(report)](caf::scheduled_actor* me, caf::error& err) {
    report(me->name(), err);
    me->quit(err);
  });
}

} // namespace troupe
