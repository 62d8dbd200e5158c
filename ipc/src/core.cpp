#include "core.hpp"

#include "transport/ring.hpp"
#include "troupe/error.hpp"

#include <caf/all.hpp>
#include <caf/default_attachable.hpp>

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <iostream>
#include <limits>
#include <unordered_set>

namespace troupe::ipc::detail {

namespace {

using steady = std::chrono::steady_clock;

/// Set on a node's reader thread, which must never wait for ring space.
thread_local bool on_reader_thread = false;
/// This thread is a blocking caller reading the rings (`core::poll_until`):
/// it may hold locks of the user's, so what runs the user's code (functors
/// attached to remote actors, loss handling, deferred work) is left to the
/// reader thread.
thread_local bool polling_caller = false;
/// The polling caller met a frame it leaves to the reader thread (a kill,
/// whose proxy's functors are the user's): it stops reading, so that the
/// frames behind it keep their order.
thread_local bool caller_stopped = false;
/// This thread holds `drain_mtx_` (of some node): it must not wait for an
/// answer that only a reader of the rings can bring.
thread_local bool holds_rings = false;

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

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch())
    .count();
}

/// Names this thread as `ps -L`, `top -H` and gdb show it (15 characters
/// at most).
void name_this_thread(const char* name) {
  ::pthread_setname_np(::pthread_self(), name);
}

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

steady::time_point deadline_after(caf::timespan timeout) {
  if (troupe::detail::is_forever(timeout))
    return steady::time_point::max();
  return steady::now() + timeout;
}

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

frame_header make_header(frame_kind kind, uint32_t length, uint64_t receiver, uint64_t mid,
                         uint64_t sender) {
  frame_header h{};
  h.magic = frame_magic;
  h.version = frame_version;
  h.kind = static_cast<uint16_t>(kind);
  h.length = length;
  h.receiver = receiver;
  h.mid = mid;
  h.sender = sender;
  return h;
}

/// Why a message id and its content do not go together, or null. The
/// receiver's mailbox files a message by the category bits of its id, and
/// CAF 0.17 then takes the content of an upstream or downstream message for an
/// `upstream_msg` or `downstream_msg` unchecked: a forged id crashes the
/// receiving actor's thread (found by fuzzing).
const char* stream_mismatch(caf::message_id mid, const caf::message& msg) {
  switch (mid.category()) {
  case caf::message_id::upstream_message_category:
    if (msg.size() != 1 || !msg.match_element<caf::upstream_msg>(0))
      return "a stream message id (upstream) on a message that is no upstream_msg";
    break;
  case caf::message_id::downstream_message_category:
    if (msg.size() != 1 || !msg.match_element<caf::downstream_msg>(0))
      return "a stream message id (downstream) on a message that is no downstream_msg";
    break;
  default:
    break;
  }
  return nullptr;
}

bool is_stream_category(caf::message_id mid) {
  return mid.category() == caf::message_id::upstream_message_category
         || mid.category() == caf::message_id::downstream_message_category;
}

