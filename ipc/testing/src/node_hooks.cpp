#include "troupe/ipc/testing/node_hooks.hpp"

#include "core.hpp"

namespace troupe::ipc::testing {

/// What the hooks reach inside a node (its friend).
struct node_access {
  static detail::core& core_of(node& n) {
    return *n.core_;
  }
};

void stall_next_frame(node& n) {
  node_access::core_of(n).stall_next_frame = true;
}

caf::error write_raw(node& n, uint32_t peer_slot, const std::vector<unsigned char>& bytes) {
  return node_access::core_of(n).write_raw(peer_slot, bytes);
}

caf::expected<uint32_t> slot_of(node& n, const std::string& name) {
  return node_access::core_of(n).slot_of(name);
}

uint64_t unread_bytes(node& n, uint32_t from, uint32_t to) {
  return node_access::core_of(n).unread(from, to);
}

bool take_for_dead(node& n, uint32_t slot) {
  return node_access::core_of(n).take_for_dead(slot);
}

bool claim_as(node& n, uint32_t slot, pid_t claimer) {
  return node_access::core_of(n).claim_as(slot, claimer);
}

void hold_losses(node& n, bool hold) {
  node_access::core_of(n).hold_losses = hold;
}

size_t unhandled_losses(node& n) {
  return node_access::core_of(n).unhandled_losses();
}

size_t known_peers(node& n) {
  return node_access::core_of(n).known_peers();
}

int64_t kill_notices() {
  return detail::kill_notice::alive();
}

} // namespace troupe::ipc::testing
