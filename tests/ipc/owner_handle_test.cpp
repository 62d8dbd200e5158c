#include "support/owner_checks.hpp"
#include "troupe/ipc/managed_array.hpp"
#include "troupe/ipc/managed_dict.hpp"
#include "troupe/ipc/managed_list.hpp"
#include "troupe/ipc/managed_namespace.hpp"
#include "troupe/ipc/managed_queue.hpp"
#include "troupe/ipc/managed_value.hpp"
#include "troupe/ipc/sync.hpp"

#include <string>

using namespace troupe::test;
namespace tipc = troupe::ipc;

namespace {

/// Calls `check(type, make)` for every handle type of the ipc layer (made
/// in this process; `manager_test` stops one in another process).
template <class Check>
void for_every_type(Check check) {
  using sys_ref = caf::actor_system&;
  check("managed_value", [](sys_ref sys) { return tipc::managed_value<int64_t>::make(sys, 1); });
  check("managed_array", [](sys_ref sys) { return tipc::managed_array<int64_t>::make(sys, 3); });
  check("managed_list", [](sys_ref sys) { return tipc::managed_list<int32_t>::make(sys); });
  check("managed_dict",
        [](sys_ref sys) { return tipc::managed_dict<std::string, std::string>::make(sys); });
  check("managed_queue", [](sys_ref sys) { return tipc::managed_queue<int32_t>::make(sys, 2); });
  check("managed_namespace", [](sys_ref sys) { return tipc::managed_namespace::make(sys); });
  check("lock", [](sys_ref sys) { return tipc::lock::make(sys); });
  check("rlock", [](sys_ref sys) { return tipc::rlock::make(sys); });
  check("semaphore", [](sys_ref sys) { return tipc::semaphore::make(sys, 2); });
  check("bounded_semaphore", [](sys_ref sys) { return *tipc::bounded_semaphore::make(sys, 2); });
  check("condition", [](sys_ref sys) { return tipc::condition::make(sys); });
  check("event", [](sys_ref sys) { return tipc::event::make(sys); });
  check("barrier", [](sys_ref sys) { return *tipc::barrier::make(sys, 2); });
}

} // namespace

TEST_SUITE("ipc.owner_handle") {
  TEST_CASE("stop ends the owner of every ipc handle type before it returns") {
    for_every_type([](const char* type, auto make) { check_stop_ends_the_owner(type, make); });
  }

  TEST_CASE("the owner of every ipc handle type ends with its last handle") {
    for_every_type(
      [](const char* type, auto make) { check_last_handle_ends_the_owner(type, make); });
  }

  TEST_CASE("stop on a moved-from ipc handle of every type is invalid_argument") {
    for_every_type([](const char* type, auto make) { check_empty_handle_cannot_stop(type, make); });
  }
}