std::string describe_peer(const peer& p) {
  return "node in slot " + std::to_string(p.slot) + " (pid " + std::to_string(p.pid) + ")";
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
    if (ready_[i].owner)
      run(ready_[i]);
    else
      others_.push_back(ready_[i]);
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

peer::~peer() {
  if (pidfd >= 0)
    ::close(pidfd);
}

// -- construction and membership ------------------------------------------------

namespace {
std::atomic<uint64_t> next_core_serial{1};
} // namespace

core::core(caf::actor_system& sys, std::unique_ptr<mapped_segment> seg, group_options opts)
  : serial(next_core_serial++), sys_(sys), seg_(std::move(seg)), opts_(opts), proxies_(sys, *this),
    decoder_(sys) {
  // The group's limit is the creator's.
  opts_.max_message_bytes = seg_->view.header()->max_message_bytes;
  peers_.resize(seg_->view.geo.max_nodes);
  seen_epoch_.resize(seg_->view.geo.max_nodes, 0);
}

core::~core() {
  leave();
  // A thread that called `leave` from an actor it ran ended after it.
  for (auto* t : {&reader_, &helper_})
    if (t->joinable()) {
      if (t->get_id() == std::this_thread::get_id())
        t->detach(); // the last handle went on that very thread
      else
        t->join();
    }
  if (wake_fd_ >= 0)
    ::close(wake_fd_);
}

std::string core::key() const {
  group_key k{};
  std::memcpy(k.data(), seg_->view.header()->key, key_bytes);
  return key_to_hex(k);
}

caf::error core::start() {
  if (auto err = claim_slot())
    return err;
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  refresh_peers();
  reader_ = std::thread{[this] {
    name_this_thread("troupe.reader");
    reader_loop();
  }};
  watcher_ = std::thread{[this] {
    name_this_thread("troupe.watcher");
    watcher_loop();
  }};
  return caf::none;
}

caf::error core::start_without_threads() {
  if (auto err = claim_slot())
    return err;
  refresh_peers();
  return caf::none;
}

caf::error core::claim_slot() {
  auto& seg = seg_->view;
  auto now = mono_ms();
  auto grace = static_cast<uint64_t>(
    std::chrono::duration_cast<std::chrono::milliseconds>(opts_.slot_grace).count());
  // Pass 0 takes a never-used slot; pass 1 a slot that has rested long
  // enough since its last node left or died (so every peer has let go of it).
  bool claimed = false;
  for (int pass = 0; pass < 2 && !claimed; ++pass) {
    for (uint32_t i = 0; i < seg.geo.max_nodes && !claimed; ++i) {
      auto* s = seg.slot(i);
      auto st = s->state.load(std::memory_order_acquire);
      auto rested = now - std::min(now, s->dead_since_ms.load(std::memory_order_acquire)) >= grace;
      if (pass == 0) {
        if (st != slot_free || s->epoch.load(std::memory_order_acquire) != 0)
          continue;
      } else if (st == slot_alive || st == slot_claiming) {
        // A node that died with nobody watching: mark it, reuse it later.
        if (!process_alive(s->pid.load(), s->start_ticks.load())
            && s->state.compare_exchange_strong(st, slot_dead)) {
          s->dead_since_ms.store(now, std::memory_order_release);
          sweep_names_of(i, s->epoch.load());
        }
        continue;
      } else if (!rested) {
        continue;
      }
      if (s->state.compare_exchange_strong(st, slot_claiming)) {
        me_ = i;
        claimed = true;
      }
    }
  }
  if (!claimed)
    return make_error(errc::group_full, "all " + std::to_string(seg.geo.max_nodes)
                                          + " node slots of group '" + group() + "' are taken");
  my_slot_ = seg.slot(me_);
  my_epoch_ = my_slot_->epoch.load() + 1;
  my_slot_->epoch.store(my_epoch_, std::memory_order_relaxed);
  my_slot_->pid.store(::getpid(), std::memory_order_relaxed);
  my_slot_->start_ticks.store(process_start_ticks(::getpid()), std::memory_order_relaxed);
  my_slot_->joined_unix_ms.store(unix_ms(), std::memory_order_relaxed);
  my_slot_->frames_sent.store(0, std::memory_order_relaxed);
  my_slot_->frames_received.store(0, std::memory_order_relaxed);
  my_slot_->frames_rejected.store(0, std::memory_order_relaxed);
  my_slot_->doorbell.store(0, std::memory_order_relaxed);
  my_slot_->parked.store(0, std::memory_order_relaxed);
  {
    std::vector<char> buf;
    caf::binary_serializer sink{sys_, buf};
    auto nid = sys_.node();
    if (auto err = sink(nid); err || buf.size() > node_id_max) {
      my_slot_->state.store(slot_free, std::memory_order_release);
      return make_error(errc::bad_segment, "cannot store this node's id");
    }
    std::memcpy(my_slot_->node_id, buf.data(), buf.size());
    my_slot_->node_id_len = static_cast<uint32_t>(buf.size());
  }
  // Every ring to and from this slot starts empty for this incarnation.
  for (uint32_t j = 0; j < seg.geo.max_nodes; ++j) {
    for (auto r : {seg.ring(me_, j), seg.ring(j, me_)}) {
      r.hdr->tail.store(0, std::memory_order_relaxed);
      r.hdr->head.store(0, std::memory_order_relaxed);
      r.hdr->space_seq.store(0, std::memory_order_relaxed);
      r.hdr->space_waiting.store(0, std::memory_order_relaxed);
    }
  }
  my_slot_->state.store(slot_alive, std::memory_order_release);
  announce_membership();
  return caf::none;
}

void core::announce_membership() {
  auto& seg = seg_->view;
  seg.header()->members_seq.fetch_add(1, std::memory_order_acq_rel);
  for (uint32_t i = 0; i < seg.geo.max_nodes; ++i) {
    auto* s = seg.slot(i);
    if (i == me_ || s->state.load(std::memory_order_acquire) != slot_alive)
      continue;
    s->doorbell.fetch_add(1, std::memory_order_release);
    futex_wake(&s->doorbell, 1);
  }
}

void core::leave() {
  if (left_.exchange(true))
    return;
  {
    // Pooled callers end first, while their peers can still hear of it.
    std::vector<std::unique_ptr<caf::scoped_actor>> idle;
    {
      std::lock_guard<std::mutex> guard{callers_->mtx};
      callers_->closed = true;
      idle.swap(callers_->idle);
    }
  }
  if (my_slot_ == nullptr)
    return; // never started
  sweep_names_of(me_, my_epoch_);
  {
    // Callers that poll the rings see it before they touch the slot again.
    std::lock_guard<std::mutex> guard{park_mtx_};
    stop_ = true;
  }
  my_slot_->doorbell.fetch_add(1);
  futex_wake(&my_slot_->doorbell, INT_MAX);
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    [[maybe_unused]] auto rc = ::write(wake_fd_, &one, sizeof(one));
  }
  auto reason = make_error(errc::peer_lost, "this node left group '" + group() + "'");
  // An actor that the reader thread runs may be waiting for an answer from
  // another node: it gets this error now, so that the reader can stop.
  for (auto& p : peer_snapshot())
    fail_pending(*p, reason);
  // Called from an actor the reader (or helper) runs, the thread goes on
  // once the actor is done, sees `stop_` and ends; ~core joins it.
  auto self = std::this_thread::get_id();
  if (reader_.joinable() && reader_.get_id() != self)
    reader_.join();
  if (watcher_.joinable())
    watcher_.join();
  if (helper_.joinable() && helper_.get_id() != self)
    helper_.join();
  // A caller polling the rings stops at its next turn (it sees `stop_`).
  std::lock_guard<std::mutex> reading{drain_mtx_};
  {
    // What was left for the reader holds proxies, which hold this core.
    std::vector<std::function<void()>> dropped;
    {
      std::lock_guard<std::mutex> guard{deferred_mtx_};
      dropped.swap(deferred_);
    }
  }
  send_pending_kill_notices();
  {
    // Frames still in a backlog (written while a ring's lock was busy) go
    // out before the slot is freed: a kill notice among them tells a peer
    // how an actor ended, where the peer would otherwise only see the node
    // go (`peer_lost`). Without waiting: a stopped peer cannot hold us.
    std::vector<peer_ptr> live;
    {
      std::lock_guard<std::mutex> guard{peers_mtx_};
      for (auto& p : peers_)
        if (p && !p->lost.load(std::memory_order_acquire))
          live.push_back(p);
    }
    for (auto& p : live) {
      if (!p->has_backlog.load(std::memory_order_acquire))
        continue;
      std::lock_guard<std::mutex> guard{p->write_mtx};
      caf::error err;
      flush_backlog_locked(*p, false, err);
    }
  }
  // Everything this node holds of others ends here. Its writers stop before
  // the slot is freed: from then on the peers give the rings back.
  std::vector<peer_ptr> all;
  {
    std::lock_guard<std::mutex> guard{peers_mtx_};
    for (auto& p : peers_)
      if (p)
        all.push_back(std::move(p));
  }
  for (auto& p : all) {
    if (!p->loss_claimed.exchange(true)) {
      p->lost_reason = reason;
      p->lost.store(true, std::memory_order_release);
    }
    futex_wake(&p->out.hdr->space_seq, INT_MAX);
    // A writer in the middle of a record finishes it (or fails) first.
    std::lock_guard<std::mutex> writing{p->write_mtx};
  }
  my_slot_->dead_since_ms.store(mono_ms(), std::memory_order_release);
  my_slot_->state.store(slot_free, std::memory_order_release);
  announce_membership();
  for (auto& p : all) {
    fail_pending(*p, reason);
    p->senders.clear(); // under drain_mtx_, and the reader reads no more
    kill_proxies_of(p->nid, reason);
  }
  proxies_.clear();
  // The last node out removes the segment.
  auto& seg = seg_->view;
  if (live_pid(seg) == 0) {
    remove_segment(seg_->shm_name);
    sweep_dead_blocks(group());
  }
}

