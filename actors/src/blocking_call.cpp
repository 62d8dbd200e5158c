#include "troupe/detail/blocking_call.hpp"

#include <atomic>

namespace troupe::detail {

namespace {

std::atomic<const remote_call_hooks*> remote_hooks{nullptr};

} // namespace

lent_caller::~lent_caller() = default;

void install_remote_call_hooks(const remote_call_hooks* hooks) noexcept {
  remote_hooks.store(hooks, std::memory_order_release);
}

const remote_call_hooks* installed_remote_call_hooks() noexcept {
  return remote_hooks.load(std::memory_order_acquire);
}

} // namespace troupe::detail
