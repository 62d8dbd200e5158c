// What comes into a node: the reader loop (turns, spinning, parking),
// callers that poll the rings, frame handling and reassembly, lost peers,
// and `reader_unit`, which decides where an actor a frame made ready runs.

#include "core_internal.hpp"
#include "transport/ring.hpp"
#include "troupe/ipc/error.hpp"

#include <caf/all.hpp>
#include <caf/default_attachable.hpp>

#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <iostream>
#include <limits>
#include <unordered_set>

namespace troupe::ipc::detail {

namespace {

/// What this thread used so far: CPU time, and how often it gave up its
/// core (blocked).
struct thread_usage {
  int64_t cpu_ns = 0;
  long blocked = 0;
};

thread_usage usage_of_this_thread() {
  // (getrusage's CPU times are tick-based: off by milliseconds.)
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  rusage ru{};
  ::getrusage(RUSAGE_THREAD, &ru);
  return {int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec, ru.ru_nvcsw};
}

/// Where an actor that a frame made ready runs (see `reader_unit`): the
/// owners served on readers always on the thread that read the frame; the
/// actors that proved slow there, or sent into a full ring, never.
std::mutex placement_mtx;
std::unordered_set<const caf::abstract_actor*> owner_actors;
std::unordered_set<const caf::abstract_actor*> scheduler_actors;
/// Bumped with every change of the two sets.
std::atomic<uint64_t> placement_version{0};

enum class placement { reader, owner, scheduler };

placement placement_of(const caf::abstract_actor* x) {
  // Each thread looks the actor up in its own copy of the sets, taken again
  // when they changed: no lock per lookup (one per actor that wakes up).
  struct cached_sets {
    uint64_t version = ~uint64_t{0};
    std::unordered_set<const caf::abstract_actor*> owners;
    std::unordered_set<const caf::abstract_actor*> schedulers;
  };
  thread_local cached_sets cache;
  if (auto v = placement_version.load(std::memory_order_acquire); v != cache.version) {
    std::lock_guard<std::mutex> guard{placement_mtx};
    cache.owners = owner_actors;
    cache.schedulers = scheduler_actors;
    cache.version = placement_version.load(std::memory_order_relaxed);
  }
  if (cache.owners.count(x) != 0)
    return placement::owner;
  return cache.schedulers.count(x) != 0 ? placement::scheduler : placement::reader;
}

/// Slow runs of actors on a reader (see `reader_unit::run`): an actor is
/// moved to the scheduler after `slow_strikes` of them within a second, so
/// that one long message does not.
struct strikes {
  int count = 0;
  int64_t last_ns = 0;
};
std::unordered_map<const caf::abstract_actor*, strikes> slow_runs;
constexpr int slow_strikes = 3;

/// Counts a slow run of `x`; true once it had `slow_strikes` within a
/// second.
bool strike(caf::abstract_actor* x, int64_t now) {
  bool first = false;
  bool out = false;
  {
    std::lock_guard<std::mutex> guard{placement_mtx};
    auto [i, added] = slow_runs.try_emplace(x);
    first = added;
    auto& s = i->second;
    if (now - s.last_ns > std::chrono::nanoseconds(std::chrono::seconds(1)).count())
      s.count = 0;
    s.last_ns = now;
    out = ++s.count >= slow_strikes;
  }
  if (first)
    x->attach_functor([x] { // runs at once if the actor is already gone
      std::lock_guard<std::mutex> guard{placement_mtx};
      slow_runs.erase(x);
    });
  return out;
}

/// Puts `x` into `set` until it terminates (then its address may be reused).
void remember(caf::abstract_actor* x, std::unordered_set<const caf::abstract_actor*>& set) {
  {
    std::lock_guard<std::mutex> guard{placement_mtx};
    if (!set.insert(x).second)
      return;
    placement_version.fetch_add(1, std::memory_order_release);
  }
  // Runs at once if the actor is already gone.
  x->attach_functor([x, &set] {
    std::lock_guard<std::mutex> guard{placement_mtx};
    set.erase(x);
    placement_version.fetch_add(1, std::memory_order_release);
  });
}

} // namespace

void serve_on_readers(const caf::actor& owner) {
  if (auto* ptr = caf::actor_cast<caf::abstract_actor*>(owner))
    remember(ptr, owner_actors);
}

reader_unit::reader_unit(caf::actor_system* sys, std::atomic<int64_t>* busy_since,
                         std::atomic<int64_t>* last_run, const std::atomic<uint64_t>* backlogged)
  : scoped_execution_unit(sys), busy_since_(busy_since), last_run_(last_run),
    backlogged_(backlogged) {}

void reader_unit::exec_later(caf::resumable* ptr) {
  auto* actor = dynamic_cast<caf::abstract_actor*>(ptr);
  auto where = actor != nullptr && !diverting_ ? placement_of(actor) : placement::scheduler;
  if (where == placement::scheduler)
    scoped_execution_unit::exec_later(ptr);
  else
    ready_.push_back(ready_actor{ptr, actor, where == placement::owner});
}

void reader_unit::run_ready(const std::function<bool()>& input_waiting, bool owners_only) {
  // Owners first (they never block); an owner may make others ready: they
  // join the list.
  others_.clear();
  for (size_t i = 0; i < ready_.size(); ++i) {
    // A copy: what the owner makes ready is appended to `ready_` while it
    // runs, which may move the vector's elements.
    auto x = ready_[i];
    if (x.owner)
      run(x);
    else
      others_.push_back(x);
  }
  ready_.clear();
  // Then at most one other actor runs here: the one carried over from the
  // last turn, else the last made ready. What it makes ready goes to the
  // scheduler: nothing waits behind an actor that may block.
  if (carried_.job != nullptr) {
    others_.push_back(carried_);
    carried_ = ready_actor{};
  }
  bool one_here = !owners_only && !others_.empty();
  for (size_t i = 0; i < others_.size(); ++i) {
    if (!one_here || i + 1 != others_.size()) {
      scoped_execution_unit::exec_later(others_[i].job);
      continue;
    }
    diverting_ = true;
    auto res = run(others_[i]);
    diverting_ = false;
    if (res != caf::resumable::resume_later)
      continue;
    // More in its mailbox than one run takes. Under a stream of input it
    // stays with this thread for the next turn, which first reads at most
    // `frames_per_turn` more frames: decoding and handling take turns on one
    // thread, and the mailbox grows no faster than the actor empties it.
    // Else a worker of the scheduler goes on.
    if (input_waiting() && placement_of(others_[i].actor) != placement::scheduler)
      carried_ = others_[i];
    else
      scoped_execution_unit::exec_later(others_[i].job);
  }
  others_.clear();
}

void reader_unit::hand_over_carried() {
  if (carried_.job == nullptr)
    return;
  scoped_execution_unit::exec_later(carried_.job);
  carried_ = ready_actor{};
}

caf::resumable::resume_result reader_unit::run(const ready_actor& x) {
  auto start = now_ns();
  // A run that took `slow_run` by the clock may have been a preempted one:
  // the next run of that actor is looked at closer (a system call of about
  // a microsecond here, so not every run), and only that one counts.
  bool measured = !x.owner && x.actor == suspect_;
  auto used_before = measured ? usage_of_this_thread() : thread_usage{};
  auto sent_to_full = backlogged_->load(std::memory_order_relaxed);
  busy_since_->store(start, std::memory_order_release);
  auto res = x.job->resume(this, max_throughput);
  busy_since_->store(0, std::memory_order_release);
  if (!x.owner) {
    auto end = now_ns();
    last_run_->store(end, std::memory_order_relaxed);
    constexpr auto slow_ns = std::chrono::nanoseconds(slow_run).count();
    bool slow = false;
    if (measured) {
      // Slow: it used that much CPU time, or took that long and blocked.
      suspect_ = nullptr;
      auto used = usage_of_this_thread();
      slow = used.cpu_ns - used_before.cpu_ns > slow_ns
             || (end - start > slow_ns && used.blocked != used_before.blocked);
    } else if (end - start > slow_ns) {
      suspect_ = x.actor;
    }
    // A send that found a full ring moves it at once: a thread that reads
    // the rings never waits for space, so it would lose its backpressure.
    if (backlogged_->load(std::memory_order_relaxed) != sent_to_full
        || (slow && strike(x.actor, end)))
      remember(x.actor, scheduler_actors);
  }
  switch (res) {
  case caf::resumable::resume_later:
    // More messages than one run: the caller says who goes on (an owner:
    // a worker of the scheduler).
    if (x.owner)
      scoped_execution_unit::exec_later(x.job);
    break;
  case caf::resumable::done:
  case caf::resumable::awaiting_message:
  case caf::resumable::shutdown_execution_unit:
    caf::intrusive_ptr_release(x.job);
    break;
  }
  return res;
}

// -- test hooks: the reader driven by hand ---------------------------------------------

node_stats core::test_feed(uint32_t peer_slot, const unsigned char* bytes, size_t n, uint64_t at) {
  auto p = peer_at(peer_slot);
  if (!p)
    return node_stats{};
  test_forget(*p);
  auto* hdr = p->in.hdr;
  auto cap = p->in.capacity;
  n = std::min<uint64_t>(n, cap);
  auto rec = align8(n);
  // Records start on 8-byte boundaries, as every writer puts them.
  auto head = at & (cap - 1) & ~uint64_t{7};
  for (size_t i = 0; i < rec; ++i)
    p->in.data[(head + i) & (cap - 1)] = i < n ? bytes[i] : 0;
  hdr->head.store(head, std::memory_order_relaxed);
  hdr->tail.store(head + rec, std::memory_order_release);
  auto before = stats();
  {
    // Exactly what the reader thread does with a ring that has input.
    std::lock_guard<std::mutex> reading{drain_mtx_};
    auto was_reader = on_reader_thread;
    on_reader_thread = true;
    holds_rings = true;
    std::atomic<int64_t> busy_since{0};
    std::atomic<int64_t> last_run{0};
    reader_unit ctx{&sys_, &busy_since, &last_run, &backlogged_};
    ctx.proxy_registry_ptr(&proxies_);
    auto unlimited = std::numeric_limits<size_t>::max();
    drain(*p, ctx, unlimited);
    ctx.run_ready([] { return false; });
    run_deferred();
    holds_rings = false;
    on_reader_thread = was_reader;
  }
  auto after = stats();
  test_forget(*p);
  return node_stats{after.frames_sent - before.frames_sent,
                    after.frames_received - before.frames_received,
                    after.frames_rejected - before.frames_rejected};
}

void core::test_forget(peer& p) {
  p.senders.clear();
  p.last_receiver = 0;
  p.last_dest.reset();
  p.assembly.clear();
  p.assembly.shrink_to_fit();
  p.assembly_total = 0;
  auto reason = make_error(troupe::errc::peer_lost, "the test forgot " + describe_peer(p));
  kill_proxies_of(p, reason);
  proxies_.clear();
  fail_pending(p, reason);
  test_take_output(p.slot, nullptr);
}

std::vector<unsigned char> core::test_take_output(uint32_t peer_slot, uint64_t* at) {
  std::vector<unsigned char> res;
  auto p = peer_at(peer_slot);
  if (!p)
    return res;
  std::lock_guard<std::mutex> guard{p->write_mtx};
  {
    std::lock_guard<std::mutex> bl{p->backlog_mtx};
    p->backlog.clear();
    p->has_backlog.store(false, std::memory_order_release);
  }
  auto* hdr = p->out.hdr;
  auto cap = p->out.capacity;
  auto head = hdr->head.load(std::memory_order_acquire);
  auto tail = hdr->tail.load(std::memory_order_acquire);
  for (auto i = head; i != tail; ++i)
    res.push_back(p->out.data[i & (cap - 1)]);
  if (at != nullptr)
    *at = head & (cap - 1);
  // Read as the peer would: the space is the writer's again.
  hdr->head.store(tail, std::memory_order_release);
  return res;
}

caf::strong_actor_ptr core::test_proxy(uint32_t peer_slot, caf::actor_id aid) {
  auto p = peer_at(peer_slot);
  return p ? proxies_.get_or_put(p->nid, aid) : nullptr;
}

void core::test_send_control(uint32_t peer_slot, frame_kind kind, uint64_t receiver,
                             uint64_t sender, const caf::error* reason) {
  if (auto p = peer_at(peer_slot))
    send_control(p, kind, receiver, sender, reason);
}

// -- reading -------------------------------------------------------------------------

bool core::any_input(const std::vector<peer_ptr>& peers) {
  for (auto& p : peers)
    if (ring_reader::has_input(p->in))
      return true;
  return false;
}

void core::defer(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> guard{deferred_mtx_};
    if (!deferred_closed_) {
      deferred_.push_back(std::move(fn));
      fn = nullptr;
    }
  }
  if (fn) {
    // The node left: no reader runs it. Dropped here, outside the lock (it
    // holds proxies, which hold this core: kept, it would keep the core).
    fn = nullptr;
    return;
  }
  if (my_slot_ != nullptr) {
    my_slot_->doorbell.fetch_add(1);
    futex_wake(&my_slot_->doorbell, INT_MAX);
  }
}