void core::send_pending_kill_notices() {
  // A program often leaves because its actor ended: it waited for the
  // actor's down message. CAF runs the actor's newest attachables first, so
  // a monitor attached after a peer's announce hears of the end before our
  // functor sends the kill notice, and this node could be gone before it
  // does: the peer would see `peer_lost` instead of the actor's reason. Every
  // announced actor that has ended sends its notice here (a second one from
  // the functor does no harm: the peer's proxy is gone by then). Called
  // with the reader stopped, which alone touches `announced`.
  for (auto& p : peer_snapshot()) {
    for (auto aid : p->announced) {
      auto target = sys_.registry().get(aid);
      if (!target)
        continue; // its functors, ours included, have run
      auto* a = dynamic_cast<caf::monitorable_actor*>(target->get());
      if (a == nullptr || !a->getf(caf::abstract_actor::is_cleaned_up_flag))
        continue;
      auto reason = a->fail_state();
      send_control(p, frame_kind::kill, aid, 0, &reason);
    }
  }
}

// -- peers -------------------------------------------------------------------------

peer_ptr core::add_peer_locked(uint32_t slot, uint32_t epoch) {
  auto& seg = seg_->view;
  auto* s = seg.slot(slot);
  auto p = std::make_shared<peer>();
  p->slot = slot;
  p->epoch = epoch;
  p->pid = s->pid.load(std::memory_order_acquire);
  p->start_ticks = s->start_ticks.load(std::memory_order_acquire);
  p->shm = s;
  p->out = seg.ring(me_, slot);
  p->in = seg.ring(slot, me_);
  p->out_offset = seg.geo.ring_data_offset(me_, slot);
  p->in_offset = seg.geo.ring_data_offset(slot, me_);
  auto len = std::min<size_t>(s->node_id_len, node_id_max);
  caf::binary_deserializer src{sys_, reinterpret_cast<const char*>(s->node_id), len};
  if (src(p->nid) || !p->nid)
    return nullptr;
  p->pidfd = pidfd_open(p->pid);
  peers_[slot] = p;
  ++peers_version_;
  if (!process_alive(p->pid, p->start_ticks))
    mark_lost(p, make_error(errc::peer_lost, describe_peer(*p) + " died"));
  return p;
}

void core::refresh_peers() {
  auto& seg = seg_->view;
  bool added = false;
  {
    std::lock_guard<std::mutex> guard{peers_mtx_};
    for (uint32_t i = 0; i < seg.geo.max_nodes; ++i) {
      if (i == me_)
        continue;
      auto* s = seg.slot(i);
      auto st = s->state.load(std::memory_order_acquire);
      auto ep = s->epoch.load(std::memory_order_acquire);
      auto& known = peers_[i];
      if (known && (st != slot_alive || ep != known->epoch)) {
        auto how = st == slot_free && ep == known->epoch ? " left the group" : " died";
        mark_lost(known, make_error(errc::peer_lost, describe_peer(*known) + how));
        known = nullptr;
        ++peers_version_;
      }
      if (st == slot_alive && !known) {
        add_peer_locked(i, ep);
        seen_epoch_[i] = ep;
        added = true;
      } else if ((st == slot_dead || st == slot_free) && !known && ep != 0
                 && ep != seen_epoch_[i]) {
        // An incarnation that joined and went (died, or left) between two
        // looks: what it wrote to this node since this node joined (the ring
        // was emptied then) is still in the ring, and the slot rests for
        // `slot_grace` before anyone resets it. Attach to it as to a peer
        // that died, so the loss handling delivers those frames.
        seen_epoch_[i] = ep;
        if (auto p = add_peer_locked(i, ep); p && !p->lost.load())
          mark_lost(
            p, make_error(errc::peer_lost,
                          describe_peer(*p) + (st == slot_free ? " left the group" : " died")));
        added = true;
      }
    }
  }
  if (added && wake_fd_ >= 0) {
    uint64_t one = 1;
    [[maybe_unused]] auto rc = ::write(wake_fd_, &one, sizeof(one));
  }
  if (added && my_slot_ != nullptr && !stop_.load(std::memory_order_acquire)) {
    // The reader reads the new rings from its next turn on: a newcomer may
    // have written already (ringing before the reader knew its ring).
    my_slot_->doorbell.fetch_add(1);
    futex_wake(&my_slot_->doorbell, INT_MAX);
  }
}

peer_ptr core::peer_at(uint32_t slot) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    {
      std::lock_guard<std::mutex> guard{peers_mtx_};
      if (slot < peers_.size() && peers_[slot] && !peers_[slot]->lost)
        return peers_[slot];
    }
    refresh_peers();
  }
  return nullptr;
}

peer_ptr core::peer_by_node(const caf::node_id& nid) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    {
      std::lock_guard<std::mutex> guard{peers_mtx_};
      for (auto& p : peers_)
        if (p && !p->lost && p->nid == nid)
          return p;
    }
    refresh_peers();
  }
  return nullptr;
}

std::vector<peer_ptr> core::peer_snapshot() {
  std::lock_guard<std::mutex> guard{peers_mtx_};
  std::vector<peer_ptr> res;
  for (auto& p : peers_)
    if (p)
      res.push_back(p);
  return res;
}

void core::mark_lost(const peer_ptr& p, caf::error reason) {
  if (p->loss_claimed.exchange(true))
    return;
  p->lost_reason = std::move(reason);
  p->lost.store(true, std::memory_order_release);
  // Writers waiting for space in the peer's ring look at `lost` when woken.
  futex_wake(&p->out.hdr->space_seq, INT_MAX);
  {
    std::lock_guard<std::mutex> guard{lost_mtx_};
    lost_.push_back(p);
  }
  my_slot_->doorbell.fetch_add(1);
  futex_wake(&my_slot_->doorbell, INT_MAX);
}

// -- proxy_registry::backend ---------------------------------------------------------

