#include "troupe/guarded.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <exception>

namespace troupe::detail {

namespace {

thread_local guarded_frame* current_frame = nullptr;

caf::behavior guarded_owner(caf::event_based_actor* self, std::shared_ptr<void> state) {
  return {
    [self, state](caf::update_atom, const guarded_op_ptr& op) -> caf::result<caf::ok_atom> {
      if (op == nullptr)
        return make_error(errc::invalid_argument, "empty guarded operation");
      if (!op->try_start())
        return make_error(errc::timeout, "the operation was not started before its deadline");
      auto err = apply_guarded(self, state.get(), *op, &op->callers());
      op->finish(err);
      if (err)
        return err;
      return caf::ok_atom::value;
    },
  };
}

} // namespace

guarded_call_site locate_guarded_call(const caf::abstract_actor* owner) noexcept {
  guarded_call_site result;
  for (auto frame = current_frame; frame != nullptr; frame = frame->prev) {
    if (frame->owner == owner) {
      result.frame = frame;
      return result;
    }
    if (frame->inherited != nullptr
        && std::find(frame->inherited->begin(), frame->inherited->end(), owner)
             != frame->inherited->end())
      result.cycle = true;
  }
  return result;
}

owner_chain current_owner_chain() {
  owner_chain result;
  for (auto frame = current_frame; frame != nullptr; frame = frame->prev) {
    result.push_back(frame->owner);
    if (frame->inherited != nullptr)
      result.insert(result.end(), frame->inherited->begin(), frame->inherited->end());
  }
  return result;
}

void guarded_op_base::deadline(caf::timespan timeout) noexcept {
  // A timeout too long for the clock's range is no deadline at all.
  if (is_forever(timeout))
    deadline_ = clock_type::time_point::max();
  else
    deadline_ = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(timeout);
}

bool guarded_op_base::try_start() noexcept {
  int expected = queued;
  if (deadline_ != clock_type::time_point::max() && clock_type::now() > deadline_) {
    status_.compare_exchange_strong(expected, abandoned);
    return false;
  }
  return status_.compare_exchange_strong(expected, running);
}

void guarded_op_base::finish(caf::error err) {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    outcome_ = std::move(err);
    status_ = finished;
  }
  cv_.notify_all();
}

bool guarded_op_base::abandon() noexcept {
  int expected = queued;
  return status_.compare_exchange_strong(expected, abandoned) || expected == abandoned;
}

caf::error guarded_op_base::await_finish() {
  std::unique_lock<std::mutex> guard{mtx_};
  cv_.wait(guard, [this] { return status_ == finished; });
  return outcome_;
}

caf::error apply_guarded(const caf::abstract_actor* owner, void* state, guarded_op_base& op,
                         const owner_chain* inherited) noexcept {
  guarded_frame frame{owner, state, inherited, current_frame};
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