void core::run_deferred() {
  std::vector<std::function<void()>> todo;
  {
    std::lock_guard<std::mutex> guard{deferred_mtx_};
    todo.swap(deferred_);
  }
  for (auto& fn : todo)
    fn();
}

core::turn_state::turn_state(core& c, std::atomic<int64_t>* busy_since)
  : ctx(&c.sys_, busy_since != nullptr ? busy_since : &own_busy_since, &c.last_inline_run_,
        &c.backlogged_),
    // The reader thread keeps the peers up to date; others start from now.
    seen_members(busy_since != nullptr
                   ? ~uint32_t{0}
                   : c.seg_->view.header()->members_seq.load(std::memory_order_acquire)) {
  ctx.proxy_registry_ptr(&c.proxies_);
}

void core::catch_up(turn_state& st) {
  // A node joined, left or died since this thread last looked.
  if (auto m = seg_->view.header()->members_seq.load(std::memory_order_acquire);
      m != st.seen_members) {
    st.seen_members = m;
    refresh_peers();
  }
  if (auto v = peers_version_.load(std::memory_order_acquire); v != st.seen_version) {
    st.seen_version = v;
    st.peers = peer_snapshot();
  }
}

bool core::turn(turn_state& st) {
  bool any = false;
  {
    std::unique_lock<std::mutex> reading{drain_mtx_, std::try_to_lock};
    st.busy = !reading.owns_lock();
    // A caller polling while the node leaves stops here (see `leave`).
    if (st.busy || (polling_caller && stop_.load(std::memory_order_acquire))) {
      // The rings are another thread's for now: an actor carried over to
      // this turn goes to the scheduler rather than wait for them.
      st.ctx.hand_over_carried();
      return false;
    }
    struct holding {
      holding() {
        holds_rings = true;
      }
      ~holding() {
        holds_rings = false;
      }
    } rings_held;
    catch_up(st);
    auto before = my_slot_->frames_received.load(std::memory_order_relaxed);
    // At most `frames_per_turn` frames, starting at another ring each turn:
    // a flooded ring holds up neither the others nor the actors run here.
    auto budget = frames_per_turn;
    auto n = st.peers.size();
    for (size_t k = 0; k < n && budget > 0; ++k) {
      auto& p = st.peers[(st.first_peer + k) % n];
      // A lost peer's ring is drained by `handle_losses`, which turns
      // handles of its actors into dead proxies; drained here, they would
      // come out invalid and a link frame among them would be dropped.
      if (!p->lost.load(std::memory_order_acquire))
        any |= drain(*p, st.ctx, budget);
    }
    st.first_peer = n == 0 ? 0 : (st.first_peer + 1) % n;
    st.frames_read += my_slot_->frames_received.load(std::memory_order_relaxed) - before;
    if (!polling_caller)
      handle_losses(st.ctx);
  }
  // The rings are free for others while actors run: one that blocks (in a
  // call to another node, or too long) holds up no input.
  st.ctx.run_ready([this, &st] { return any_input(st.peers); }, st.owners_only);
  if (!polling_caller)
    run_deferred();
  st.backlog = false;
  for (auto& p : st.peers) {
    if (!p->has_backlog.load(std::memory_order_acquire))
      continue;
    std::unique_lock<std::mutex> guard{p->write_mtx, std::try_to_lock};
    caf::error err;
    if (!guard.owns_lock() || !flush_backlog_locked(*p, false, err))
      st.backlog = true;
  }
  return any;
}