caf::strong_actor_ptr core::make_proxy(caf::node_id nid, caf::actor_id aid) {
  auto p = peer_by_node(nid);
  if (!p) {
    // A node whose loss is being handled: what it wrote before it went is
    // delivered now, and handles in it may name its actors.
    std::lock_guard<std::mutex> guard{peers_mtx_};
    if (draining_ && draining_->nid == nid)
      p = draining_;
  }
  if (!p)
    return nullptr;
  caf::actor_config cfg;
  auto res =
    caf::make_actor<shm_proxy, caf::strong_actor_ptr>(aid, nid, &sys_, cfg, shared_from_this(), p);
  if (p->lost.load(std::memory_order_acquire)) {
    // An actor of a lost node gets a proxy that is dead already, not an
    // invalid handle (which CAF 0.17 cannot monitor or link to: it crashes):
    // monitors and links hear the loss at once, requests fail with it.
    static_cast<shm_proxy*>(caf::actor_cast<caf::abstract_actor*>(res))
      ->kill_proxy(nullptr, p->lost_reason);
    return res;
  }
  send_control(p, frame_kind::announce, aid, 0);
  return res;
}

void core::set_last_hop(caf::node_id*) {
  // Every node of a group is one hop away.
}

void core::export_actor(const caf::strong_actor_ptr& x) {
  if (x && x->node() == sys_.node() && !sys_.registry().get(x->id()))
    sys_.registry().put(x->id(), x);
}

void core::export_sender(const caf::strong_actor_ptr& x) {
  thread_local uint64_t last_serial = 0;
  thread_local caf::actor_id last_id = 0;
  if (last_serial == serial && last_id == x->id())
    return;
  export_actor(x);
  last_serial = serial;
  last_id = x->id();
}

// -- sending -------------------------------------------------------------------------

void core::bounce(const caf::strong_actor_ptr& sender, caf::message_id mid, const caf::error& err,
                  bool tell_async_sender) {
  if (!sender)
    return;
  if (mid.is_request())
    sender->enqueue(caf::make_mailbox_element(nullptr, mid.response_id(), {}, err), nullptr);
  else if (tell_async_sender && !mid.is_response())
    sender->enqueue(caf::make_mailbox_element(nullptr, caf::make_message_id(), {}, err), nullptr);
}

void core::send(const peer_ptr& p, caf::actor_id receiver, caf::mailbox_element_ptr what) {
  auto sender = what->sender;
  auto mid = what->mid;
  if (p->lost.load(std::memory_order_acquire)) {
    // Like a send to a dead local actor: requests are answered, async
    // messages are dropped (the monitors saw the down_msg).
    bounce(sender, mid, p->lost_reason, false);
    return;
  }
  thread_local std::vector<char> buf;
  buf.resize(sizeof(frame_header));
  bool local_sender = sender && sender->node() == sys_.node();
  caf::error err;
  {
    caf::scoped_execution_unit ctx{&sys_};
    ctx.proxy_registry_ptr(&proxies_);
    caf::binary_serializer sink{&ctx, buf};
    if (local_sender) {
      // The common case: the header names the sender; no node id to write.
      export_sender(sender);
      err = sink(what->stages);
    } else {
      err = sink(what->sender, what->stages);
    }
    // The content as `caf::message` writes it, without making one (a typed
    // element would be copied into a new message first).
    if (!err)
      err = caf::message::save(sink, what->content());
  }
  if (!err && buf.size() - sizeof(frame_header) > opts_.max_message_bytes)
    err = make_error(errc::message_too_large,
                     "a message of " + std::to_string(buf.size() - sizeof(frame_header))
                       + " bytes exceeds group '" + group() + "''s limit of "
                       + std::to_string(opts_.max_message_bytes) + " bytes");
  else if (err)
    err = make_error(errc::bad_frame, "cannot serialize a message: " + describe(err));
  if (err && mid.is_response()) {
    // The requester still gets an answer: the error, in place of the result.
    buf.resize(sizeof(frame_header));
    caf::scoped_execution_unit ctx{&sys_};
    ctx.proxy_registry_ptr(&proxies_);
    caf::binary_serializer sink{&ctx, buf};
    caf::strong_actor_ptr none;
    std::vector<caf::strong_actor_ptr> no_stages;
    auto msg = caf::make_message(err);
    if (sink(none, no_stages, msg))
      return;
    err = caf::none;
    local_sender = false;
  }
  if (err) {
    static std::atomic<uint64_t> reported{0};
    auto n = reported.fetch_add(1) + 1;
    if (!opts_.quiet && !mid.is_request() && (n <= 10 || n % 1000 == 0))
      std::cerr << "[troupe] a message was not sent: " << describe(err) << '\n';
    bounce(sender, mid, err, true);
    return;
  }
  auto h =
    make_header(frame_kind::message, static_cast<uint32_t>(buf.size() - sizeof(frame_header)),
                receiver, mid.integer_value(), sender ? sender->id() : 0);
  h.flags = local_sender ? flag_local_sender : 0;
  std::memcpy(buf.data(), &h, sizeof(h));
  std::pair<caf::actor_id, uint64_t> key{0, 0};
  bool tracked = false;
  if (mid.is_request() && sender && sender->node() == sys_.node()) {
    key = {sender->id(), mid.response_id().integer_value()};
    std::lock_guard<std::mutex> guard{p->pending_mtx};
    p->pending.emplace(key, caf::weak_actor_ptr{sender.get()});
    tracked = true;
  }
  if (auto werr = write_frame(*p, buf.data(), buf.size(), !on_reader_thread)) {
    if (tracked) {
      std::lock_guard<std::mutex> guard{p->pending_mtx};
      p->pending.erase(key);
    }
    bounce(sender, mid, werr, !is(werr, errc::peer_lost));
  }
}

void core::send_control(const peer_ptr& p, frame_kind kind, uint64_t receiver, uint64_t sender,
                        const caf::error* reason) {
  if (p->lost.load(std::memory_order_acquire))
    return;
  std::vector<char> buf(sizeof(frame_header));
  if (reason != nullptr) {
    caf::binary_serializer sink{sys_, buf};
    auto tmp = *reason;
    if (sink(tmp))
      return;
  }
  auto h = make_header(kind, static_cast<uint32_t>(buf.size() - sizeof(frame_header)), receiver, 0,
                       sender);
  std::memcpy(buf.data(), &h, sizeof(h));
  write_frame(*p, buf.data(), buf.size(), false);
}

