#include "troupe/owner_handle.hpp"

#include "troupe/error.hpp"

#include <caf/all.hpp>

namespace troupe {

caf::error detail::empty_handle_error() {
  return make_error(errc::invalid_argument, "empty handle (default-constructed or moved from)");
}

caf::error owner_handle::stop(caf::timespan timeout) const {
  if (!owner_)
    return empty_handle_error();
  caf::scoped_actor self{owner_->home_system()};
  // Monitor first: a down message for an owner that is already gone comes at
  // once, so stopping twice is not an error.
  self->monitor(owner_);
  self->send_exit(owner_, caf::exit_reason::user_shutdown);
  // The fresh scoped_actor monitors nothing else: the only down message it
  // can get is the owner's.
  caf::error result;
  self->receive([](const caf::down_msg&) {},
                caf::after(detail::to_duration(timeout)) >>
                  [&] { result = make_error(errc::timeout, "the owner did not stop in time"); });
  return result;
}

} // namespace troupe