bool core::work_waiting(const turn_state& st) {
  if (stop_.load() || peers_version_.load() != st.seen_version || any_input(st.peers)
      || seg_->view.header()->members_seq.load(std::memory_order_acquire) != st.seen_members)
    return true;
  for (auto& p : st.peers)
    if (p->has_backlog.load(std::memory_order_acquire))
      return true;
  {
    std::lock_guard<std::mutex> guard{lost_mtx_};
    if (!lost_.empty())
      return true;
  }
  std::lock_guard<std::mutex> guard{deferred_mtx_};
  return !deferred_.empty();
}

void core::reader_loop() {
  // An actor run here may drop the last handle of this node: the core lives
  // until the loop ends (then ~core, on this thread, detaches it).
  auto keep = shared_from_this();
  on_reader_thread = true;
  turn_state st{*this, &reader_busy_since_};
  auto last_input = steady::now();
  while (!stop_.load(std::memory_order_acquire)) {
    // Busy: a caller is reading the rings (`poll_until`) and hands them
    // back when it stops.
    auto any = turn(st);
    auto now = steady::now();
    if (any) {
      last_input = now;
      continue;
    }
    if (!st.busy && pollers_.load(std::memory_order_acquire) == 0
        && now - last_input < opts_.spin) {
      spin_until_work(st, last_input + opts_.spin);
      continue;
    }
    release_idle_buffers(st);
    park(st);
    last_input = steady::now();
  }
  st.ctx.hand_over_carried();
}