// -- writing -------------------------------------------------------------------------

caf::error core::write_frame(peer& p, const char* data, size_t n, bool may_wait) {
  auto deadline = deadline_after(opts_.full_timeout);
  // (The test hook that stalls a writer half-way lives on the waiting path.)
  if (may_wait || stall_next_frame.load(std::memory_order_relaxed)) {
    std::unique_lock<std::mutex> guard{p.write_mtx};
    caf::error err;
    if (p.has_backlog.load(std::memory_order_acquire) && !flush_backlog_locked(p, true, err))
      return err;
    return write_frame_locked(p, data, n, deadline);
  }
  // Never wait: write now if the lock is free, nothing is queued before us
  // and the frame fits in one record; else queue it, and send what fits of
  // the queue at once (pieces of a large frame included). What is left
  // goes out at the next turn of the reader, or with the next writer.
  std::unique_lock<std::mutex> guard{p.write_mtx, std::try_to_lock};
  if (guard.owns_lock() && !p.has_backlog.load(std::memory_order_acquire)
      && align8(n) <= p.out.capacity / 4) {
    caf::error err;
    auto res = put_record(p, data, n, nullptr, 0, false, deadline, err);
    if (res == put_result::done)
      return caf::none;
    if (res == put_result::failed)
      return err;
  }
  {
    std::lock_guard<std::mutex> bl{p.backlog_mtx};
    p.backlog.push_back(peer::outgoing_frame{std::vector<char>(data, data + n), 0});
    p.has_backlog.store(true, std::memory_order_release);
  }
  backlogged_.fetch_add(1, std::memory_order_relaxed);
  if (!guard.owns_lock()) {
    // The writer holding the lock does not look at the backlog after its
    // own frame: this node's reader retries it, woken if it is parked.
    wake_own_reader();
    return caf::none;
  }
  caf::error err;
  flush_backlog_locked(p, false, err);
  return err;
}

caf::error core::write_frame_locked(peer& p, const char* data, size_t n,
                                    steady::time_point deadline) {
  caf::error err;
  auto max_record = p.out.capacity / 4;
  if (align8(n) <= max_record) {
    bool stall = false;
    if (stall_next_frame.load(std::memory_order_relaxed)) {
      frame_header h;
      std::memcpy(&h, data, sizeof(h));
      stall =
        h.kind == static_cast<uint16_t>(frame_kind::message) && stall_next_frame.exchange(false);
    }
    if (stall) {
      // Test hook: half a frame, never published, then stop as if killed.
      if (put_record(p, data, n / 2, nullptr, 0, true, deadline, err) == put_result::failed)
        return err;
      ::raise(SIGSTOP);
    }
    return put_record(p, data, n, nullptr, 0, true, deadline, err) == put_result::done ? caf::none
                                                                                       : err;
  }
  // Too large for one record: pieces, each with a chunk header.
  size_t sent = 0;
  return put_pieces(p, data, n, sent, true, deadline, err) == put_result::done ? caf::none : err;
}

core::put_result core::put_pieces(peer& p, const char* data, size_t n, size_t& sent, bool may_wait,
                                  steady::time_point deadline, caf::error& err) {
  auto piece_max = p.out.capacity / 4 - sizeof(frame_header);
  while (sent < n) {
    auto len = std::min(piece_max, n - sent);
    auto h = make_header(frame_kind::chunk, static_cast<uint32_t>(len), n, sent, 0);
    auto res = put_record(p, reinterpret_cast<const char*>(&h), sizeof(h), data + sent, len,
                          may_wait, deadline, err);
    if (res != put_result::done)
      return res;
    sent += len;
  }
  return put_result::done;
}

caf::error core::reserve_rings(peer& p) {
  auto what = "the rings between this node (slot " + std::to_string(me_) + ") and the "
              + describe_peer(p) + " of group '" + group() + "'";
  auto len = p.out.capacity;
  if (auto err = seg_->reserve(p.out_offset, len, what))
    return err;
  if (auto err = seg_->reserve(p.in_offset, len, what))
    return err;
  p.rings_reserved = true;
  return caf::none;
}

void core::release_rings(peer& p) {
  std::lock_guard<std::mutex> guard{p.write_mtx}; // no writer is in `out` now
  // A new incarnation in the slot reserves them anew (after the slot rested,
  // long after this runs): leave its rings alone.
  if (p.shm->epoch.load(std::memory_order_acquire) != p.epoch)
    return;
  seg_->release(p.out_offset, p.out.capacity);
  seg_->release(p.in_offset, p.in.capacity);
  p.rings_reserved = false;
}

core::put_result core::put_record(peer& p, const char* a, size_t an, const char* b, size_t bn,
                                  bool may_wait, steady::time_point deadline, caf::error& err) {
  if (!p.rings_reserved) {
    if (p.lost.load(std::memory_order_acquire)) {
      err = p.lost_reason;
      return put_result::failed;
    }
    if ((err = reserve_rings(p)))
      return put_result::failed;
  }
  ring_writer out{p.out};
  unsigned char* at = nullptr;
  while ((at = out.reserve(an + bn)) == nullptr) {
    if (p.lost.load(std::memory_order_acquire)) {
      err = p.lost_reason;
      return put_result::failed;
    }
    if (!may_wait)
      return put_result::would_block;
    if (opts_.on_full == full_policy::fail) {
      err = make_error(errc::full, "the ring to " + describe_peer(p) + " is full");
      return put_result::failed;
    }
    if (auto e = wait_for_space(p, out.bytes_needed(an + bn), deadline)) {
      err = std::move(e);
      return put_result::failed;
    }
  }
  if (p.lost.load(std::memory_order_acquire)) {
    err = p.lost_reason;
    return put_result::failed;
  }
  std::memcpy(at, a, an);
  if (bn != 0)
    std::memcpy(at + an, b, bn);
  out.publish();
  my_slot_->frames_sent.fetch_add(1, std::memory_order_relaxed);
  ring_doorbell(p);
  return put_result::done;
}

