#include "troupe/guarded.hpp"

#include <caf/all.hpp>

#include <exception>

namespace troupe::detail {

namespace {

thread_local guarded_frame* current_frame = nullptr;

caf::behavior guarded_owner(caf::event_based_actor* self, std::shared_ptr<void> state) {
  return {
    [self, state](caf::update_atom, const guarded_op_ptr& op) -> caf::result<caf::ok_atom> {
      if (op == nullptr)
        return make_error(errc::invalid_argument, "empty guarded operation");
      if (auto err = apply_guarded(self, state.get(), *op))
        return err;
      return caf::ok_atom::value;
    },
  };
}

} // namespace

guarded_frame* find_guarded_frame(const caf::abstract_actor* owner) noexcept {
  for (auto frame = current_frame; frame != nullptr; frame = frame->prev)
    if (frame->owner == owner)
      return frame;
  return nullptr;
}

caf::error apply_guarded(const caf::abstract_actor* owner, void* state,
                         guarded_op_base& op) noexcept {
  guarded_frame frame{owner, state, current_frame};
  current_frame = &frame;
  caf::error result;
  try {
    op.apply(frame);
  } catch (const std::exception& ex) {
    result = make_error(errc::update_failed, ex.what());
  } catch (...) {
    result = make_error(errc::update_failed, "non-standard exception");
  }
  current_frame = frame.prev;
  return result;
}

caf::actor spawn_guarded_owner(caf::actor_system& sys, std::shared_ptr<void> state) {
  return sys.spawn(guarded_owner, std::move(state));
}

} // namespace troupe::detail