void core::spin_until_work(const turn_state& st, steady::time_point until) {
  // A turn takes three locks: a spinning thread looks at the rings alone,
  // and at the rest (and the clock) every 64th look, when it also yields
  // its core: with more threads to run than cores, a spinner that kept its
  // core would hold up the very thread whose message it waits for (two
  // ping-pongs on two cores fell to one message per spin, 200 us).
  for (unsigned looks = 1;; ++looks) {
    if (any_input(st.peers))
      return;
    if (looks % 64 == 0) {
      if (steady::now() >= until || work_waiting(st))
        return;
      std::this_thread::yield();
    }
    cpu_relax();
  }
}

void core::release_idle_buffers(turn_state& st) {
  std::unique_lock<std::mutex> reading{drain_mtx_, std::try_to_lock};
  if (!reading.owns_lock())
    return;
  for (auto& p : st.peers)
    if (p->assembly.empty() && p->assembly.capacity() != 0)
      std::vector<char>{}.swap(p->assembly);
}

void core::helper_loop(int64_t stuck_since) {
  auto keep = shared_from_this(); // as in `reader_loop`
  on_reader_thread = true;
  turn_state st{*this};
  st.owners_only = true; // a helper must not get stuck in a handler too
  // It reads without parking (writers do not ring it: the reader thread is
  // not parked), looking every millisecond when there is no input.
  while (!stop_.load(std::memory_order_acquire)
         && reader_busy_since_.load(std::memory_order_acquire) == stuck_since) {
    if (!turn(st)) {
      auto seen = my_slot_->doorbell.load(std::memory_order_acquire);
      futex_wait(&my_slot_->doorbell, seen, std::chrono::milliseconds(1));
    }
  }
  helper_done_.store(true, std::memory_order_release);
}