bool core::flush_backlog_locked(peer& p, bool may_wait, caf::error& err) {
  std::deque<peer::outgoing_frame> todo;
  {
    std::lock_guard<std::mutex> guard{p.backlog_mtx};
    todo.swap(p.backlog);
    p.has_backlog.store(false, std::memory_order_release);
  }
  auto deadline = deadline_after(opts_.full_timeout);
  auto max_record = p.out.capacity / 4;
  while (!todo.empty()) {
    auto& f = todo.front();
    auto res = put_result::done;
    if (align8(f.bytes.size()) > max_record)
      res = put_pieces(p, f.bytes.data(), f.bytes.size(), f.sent, may_wait, deadline, err);
    else
      res = put_record(p, f.bytes.data(), f.bytes.size(), nullptr, 0, may_wait, deadline, err);
    if (res == put_result::failed && p.lost.load(std::memory_order_acquire))
      return false; // dropped: the loss fails what waited on the peer
    if (res != put_result::done)
      break;
    todo.pop_front();
  }
  if (todo.empty())
    return true;
  // Put back what is left (a full ring, or one that stayed full under
  // `full_policy::fail`: the frames wait for space, none is dropped), in
  // front of anything queued meanwhile.
  std::lock_guard<std::mutex> guard{p.backlog_mtx};
  for (auto i = todo.rbegin(); i != todo.rend(); ++i)
    p.backlog.push_front(std::move(*i));
  p.has_backlog.store(true, std::memory_order_release);
  return false;
}

caf::error core::wait_for_space(peer& p, uint64_t need, steady::time_point deadline) {
  auto* hdr = p.out.hdr;
  ring_writer out{p.out};
  // Space comes when the reader, in another process, gets a core: a writer
  // that waits yields its core after a short spin (with more writers than
  // cores, spinning writers would starve the very reader they wait for).
  auto start = steady::now();
  auto spin_until = start + opts_.spin;
  for (auto now = start; now < spin_until; now = steady::now()) {
    if (out.has_space(need))
      return caf::none;
    if (now - start < std::chrono::microseconds(10))
      cpu_relax();
    else
      std::this_thread::yield();
  }
  for (;;) {
    auto seen = hdr->space_seq.load(std::memory_order_acquire);
    hdr->space_waiting.store(1, std::memory_order_seq_cst);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (out.has_space(need))
      return caf::none;
    if (p.lost.load(std::memory_order_acquire))
      return p.lost_reason;
    auto now = steady::now();
    if (now >= deadline)
      return make_error(errc::full, "the ring to " + describe_peer(p) + " stayed full");
    auto wait = std::min<steady::duration>(deadline - now, std::chrono::milliseconds(10));
    futex_wait(&hdr->space_seq, seen, wait);
  }
}

void core::wake_own_reader() {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (my_slot_ != nullptr && my_slot_->parked.load(std::memory_order_relaxed) != 0) {
    my_slot_->doorbell.fetch_add(1, std::memory_order_release);
    futex_wake(&my_slot_->doorbell, 1);
  }
}

void core::ring_doorbell(peer& p) {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (p.shm->parked.load(std::memory_order_relaxed) != 0) {
    p.shm->doorbell.fetch_add(1, std::memory_order_release);
    futex_wake(&p.shm->doorbell, 1);
  }
}

caf::error core::write_raw(uint32_t peer_slot, const std::vector<unsigned char>& bytes) {
  auto p = peer_at(peer_slot);
  if (!p)
    return make_error(errc::invalid_argument, "no live node in slot " + std::to_string(peer_slot));
  std::lock_guard<std::mutex> guard{p->write_mtx};
  if (!p->rings_reserved)
    if (auto err = reserve_rings(*p))
      return err;
  auto* hdr = p->out.hdr;
  auto cap = p->out.capacity;
  auto tail = hdr->tail.load(std::memory_order_relaxed);
  auto rec = align8(bytes.size());
  if (cap - (tail - hdr->head.load(std::memory_order_acquire)) < rec)
    return make_error(errc::full, "the ring is full");
  for (size_t i = 0; i < rec; ++i)
    p->out.data[(tail + i) & (cap - 1)] = i < bytes.size() ? bytes[i] : 0;
  hdr->tail.store(tail + rec, std::memory_order_release);
  ring_doorbell(*p);
  return caf::none;
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
  auto reason = make_error(errc::peer_lost, "the test forgot " + describe_peer(p));
  kill_proxies_of(p.nid, reason);
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
    deferred_.push_back(std::move(fn));
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
    cpu_relax();
  }
}

