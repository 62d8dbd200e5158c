#pragma once

// Every sync primitive used by several processes at once (sync_test.cpp runs
// it in the test process and in two `troupe-ipc-child contend` children):
// an unguarded read-modify-write of a shared counter under each kind of lock,
// barrier rounds, and an event. A lost update shows that two processes were
// inside a lock at once.

#include "manager_workload.hpp"
#include "troupe/ipc/error.hpp"
#include "troupe/ipc/sync.hpp"

#include <caf/scoped_actor.hpp>

#include <chrono>
#include <cstdint>
#include <string>

namespace troupe::test::ipc {

/// The primitives `run_contended` uses (published as P.lock, P.rlock,
/// P.bsem, P.cond, P.barrier, P.event and the counters P.counters).
struct contended_primitives {
  troupe::ipc::lock lock;
  troupe::ipc::rlock rlock;
  troupe::ipc::bounded_semaphore bsem; // one permit
  troupe::ipc::condition cond;
  troupe::ipc::barrier barrier; // one party per process
  troupe::ipc::event event;
  sarray counters; // one cell per lock: lock, rlock, bsem, cond
};

/// Cells of `contended_primitives::counters`.
constexpr int64_t contended_counters = 4;

/// Runs `rounds` rounds: under each lock in turn (the rlock taken twice,
/// nested) that lock's counter is read and then written back plus one, two
/// separate calls that only the lock keeps together; then every process
/// meets at the barrier. Each counter ends at rounds times the processes. At the end, with
/// `await_event`, waits for the event (which the test process sets). Returns the first error.
inline caf::error run_contended(const contended_primitives& c, caf::scoped_actor& self,
                                int32_t rounds, bool await_event) {
  using troupe::ipc::lease;
  constexpr auto patience = std::chrono::seconds(20);
  auto bump = [&](int64_t cell) {
    return [&c, cell]() -> caf::error {
      auto x = c.counters.get(cell);
      if (!x)
        return x.error();
      return c.counters.set(cell, *x + 1);
    };
  };
  auto under = [&](const troupe::ipc::permits& p, auto body) -> caf::error {
    auto held = lease::acquire(p, self, patience);
    if (!held)
      return held.error();
    if (auto err = body())
      return err;
    return held->release();
  };
  for (int32_t i = 0; i < rounds; ++i) {
    if (auto err = under(c.lock, bump(0)))
      return err;
    if (auto err = under(c.rlock, [&] { return under(c.rlock, bump(1)); }))
      return err;
    if (auto err = under(c.bsem, bump(2)))
      return err;
    if (auto err = under(c.cond, [&]() -> caf::error {
          if (auto err = bump(3)())
            return err;
          return c.cond.notify_all(self);
        }))
      return err;
    if (auto res = c.barrier.wait(self, patience); !res)
      return res.error();
  }
  return await_event ? c.event.wait(patience) : caf::none;
}

} // namespace troupe::test::ipc