void core::park(turn_state& st) {
  // Park until a writer rings (or a timeout, to retry a backlog).
  auto seen = my_slot_->doorbell.load(std::memory_order_acquire);
  bool alone = false;
  {
    std::lock_guard<std::mutex> guard{park_mtx_};
    reader_asleep_ = true;
    alone = pollers_.load(std::memory_order_relaxed) == 0;
    if (alone)
      my_slot_->parked.store(1, std::memory_order_seq_cst);
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
  // With a caller polling, the input is the caller's until it stops, and
  // then it checks for what it left (`poll_until`). A reader that parks
  // while a caller polls still looks every millisecond: a caller the kernel
  // took off its core must not hold up what comes for the others for long.
  // (One that parked alone before the caller came looks after 250 ms: every
  // writer rings a parked reader, so the timeout only bounds a wake-up that
  // was lost, which `late_wakeups` counts.)
  if (!alone || !work_waiting(st)) {
    using std::chrono::milliseconds;
    auto timeout = st.backlog || !alone ? milliseconds(1) : milliseconds(250);
    futex_wait(&my_slot_->doorbell, seen, timeout);
    if (!st.backlog && unrung_input(st, seen)) {
      // Input that no ring announced is a lost wake-up (every writer rings a
      // parked node, and a caller that stops reading rings for what it
      // left), unless a writer is between publishing and ringing (taken off
      // its core there, on a loaded machine): give it time to ring.
      futex_wait(&my_slot_->doorbell, seen, milliseconds(100));
      if (unrung_input(st, seen))
        late_wakeups_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  std::lock_guard<std::mutex> guard{park_mtx_};
  reader_asleep_ = false;
  my_slot_->parked.store(0, std::memory_order_relaxed);
}

bool core::unrung_input(const turn_state& st, uint32_t seen) {
  return my_slot_->doorbell.load(std::memory_order_acquire) == seen
         && pollers_.load(std::memory_order_acquire) == 0 && any_input(st.peers);
}

void core::poll_until(const std::function<bool()>& done, steady::time_point until) {
  // A thread that holds the rings (draining them) must not wait for itself.
  // The reader thread running an actor does not hold them: it may poll.
  if (holds_rings || my_slot_ == nullptr || steady::now() >= until)
    return;
  turn_state st{*this};
  {
    // From here on, writers leave the reader thread asleep: this thread reads.
    std::lock_guard<std::mutex> guard{park_mtx_};
    if (stop_.load(std::memory_order_acquire))
      return; // the slot may be another node's already
    // One caller at a time: more threads spinning than cores would take the
    // cores from the threads that have work (the owner's, in the other
    // process). The others wait as any blocking receive does; the one that
    // reads hands them their answers.
    if (pollers_.load(std::memory_order_relaxed) != 0)
      return;
    pollers_.store(1, std::memory_order_relaxed);
    my_slot_->parked.store(0, std::memory_order_relaxed);
  }
  // Hands the rings back however this ends (and restores what this thread
  // was: the reader thread may poll from inside an actor it runs).
  struct stop_polling {
    core& self;
    turn_state& st;
    bool was_reader = on_reader_thread;
    bool was_polling = polling_caller;
    bool was_stopped = caller_stopped;
    ~stop_polling() {
      on_reader_thread = was_reader;
      polling_caller = was_polling;
      caller_stopped = was_stopped;
      self.caller_frames_.fetch_add(st.frames_read, std::memory_order_relaxed);
      std::lock_guard<std::mutex> guard{self.park_mtx_};
      self.pollers_.store(0, std::memory_order_relaxed);
      if (!self.reader_asleep_ || self.stop_.load(std::memory_order_acquire))
        return;
      self.my_slot_->parked.store(1, std::memory_order_seq_cst);
      // Pairs with a writer's fence between publishing a frame and reading
      // `parked`: either it saw 1 and rang, or its frame is seen here.
      std::atomic_thread_fence(std::memory_order_seq_cst);
      self.catch_up(st);
      if (self.work_waiting(st)) {
        self.my_slot_->doorbell.fetch_add(1, std::memory_order_release);
        futex_wake(&self.my_slot_->doorbell, 1);
      }
    }
  } guard{*this, st};
  // A caller may hold locks of the user's: only owners (which never block
  // and run no user code) run here; other actors go to the scheduler.
  st.owners_only = true;
  on_reader_thread = true;
  polling_caller = true;
  caller_stopped = false;
  while (!done() && steady::now() < until && !stop_.load(std::memory_order_acquire)) {
    turn(st);
    if (done() || caller_stopped)
      break;
    // Rings held by another thread (the reader, which was spinning when
    // this caller came) are being read for this caller too: give it the
    // core. Spinning here instead kept a reader taken off its core in the
    // middle of a turn from delivering the answer until the budget ran out
    // (a spawn_in took the whole `spin`, 200 us, against 20 us).
    if (st.busy)
      std::this_thread::yield();
    else
      cpu_relax();
  }
}

bool core::drain(peer& p, reader_unit& ctx, size_t& budget) {
  if (!ring_reader::has_input(p.in))
    return false;
  ring_reader in{p.in, sizeof(frame_header)};
  uint64_t frames = 0;
  bool later_node = false;
  auto corrupt = [&](const frame_header* h, const std::string& why) {
    reject(p, h, why + "; dropped the rest of the ring");
    in.drop_all();
    // The writer's node fails the requests it has pending here: some of them
    // may have been in what was dropped.
    if (auto pp = peer_at(p.slot); pp && pp.get() == &p)
      send_control(pp, frame_kind::corrupt, 0, 0);
  };
  for (; frames < budget;) {
    auto found = in.next();
    if (found == ring_reader::status::empty)
      break;
    if (found == ring_reader::status::corrupt) {
      corrupt(nullptr, in.why());
      break;
    }
    auto avail = in.available();
    if (avail < sizeof(frame_header)) {
      corrupt(nullptr, "a truncated frame header");
      break;
    }
    frame_header h;
    std::memcpy(&h, in.data(), sizeof(h));
    if (h.magic != frame_magic) {
      corrupt(nullptr, "a frame with a wrong magic number");
      break;
    }
    auto rec = align8(sizeof(frame_header) + uint64_t{h.length});
    if (rec > avail) {
      corrupt(nullptr, "a frame whose length runs past the written data");
      break;
    }
    if (h.version != frame_version) {
      reject(p, nullptr,
             "a frame of version " + std::to_string(h.version) + " (this node speaks "
               + std::to_string(frame_version) + ")");
      in.consume(rec);
      ++frames;
      continue;
    }
    auto fate = fate_of(p, h);
    if (fate == frame_fate::later || fate == frame_fate::earlier) {
      later_node = fate == frame_fate::later && !p.lost.load(std::memory_order_acquire);
      break;
    }
    if (fate == frame_fate::skip) {
      in.consume(rec);
      continue;
    }
    if (polling_caller && h.kind == static_cast<uint16_t>(frame_kind::kill)) {
      // Killing the proxy runs the functors attached to it: the reader
      // thread takes it from here (see `caller_stopped`).
      caller_stopped = true;
      break;
    }
    if (fate == frame_fate::forged) {
      reject(p, &h,
             "a frame from epoch " + std::to_string(h.from_epoch) + " of slot "
               + std::to_string(p.slot) + ", which has not been claimed that often");
    } else {
      try {
        handle_frame(p, h, in.data() + sizeof(frame_header), ctx);
      } catch (const std::exception& e) {
        reject(p, &h, std::string{"handling the frame threw: "} + e.what());
      } catch (...) {
        reject(p, &h, "handling the frame threw");
      }
    }
    in.consume(rec);
    ++frames;
    // Hand space back early when a lot was consumed, so writers keep going.
    if (in.unreleased() >= p.in.capacity / 4)
      in.release();
  }
  in.release();
  budget -= std::min<size_t>(budget, frames);
  my_slot_->frames_received.fetch_add(frames, std::memory_order_relaxed);
  if (later_node)
    refresh_peers(); // marks `p` lost: its slot has a new node
  return true;
}

core::frame_fate core::fate_of(const peer& p, const frame_header& h) {
  // A frame for an earlier node in this slot: a writer that had not seen it
  // go put it there.
  if (h.to_epoch != my_epoch_)
    return frame_fate::skip;
  if (h.from_epoch == p.epoch)
    return frame_fate::read;
  auto after = [](uint32_t x, uint32_t y) { return static_cast<int32_t>(x - y) > 0; };
  if (after(h.from_epoch, p.epoch)) {
    // The writer's slot has a new node: its frames are for the peer that
    // stands for it, once `p` is handled.
    if (after(h.from_epoch, p.shm->epoch()))
      return frame_fate::forged;
    return frame_fate::later;
  }
  // From an earlier node in that slot: read by its own peer, if this node
  // still has one to handle; else it went before this node knew of it.
  return loss_unhandled(p.slot, h.from_epoch) ? frame_fate::earlier : frame_fate::skip;
}

bool core::loss_unhandled(uint32_t slot, uint32_t epoch) {
  auto same = [&](const peer_ptr& x) { return x && x->slot == slot && x->epoch == epoch; };
  std::lock_guard<std::mutex> guard{peers_mtx_};
  if (same(draining_))
    return true;
  std::lock_guard<std::mutex> lost{lost_mtx_};
  for (const auto* xs : {&lost_, &handling_})
    if (std::any_of(xs->begin(), xs->end(), same))
      return true;
  return false;
}

void core::reject(peer& p, const frame_header* h, const std::string& why) {
  auto n = my_slot_->frames_rejected.fetch_add(1, std::memory_order_relaxed) + 1;
  if (!opts_.quiet && (n <= 10 || n % 1000 == 0))
    std::cerr << "[troupe] group '" << group() << "': rejected a frame from " << describe_peer(p)
              << ": " << why << " (" << n << " rejected so far)\n";
  if (h == nullptr || h->kind != static_cast<uint16_t>(frame_kind::message) || h->sender == 0)
    return;
  auto mid = caf::make_message_id(h->mid);
  if (!mid.is_request())
    return;
  // The requester learns why instead of waiting forever.
  if (auto s = proxies_.get_or_put(p.nid, h->sender))
    s->enqueue(
      caf::make_mailbox_element(nullptr, mid.response_id(), {}, make_error(errc::bad_frame, why)),
      nullptr);
}

void core::handle_frame(peer& p, const frame_header& h, const unsigned char* payload,
                        reader_unit& ctx) {
  auto* bytes = reinterpret_cast<const char*>(payload);
  switch (static_cast<frame_kind>(h.kind)) {
  case frame_kind::message: {
    caf::binary_deserializer src{&ctx, bytes, h.length};
    caf::strong_actor_ptr sender;
    std::vector<caf::strong_actor_ptr> stages;
    caf::error err;
    if ((h.flags & flag_local_sender) != 0) {
      if (h.sender != 0)
        sender = sender_proxy(p, static_cast<caf::actor_id>(h.sender));
      err = src(stages);
    } else {
      err = src(sender, stages);
    }
    auto mid = caf::make_message_id(h.mid);
    caf::mailbox_element_ptr what;
    if (!err) {
      if (is_stream_category(mid)) {
        caf::message msg;
        if (!(err = src(msg))) {
          if (auto why = stream_mismatch(mid, msg)) {
            reject(p, &h, why);
            return;
          }
          what =
            caf::make_mailbox_element(std::move(sender), mid, std::move(stages), std::move(msg));
        }
      } else {
        what = decoder_.decode(src, sender, mid, stages, err);
      }
    }
    if (err) {
      reject(p, &h, "cannot read the message: " + describe(err));
      return;
    }
    if (src.remaining() != 0) {
      reject(p, &h, std::to_string(src.remaining()) + " stray bytes after the message");
      return;
    }
    if (mid.is_response()) {
      std::lock_guard<std::mutex> guard{p.pending_mtx};
      p.pending.erase({static_cast<caf::actor_id>(h.receiver), h.mid});
    }
    auto dest = local_receiver(p, static_cast<caf::actor_id>(h.receiver));
    if (!dest) {
      if (mid.is_request() && what->sender)
        what->sender->enqueue(
          caf::make_mailbox_element(nullptr, mid.response_id(), {},
                                    caf::make_error(caf::sec::request_receiver_down)),
          &ctx);
      return;
    }
    dest->enqueue(std::move(what), &ctx);
    return;
  }
  case frame_kind::announce: {
    auto aid = static_cast<caf::actor_id>(h.receiver);
    auto target = sys_.registry().get(aid);
    auto pp = peer_at(p.slot);
    if (!pp || pp.get() != &p)
      return;
    if (!target) {
      caf::error reason = caf::exit_reason::unknown;
      send_control(pp, frame_kind::kill, aid, 0, &reason);
      return;
    }
    // Once per actor and peer: the kill frame names the actor, not the
    // proxy, so one functor serves every proxy the peer makes of it. (Seen
    // while fuzzing: each announce attached one more functor, so a peer that
    // kept announcing grew the actor's attachables without bound, and the
    // actor's end sent one kill frame per announce.)
    if (!p.announced.insert(aid).second)
      return;
    target->get()->attach(std::make_unique<kill_notice>(shared_from_this(), pp, aid));
    return;
  }
  case frame_kind::kill: {
    caf::binary_deserializer src{&ctx, bytes, h.length};
    caf::error reason;
    if (auto err = src(reason)) {
      reject(p, &h, "cannot read an exit reason: " + describe(err));
      return;
    }
    p.senders.erase(static_cast<caf::actor_id>(h.receiver));
    proxies_.erase(p.nid, static_cast<caf::actor_id>(h.receiver), std::move(reason));
    return;
  }
  case frame_kind::link:
  case frame_kind::unlink: {
    auto local = sys_.registry().get(static_cast<caf::actor_id>(h.receiver));
    auto remote = proxies_.get_or_put(p.nid, static_cast<caf::actor_id>(h.sender));
    if (!local || !remote)
      return; // a dead local actor: the announce path tells the peer
    auto* px = static_cast<shm_proxy*>(caf::actor_cast<caf::abstract_actor*>(remote));
    auto* la = caf::actor_cast<caf::abstract_actor*>(local);
    if (static_cast<frame_kind>(h.kind) == frame_kind::link && px->dead()) {
      // The linking actor's node is gone (a dead proxy, made while its loss
      // is handled): the link breaks at once, as a link to a dead local
      // actor does.
      la->enqueue(nullptr, caf::make_message_id(),
                  caf::make_message(caf::exit_msg{px->address(), px->reason()}), nullptr);
      return;
    }
    // As CAF's BASP does it: the proxy links itself, holding both actors'
    // locks. (CAF's add_backlink and remove_backlink take no lock: called
    // from here on a local actor, they raced with the actor's own thread
    // and corrupted its attachables, found by fuzzing.) The local actor's
    // backlink is a plain one: no frame goes back to the peer.
    if (static_cast<frame_kind>(h.kind) == frame_kind::link)
      px->add_link(la);
    else
      px->remove_link(la);
    return;
  }
  case frame_kind::corrupt: {
    fail_pending(p, make_error(errc::bad_frame, describe_peer(p)
                                                  + " dropped frames from this node: the ring "
                                                    "between them was corrupted"));
    return;
  }
  case frame_kind::chunk: {
    auto total = h.receiver;
    auto off = h.mid;
    if (off == 0) {
      if (total < sizeof(frame_header) || total > opts_.max_message_bytes + sizeof(frame_header)) {
        reject(p, nullptr, "a chunked frame of " + std::to_string(total) + " bytes");
        p.assembly.clear();
        return;
      }
      p.assembly.clear();
      p.assembly.reserve(total);
      p.assembly_total = total;
    } else if (off != p.assembly.size() || total != p.assembly_total) {
      reject(p, nullptr, "a chunk out of order");
      p.assembly.clear();
      p.assembly_total = 0;
      return;
    }
    if (off + h.length > total) {
      reject(p, nullptr, "a chunk past its frame's end");
      p.assembly.clear();
      p.assembly_total = 0;
      return;
    }
    p.assembly.insert(p.assembly.end(), bytes, bytes + h.length);
    if (p.assembly.size() < total)
      return;
    frame_header inner;
    std::memcpy(&inner, p.assembly.data(), sizeof(inner));
    p.assembly_total = 0;
    if (inner.magic != frame_magic || inner.version != frame_version
        || inner.kind == static_cast<uint16_t>(frame_kind::chunk)
        || inner.length != total - sizeof(frame_header)) {
      reject(p, nullptr, "a malformed chunked frame");
      p.assembly.clear();
      return;
    }
    // The inner frame is no chunk: handling it leaves `assembly` alone.
    handle_frame(p, inner,
                 reinterpret_cast<const unsigned char*>(p.assembly.data()) + sizeof(inner), ctx);
    p.assembly.clear();
    return;
  }
  }
  reject(p, &h, "a frame of unknown kind " + std::to_string(h.kind));
}

caf::strong_actor_ptr core::sender_proxy(peer& p, caf::actor_id aid) {
  auto i = p.senders.find(aid);
  if (i != p.senders.end()
      && !static_cast<shm_proxy*>(caf::actor_cast<caf::abstract_actor*>(i->second))->dead())
    return i->second;
  auto x = proxies_.get_or_put(p.nid, aid);
  if (x) {
    if (p.senders.size() >= 4096)
      p.senders.clear();
    p.senders[aid] = x;
  }
  return x;
}

caf::strong_actor_ptr core::local_receiver(peer& p, caf::actor_id aid) {
  if (p.last_receiver == aid)
    if (auto x = p.last_dest.lock())
      return x;
  auto x = sys_.registry().get(aid);
  if (x) {
    p.last_receiver = aid;
    p.last_dest = caf::weak_actor_ptr{x.get()};
  }
  return x;
}

void core::fail_pending(peer& p, const caf::error& reason) {
  decltype(p.pending) pending;
  {
    std::lock_guard<std::mutex> guard{p.pending_mtx};
    pending.swap(p.pending);
  }
  for (auto& [key, weak] : pending)
    if (auto requester = weak.lock())
      requester->enqueue(
        caf::make_mailbox_element(nullptr, caf::make_message_id(key.second), {}, reason), nullptr);
}

kill_notice::kill_notice(std::weak_ptr<core> owner, const peer_ptr& p, caf::actor_id aid)
  : owner_(std::move(owner)), peer_(p), key_(p.get()), aid_(aid) {
  instances_.fetch_add(1, std::memory_order_relaxed);
}

kill_notice::~kill_notice() {
  instances_.fetch_sub(1, std::memory_order_relaxed);
}

void kill_notice::actor_exited(const caf::error& reason, caf::execution_unit*) {
  auto self = owner_.lock();
  auto q = peer_.lock();
  if (self && q)
    self->send_control(q, frame_kind::kill, aid_, 0, &reason);
}

bool kill_notice::matches(const token& what) {
  return what.subtype == token_type && what.ptr == key_;
}

void core::detach_kill_notices(peer& p) {
  for (auto aid : p.announced)
    if (auto target = sys_.registry().get(aid))
      target->get()->detach(caf::attachable::token{kill_notice::token_type, &p});
  p.announced.clear();
}

void core::kill_proxies_of(const peer& p, const caf::error& reason) {
  // A node that joined after `p` went may have its node id (CAF's node id is
  // the pid, and pids are reused): its proxies stay.
  bool others = false;
  for (auto& x : proxies_.get_all(p.nid)) {
    // The registry also remembers ids it could not make a proxy for (null),
    // and a null strong_actor_ptr must not be cast: it is not a null actor.
    if (!x)
      continue;
    auto* proxy = static_cast<shm_proxy*>(caf::actor_cast<caf::abstract_actor*>(x));
    if (&proxy->bound_peer() != &p) {
      others = true;
      continue;
    }
    proxy->kill_proxy(nullptr, reason);
    proxies_.erase(p.nid, x->id(), reason);
  }
  if (!others)
    proxies_.erase(p.nid); // the nulls too
}

void core::handle_losses(reader_unit& ctx) {
  if (hold_losses.load(std::memory_order_relaxed))
    return;
  std::vector<peer_ptr> lost;
  {
    std::lock_guard<std::mutex> guard{lost_mtx_};
    lost.swap(lost_);
    handling_ = lost;
  }
  if (lost.empty())
    return;
  for (auto& p : lost) {
    // What the peer published before it went is delivered first; handles
    // of its actors in it become dead proxies (see make_proxy).
    {
      std::lock_guard<std::mutex> guard{peers_mtx_};
      draining_ = p;
    }
    // All of it: the actors it made ready run once the rings are let go.
    auto unlimited = std::numeric_limits<size_t>::max();
    drain(*p, ctx, unlimited);
    {
      std::lock_guard<std::mutex> guard{peers_mtx_};
      draining_ = nullptr;
    }
    // Monitors hear of the death before the pending requests fail, so a
    // supervisor or pool knows a request failed because its worker died.
    p->senders.clear(); // they hold the peer: break the cycle
    kill_proxies_of(*p, p->lost_reason);
    detach_kill_notices(*p);
    fail_pending(*p, p->lost_reason);
    {
      std::lock_guard<std::mutex> bl{p->backlog_mtx};
      p->backlog.clear();
      p->has_backlog = false;
    }
    // Both rings are done with: the peer writes and reads no more, its ring
    // here was drained above, and writers here see `lost` under the write
    // lock.
    release_rings(*p);
    // Handles to its actors may live on (dead proxies hold the peer): its
    // descriptor does not.
    p->close_pidfd();
    // Record the death for the others, once: the slot rests, then is reused.
    auto* s = p->shm;
    if (s->change(tenure_of(slot_alive, p->epoch), tenure_of(slot_dead, p->epoch))) {
      s->dead_since_ms.store(mono_ms(), std::memory_order_release);
      announce_membership();
    }
    sweep_names_of(p->slot, p->epoch);
    {
      std::lock_guard<std::mutex> guard{peers_mtx_};
      if (peers_[p->slot] == p) {
        peers_[p->slot] = nullptr;
        ++peers_version_;
      }
      std::lock_guard<std::mutex> handled{lost_mtx_};
      if (auto i = std::find(handling_.begin(), handling_.end(), p); i != handling_.end())
        handling_.erase(i);
    }
  }
  // A newcomer with the node id of a node handled here waited for this.
  refresh_peers();
}

} // namespace troupe::ipc::detail