bool core::drain(peer& p, reader_unit& ctx, size_t& budget) {
  if (!ring_reader::has_input(p.in))
    return false;
  ring_reader in{p.in, sizeof(frame_header)};
  uint64_t frames = 0;
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
    if (polling_caller && h.kind == static_cast<uint16_t>(frame_kind::kill)) {
      // Killing the proxy runs the functors attached to it: the reader
      // thread takes it from here (see `caller_stopped`).
      caller_stopped = true;
      break;
    }
    if (h.version != frame_version) {
      reject(p, nullptr,
             "a frame of version " + std::to_string(h.version) + " (this node speaks "
               + std::to_string(frame_version) + ")");
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
  return true;
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
    std::weak_ptr<core> weak_self = shared_from_this();
    std::weak_ptr<peer> weak_peer = pp;
    target->get()->attach_functor([weak_self, weak_peer, aid](const caf::error& reason) {
      auto self = weak_self.lock();
      auto q = weak_peer.lock();
      if (self && q)
        self->send_control(q, frame_kind::kill, aid, 0, &reason);
    });
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

void core::kill_proxies_of(const caf::node_id& nid, const caf::error& reason) {
  // The registry also remembers ids it could not make a proxy for (null).
  for (auto& x : proxies_.get_all(nid))
    if (x)
      static_cast<caf::actor_proxy*>(caf::actor_cast<caf::abstract_actor*>(x))
        ->kill_proxy(nullptr, reason);
}

void core::handle_losses(reader_unit& ctx) {
  std::vector<peer_ptr> lost;
  {
    std::lock_guard<std::mutex> guard{lost_mtx_};
    lost.swap(lost_);
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
    kill_proxies_of(p->nid, p->lost_reason);
    proxies_.erase(p->nid);
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
    // Record the death for the others, once: the slot rests, then is reused.
    auto* s = p->shm;
    uint32_t st = slot_alive;
    if (s->epoch.load() == p->epoch && s->state.compare_exchange_strong(st, slot_dead)) {
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
    }
  }
}

// -- liveness ------------------------------------------------------------------------

void core::watcher_loop() {
  std::vector<pollfd> fds;
  std::vector<peer_ptr> watched;
  while (!stop_.load(std::memory_order_acquire)) {
    refresh_peers();
    fds.clear();
    watched.clear();
    fds.push_back(pollfd{wake_fd_, POLLIN, 0});
    for (auto& p : peer_snapshot()) {
      if (p->lost.load())
        continue;
      if (p->pidfd >= 0) {
        fds.push_back(pollfd{p->pidfd, POLLIN, 0});
        watched.push_back(p);
      } else if (!process_alive(p->pid, p->start_ticks)) {
        mark_lost(p, make_error(errc::peer_lost, describe_peer(*p) + " died"));
      }
    }
    // Deaths wake it through the pidfds, joins and leaves through the
    // readers (`members_seq`): the timeout is for processes without a pidfd
    // and for a reader stuck in a handler, looked at every 10 ms while
    // readers run actors (in the last second), every 250 ms when idle.
    auto recent = now_ns() - last_inline_run_.load(std::memory_order_relaxed)
                  < std::chrono::nanoseconds(std::chrono::seconds(1)).count();
    auto timeout = recent || reader_busy_since_.load(std::memory_order_acquire) != 0 ? 10 : 250;
    auto rc = ::poll(fds.data(), fds.size(), timeout);
    start_helper_if_stuck();
    if (rc <= 0)
      continue;
    if (fds[0].revents != 0) {
      uint64_t drained = 0;
      [[maybe_unused]] auto n = ::read(wake_fd_, &drained, sizeof(drained));
    }
    for (size_t i = 1; i < fds.size(); ++i)
      if (fds[i].revents != 0)
        mark_lost(watched[i - 1],
                  make_error(errc::peer_lost, describe_peer(*watched[i - 1]) + " died"));
  }
}

void core::start_helper_if_stuck() {
  auto busy = reader_busy_since_.load(std::memory_order_acquire);
  if (busy == 0 || now_ns() - busy < std::chrono::nanoseconds(stuck_after).count()
      || !helper_done_.load(std::memory_order_acquire))
    return;
  // The reader thread runs a handler that blocks (or computes) for long:
  // another thread reads the rings until it is back (the handler may wait
  // for an answer that comes through them).
  if (helper_.joinable())
    helper_.join();
  helper_done_.store(false, std::memory_order_relaxed);
  helper_ = std::thread{[this, busy] {
    name_this_thread("troupe.helper");
    helper_loop(busy);
  }};
}

// -- names ---------------------------------------------------------------------------

namespace {

caf::error check_actor_name(const std::string& name) {
  if (name.empty() || name.size() > actor_name_max)
    return make_error(errc::invalid_argument, "a published name has 1 to "
                                                + std::to_string(actor_name_max) + " characters");
  for (unsigned char c : name)
    if (c < 0x20 || c == 0x7f)
      return make_error(errc::invalid_argument, "a published name holds no control characters");
  return caf::none;
}

void bump_names(segment_header* hdr) {
  hdr->names_seq.fetch_add(1, std::memory_order_release);
  futex_wake(&hdr->names_seq, INT_MAX);
}

} // namespace

void core::sweep_names_of(uint32_t slot, uint32_t epoch) {
  auto& seg = seg_->view;
  bool any = false;
  for (uint32_t i = 0; i < seg.geo.max_names; ++i) {
    auto* e = seg.name(i);
    if (e->state.load(std::memory_order_acquire) != name_live || e->slot != slot
        || e->epoch != epoch)
      continue;
    uint32_t st = name_live;
    any |= e->state.compare_exchange_strong(st, name_free);
  }
  if (any)
    bump_names(seg.header());
}

caf::error core::publish(const std::string& name, const caf::actor& x) {
  if (auto err = check_actor_name(name))
    return err;
  if (!x)
    return make_error(errc::invalid_argument, "cannot publish an invalid actor handle");
  if (x->node() != sys_.node())
    return make_error(errc::invalid_argument,
                      "'" + name + "': only actors of this process can be published here");
  auto& seg = seg_->view;
  auto ptr = caf::actor_cast<caf::strong_actor_ptr>(x);
  export_actor(ptr);
  // One live entry per name: an entry whose node is gone is taken back.
  for (uint32_t i = 0; i < seg.geo.max_names; ++i) {
    auto* e = seg.name(i);
    if (e->state.load(std::memory_order_acquire) != name_live || name != e->name)
      continue;
    auto* s = seg.slot(e->slot);
    // A node that died a moment ago may not be swept yet: its pid tells.
    if (s->state.load() == slot_alive && s->epoch.load() == e->epoch
        && process_alive(s->pid.load(), s->start_ticks.load())) {
      if (e->slot == me_ && e->actor == x->id())
        return caf::none;
      return make_error(errc::name_taken, "'" + name + "' is already published in group '" + group()
                                            + "' (by pid " + std::to_string(s->pid.load()) + ")");
    }
    uint32_t st = name_live;
    e->state.compare_exchange_strong(st, name_free);
  }
  for (uint32_t i = 0; i < seg.geo.max_names; ++i) {
    auto* e = seg.name(i);
    uint32_t st = name_free;
    if (!e->state.compare_exchange_strong(st, name_writing))
      continue;
    e->slot = me_;
    e->epoch = my_epoch_;
    e->actor = x->id();
    std::memset(e->name, 0, sizeof(e->name));
    std::memcpy(e->name, name.data(), name.size());
    e->state.store(name_live, std::memory_order_release);
    // Two nodes publishing one name at once: the lower entry wins.
    for (uint32_t j = 0; j < i; ++j) {
      auto* other = seg.name(j);
      if (other->state.load(std::memory_order_acquire) == name_live && name == other->name) {
        e->state.store(name_free, std::memory_order_release);
        return make_error(errc::name_taken,
                          "'" + name + "' is already published in group '" + group() + "'");
      }
    }
    {
      std::lock_guard<std::mutex> guard{names_mtx_};
      my_names_.push_back(name);
    }
    bump_names(seg.header());
    return caf::none;
  }
  return make_error(errc::invalid_argument, "group '" + group() + "' has no room for more names ("
                                              + std::to_string(seg.geo.max_names) + ")");
}

caf::error core::unpublish(const std::string& name) {
  auto& seg = seg_->view;
  for (uint32_t i = 0; i < seg.geo.max_names; ++i) {
    auto* e = seg.name(i);
    if (e->state.load(std::memory_order_acquire) != name_live || e->slot != me_
        || e->epoch != my_epoch_ || name != e->name)
      continue;
    uint32_t st = name_live;
    if (e->state.compare_exchange_strong(st, name_free)) {
      bump_names(seg.header());
      return caf::none;
    }
  }
  return make_error(errc::name_not_found, "this node has not published '" + name + "'");
}

caf::expected<caf::actor> core::lookup(const std::string& name, caf::timespan wait, pid_t by) {
  if (auto err = check_actor_name(name))
    return err;
  auto& seg = seg_->view;
  auto* hdr = seg.header();
  auto deadline = deadline_after(wait);
  for (;;) {
    auto seen = hdr->names_seq.load(std::memory_order_acquire);
    for (uint32_t i = 0; i < seg.geo.max_names; ++i) {
      auto* e = seg.name(i);
      if (e->state.load(std::memory_order_acquire) != name_live || name != e->name)
        continue;
      auto slot = e->slot;
      auto epoch = e->epoch;
      auto aid = static_cast<caf::actor_id>(e->actor);
      if (by != 0 && seg.slot(slot)->pid.load(std::memory_order_acquire) != by)
        continue;
      if (slot == me_ && epoch == my_epoch_) {
        if (auto x = sys_.registry().get(aid))
          return caf::actor_cast<caf::actor>(std::move(x));
        continue;
      }
      auto p = peer_at(slot);
      if (!p || p->epoch != epoch)
        continue;
      if (auto x = proxies_.get_or_put(p->nid, aid))
        return caf::actor_cast<caf::actor>(std::move(x));
    }
    auto now = steady::now();
    if (now >= deadline)
      return make_error(errc::name_not_found,
                        "no live node"
                          + (by != 0 ? " (pid " + std::to_string(by) + ")" : std::string{})
                          + " published '" + name + "' in group '" + group() + "'");
    auto pause = std::min<steady::duration>(deadline - now, std::chrono::milliseconds(50));
    futex_wait(&hdr->names_seq, seen, pause);
  }
}

caf::expected<uint32_t> core::slot_of(const std::string& name) {
  auto& seg = seg_->view;
  for (uint32_t i = 0; i < seg.geo.max_names; ++i) {
    auto* e = seg.name(i);
    if (e->state.load(std::memory_order_acquire) == name_live && name == e->name)
      return e->slot;
  }
  return make_error(errc::name_not_found, "'" + name + "' is not published");
}

node_stats core::stats() const {
  node_stats res;
  if (my_slot_ != nullptr) {
    res.frames_sent = my_slot_->frames_sent.load(std::memory_order_relaxed);
    res.frames_received = my_slot_->frames_received.load(std::memory_order_relaxed);
    res.frames_rejected = my_slot_->frames_rejected.load(std::memory_order_relaxed);
  }
  res.frames_read_by_callers = caller_frames_.load(std::memory_order_relaxed);
  res.late_wakeups = late_wakeups_.load(std::memory_order_relaxed);
  return res;
}

// -- shm_proxy -----------------------------------------------------------------------

shm_proxy::shm_proxy(caf::actor_config& cfg, std::shared_ptr<core> owner, peer_ptr p)
  : caf::actor_proxy(cfg), core_(std::move(owner)), peer_(std::move(p)) {}

shm_proxy::~shm_proxy() = default;

void shm_proxy::enqueue(caf::mailbox_element_ptr what, caf::execution_unit*) {
  if (!what)
    return;
  auto& content = what->content();
  if (content.size() == 1 && content.match_element<caf::exit_msg>(0)) {
    // An exit message made by a link. It may come while CAF holds this
    // proxy's lock or the dead actor's (a link to an actor that just
    // terminated), and both looking at this proxy's links and serializing
    // the message's source take those locks: the reader thread handles it
    // once no lock is held (fuzzer findings: a deadlock, then a corrupted
    // attachables list when the links were read without the lock).
    auto self = caf::strong_actor_ptr{ctrl()};
    auto msg = std::make_shared<caf::mailbox_element_ptr>(std::move(what));
    core_->defer([self, msg] {
      auto* px = static_cast<shm_proxy*>(caf::actor_cast<caf::abstract_actor*>(self));
      // The other node hears of a linked actor's death from the kill frame
      // of its own proxy, with the same reason: drop the link here.
      auto& em = (*msg)->content().get_as<caf::exit_msg>(0);
      if (!px->drop_link_from(em.source))
        px->send_now(std::move(*msg));
    });
    return;
  }
  send_now(std::move(what));
}

bool shm_proxy::drop_link_from(const caf::actor_addr& source) {
  caf::default_attachable::observe_token tk{source, caf::default_attachable::link};
  std::lock_guard<std::mutex> guard{mtx_};
  return detach_impl(tk, true) > 0;
}

void shm_proxy::send_now(caf::mailbox_element_ptr what) {
  if (dead_.load(std::memory_order_acquire)) {
    // Like a dead local actor, except that a lost node says so.
    auto err = troupe::is(reason_, errc::peer_lost)
                 ? reason_
                 : caf::make_error(caf::sec::request_receiver_down);
    if (what->mid.is_request() && what->sender)
      what->sender->enqueue(caf::make_mailbox_element(nullptr, what->mid.response_id(), {}, err),
                            nullptr);
    return;
  }
  core_->send(peer_, id(), std::move(what));
}

bool shm_proxy::add_backlink(caf::abstract_actor* x) {
  if (!monitorable_actor::add_backlink(x))
    return false;
  core_->export_actor(x->ctrl());
  core_->send_control(peer_, frame_kind::link, id(), x->id());
  return true;
}

bool shm_proxy::remove_backlink(caf::abstract_actor* x) {
  if (!monitorable_actor::remove_backlink(x))
    return false;
  core_->send_control(peer_, frame_kind::unlink, id(), x->id());
  return true;
}

void shm_proxy::kill_proxy(caf::execution_unit* host, caf::error reason) {
  if (!dead_.load(std::memory_order_acquire)) {
    std::lock_guard<std::mutex> guard{kill_mtx_};
    if (!dead_.load(std::memory_order_relaxed)) {
      reason_ = reason;
      dead_.store(true, std::memory_order_release);
    }
  }
  cleanup(std::move(reason), host);
}

} // namespace troupe::ipc::detail
