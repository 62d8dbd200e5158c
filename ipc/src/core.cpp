// The core of a node: membership (slot, epoch, leaving), peers, the proxy
// registry backend, liveness (the watcher) and names. Sending lives in
// outbound.cpp, reading in inbound.cpp.

#include "core_internal.hpp"
#include "fork_server.hpp"
#include "groups.hpp"
#include "spawn_server.hpp"
#include "transport/ring.hpp"
#include "troupe/ipc/error.hpp"

#include <caf/all.hpp>
#include <caf/default_attachable.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <iostream>
#include <system_error>

namespace troupe::ipc::detail {

peer::~peer() {
  close_pidfd();
}

void peer::close_pidfd() noexcept {
  if (auto fd = pidfd.exchange(-1); fd >= 0)
    ::close(fd);
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
  install_call_hooks();
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
  close_watcher_descriptors(); // a node that never started
}

std::string core::instance() const {
  auto* hdr = seg_->view.header();
  return group() + "/" + std::to_string(hdr->creator_pid) + "/"
         + std::to_string(hdr->created_unix_ms);
}

std::string core::key() const {
  group_key k{};
  std::memcpy(k.data(), seg_->view.header()->key, key_bytes);
  return key_to_hex(k);
}

caf::error core::start() {
  // A pidfd per other node, an eventfd, a pidfd of the parent and a /proc
  // file at a time: checked up front, so that a process at its limit gets
  // an error here rather than a node that cannot watch its peers.
  auto others = seg_->view.geo.max_nodes - 1;
  if (auto err = check_descriptor_room(others + 3,
                                       "joining group '" + group() + "' (a pidfd for each of up to "
                                         + std::to_string(others) + " other nodes, and 3 more)"))
    return err;
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0)
    return make_error(errc::resource_limit, "cannot make the eventfd of a node of group '" + group()
                                              + "': " + std::strerror(errno));
  if (auto err = claim_slot())
    return err;
  refresh_peers();
  try {
    reader_ = std::thread{[this] {
      name_this_thread("troupe.reader");
      reader_loop();
    }};
    watcher_ = std::thread{[this] {
      name_this_thread("troupe.watcher");
      watcher_loop();
    }};
  } catch (const std::system_error& e) {
    // ~core leaves: it stops and joins a thread that did start.
    return start_failed("cannot start the threads of a node of group '" + group() + "'",
                        e.code().value());
  }
  return caf::none;
}

caf::error core::start_without_threads() {
  if (auto err = claim_slot())
    return err;
  refresh_peers();
  return caf::none;
}

bool core::try_claim_slot(uint64_t now, uint64_t grace) {
  auto& seg = seg_->view;
  // Pass 0 takes a never-used slot; pass 1 a slot that has rested long
  // enough since its last node left or died (so its peers saw it go).
  for (int pass = 0; pass < 2; ++pass) {
    for (uint32_t i = 0; i < seg.geo.max_nodes; ++i) {
      auto* s = seg.slot(i);
      auto seen = s->tenure.load(std::memory_order_acquire);
      auto st = state_of(seen);
      auto ep = epoch_of(seen);
      auto rested = now - std::min(now, s->dead_since_ms.load(std::memory_order_acquire)) >= grace;
      if (pass == 0) {
        if (st != slot_free || ep != 0)
          continue;
      } else if (st == slot_alive || st == slot_claiming) {
        // A node that died with nobody watching, or in the middle of its
        // claim: mark it, reuse the slot later. (A claimer's start time is
        // not in the slot yet: its pid alone tells.)
        auto gone = st == slot_alive ? !process_alive(s->pid.load(), s->start_ticks.load())
                                     : !process_alive(claimer_of(seen), 0);
        if (gone && s->change(seen, tenure_of(slot_dead, ep))) {
          s->dead_since_ms.store(mono_ms(), std::memory_order_release);
          sweep_names_of(i, ep);
        }
        continue;
      } else if (!rested) {
        continue;
      }
      auto claim = tenure_of(slot_claiming, ep + 1, ::getpid());
      if (s->change(seen, claim)) {
        if (s->releasing.load() != 0) {
          // A node is giving back the rings it shared with the last node
          // here (`release_rings`): try another slot. Nothing saw this
          // claim (nobody reads a slot that is being claimed).
          s->change(claim, seen);
          continue;
        }
        me_ = i;
        my_epoch_ = ep + 1;
        return true;
      }
    }
  }
  return false;
}

caf::error core::claim_slot() {
  auto& seg = seg_->view;
  auto ms = [](caf::timespan t) {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(t).count());
  };
  auto grace = ms(opts_.slot_grace);
  auto give_up = mono_ms() + ms(opts_.join_timeout);
  // When every slot is taken or resting, wait for the first to have rested,
  // up to `join_timeout`: under churn (nodes that come and go faster than
  // their slots rest) a joiner waits a little rather than fail.
  while (!try_claim_slot(mono_ms(), grace)) {
    auto rested_at = first_rested_slot(grace);
    auto now = mono_ms();
    if (!rested_at || *rested_at > give_up)
      return make_error(errc::group_full,
                        "all " + std::to_string(seg.geo.max_nodes) + " node slots of group '"
                          + group() + "' are taken"
                          + (rested_at ? " or resting after their node left" : ""));
    std::this_thread::sleep_for(
      std::chrono::milliseconds(*rested_at - std::min(now, *rested_at) + 1));
  }
  my_slot_ = seg.slot(me_);
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
      my_slot_->change(tenure_of(slot_claiming, my_epoch_, ::getpid()),
                       tenure_of(slot_free, my_epoch_));
      return make_error(errc::bad_segment, "cannot store this node's id");
    }
    std::memcpy(my_slot_->node_id, buf.data(), buf.size());
    my_slot_->node_id_len = static_cast<uint32_t>(buf.size());
  }
  // What the rings to this slot hold is for earlier nodes in it: this node
  // reads from their tails on. Nothing is reset: the writers may not have
  // seen the earlier node go yet (see layout.hpp), and what an earlier node
  // wrote is still to be read by the others.
  for (uint32_t j = 0; j < seg.geo.max_nodes; ++j) {
    if (j == me_)
      continue;
    auto in = seg.ring(j, me_);
    in.hdr->head.store(in.hdr->tail.load(std::memory_order_acquire), std::memory_order_release);
    // A writer that waited for the earlier node to read goes on.
    in.hdr->space_seq.fetch_add(1, std::memory_order_release);
    futex_wake(&in.hdr->space_seq, INT_MAX);
  }
  {
    std::lock_guard<std::mutex> guard{names_mtx_};
    spawn_server_ = start_spawn_server(sys_);
    group_relay_ = start_group_relay(sys_);
  }
  export_actor(caf::actor_cast<caf::strong_actor_ptr>(spawn_server_));
  export_actor(caf::actor_cast<caf::strong_actor_ptr>(group_relay_));
  my_slot_->spawn_server.store(spawn_server_.id(), std::memory_order_relaxed);
  if (!my_slot_->change(tenure_of(slot_claiming, my_epoch_, ::getpid()),
                        tenure_of(slot_alive, my_epoch_))) {
    // Another node took this claim for abandoned: it found no process with
    // this pid (a pid namespace of its own?). The slot is not this node's.
    caf::anon_send_exit(spawn_server_, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(group_relay_, caf::exit_reason::user_shutdown);
    my_slot_ = nullptr;
    return make_error(errc::group_full, "this node stalled while it joined group '" + group()
                                          + "' and its slot was given to others");
  }
  announce_membership();
  attach_groups(sys_, shared_from_this());
  return caf::none;
}

std::optional<uint64_t> core::first_rested_slot(uint64_t grace) const {
  auto& seg = seg_->view;
  std::optional<uint64_t> res;
  for (uint32_t i = 0; i < seg.geo.max_nodes; ++i) {
    auto* s = seg.slot(i);
    auto st = s->state();
    if (st != slot_free && st != slot_dead)
      continue;
    auto at = s->dead_since_ms.load(std::memory_order_acquire) + grace;
    res = res ? std::min(*res, at) : at;
  }
  return res;
}

void core::announce_membership() {
  auto& seg = seg_->view;
  seg.header()->members_seq.fetch_add(1, std::memory_order_acq_rel);
  for (uint32_t i = 0; i < seg.geo.max_nodes; ++i) {
    auto* s = seg.slot(i);
    if (i == me_ || s->state() != slot_alive)
      continue;
    s->doorbell.fetch_add(1, std::memory_order_release);
    futex_wake(&s->doorbell, 1);
  }
}

bool core::take_for_dead(uint32_t slot) {
  auto* s = seg_->view.slot(slot);
  auto ep = s->epoch();
  if (!s->change(tenure_of(slot_alive, ep), tenure_of(slot_dead, ep)))
    return false;
  s->dead_since_ms.store(mono_ms(), std::memory_order_release);
  announce_membership();
  return true;
}

bool core::claim_as(uint32_t slot, int32_t claimer) {
  auto* s = seg_->view.slot(slot);
  auto seen = s->tenure.load();
  if (state_of(seen) != slot_free && state_of(seen) != slot_dead)
    return false;
  return s->change(seen, tenure_of(slot_claiming, epoch_of(seen) + 1, claimer));
}

void core::leave() {
  if (!left_.exchange(true))
    leave_claimed();
}

caf::error core::check_member() const {
  if (left_.load(std::memory_order_acquire))
    return make_error(troupe::errc::peer_lost, "this node left group '" + group() + "'");
  return caf::none;
}

void core::leave_claimed() {
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
  detach_groups(sys_, this);
  {
    std::lock_guard<std::mutex> guard{names_mtx_};
    names_closed_ = true;
  }
  sweep_names_of(me_, my_epoch_);
  if (!orphaned_)
    end_published();
  {
    // Callers that poll the rings see it before they touch the slot again.
    std::lock_guard<std::mutex> guard{park_mtx_};
    stop_ = true;
  }
  my_slot_->doorbell.fetch_add(1);
  futex_wake(&my_slot_->doorbell, INT_MAX);
  wake_watcher();
  auto reason = make_error(troupe::errc::peer_lost, "this node left group '" + group() + "'");
  // An actor that the reader thread runs may be waiting for an answer from
  // another node: it gets this error now, so that the reader can stop.
  for (auto& p : peer_snapshot())
    fail_pending(*p, reason);
  // Called from an actor the reader (or helper) runs, the thread goes on
  // once the actor is done, sees `stop_` and ends; ~core joins it.
  auto self = std::this_thread::get_id();
  if (reader_.joinable() && reader_.get_id() != self)
    reader_.join();
  if (watcher_.joinable() && watcher_.get_id() != self)
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
      deferred_closed_ = true;
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
  // Everything this node holds of others ends here, the peers whose loss
  // was still to be handled too (their cached senders hold proxies, which
  // hold the peer and this core: a cycle that kept both, and their
  // descriptors, for good). Its writers stop before the slot is freed: from
  // then on the peers give the rings back.
  std::vector<peer_ptr> all;
  {
    std::lock_guard<std::mutex> guard{peers_mtx_};
    for (auto& p : peers_)
      if (p)
        all.push_back(std::move(p));
    std::lock_guard<std::mutex> lost{lost_mtx_};
    for (auto* xs : {&lost_, &handling_}) {
      for (auto& p : *xs)
        if (std::find(all.begin(), all.end(), p) == all.end())
          all.push_back(p);
      xs->clear();
    }
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
  // The rest starts now (a claimer that sees the slot free sees this too).
  // Should the slot not be this node's any more, the rest or claim of its
  // new holder looks a moment younger: it waits that much longer.
  my_slot_->dead_since_ms.store(mono_ms(), std::memory_order_release);
  if (!my_slot_->change(tenure_of(slot_alive, my_epoch_), tenure_of(slot_free, my_epoch_))
      && !opts_.quiet)
    std::cerr << "[troupe] group '" << group()
              << "': this node's slot was given to another node while it ran (it was taken "
                 "for dead)\n";
  announce_membership();
  for (auto& p : all) {
    fail_pending(*p, reason);
    p->senders.clear(); // under drain_mtx_, and the reader reads no more
    kill_proxies_of(*p, reason);
    detach_kill_notices(*p);
    p->close_pidfd();
  }
  proxies_.clear();
  close_watcher_descriptors();
  // The last node out removes the segment.
  auto& seg = seg_->view;
  if (live_pid(seg) == 0) {
    remove_segment(seg_->shm_name);
    sweep_dead_blocks(group());
  }
  // Its rings are reserved and released no more.
  seg_->close_file();
}

void core::end_published() {
  // What a node published is its service to the group: it ends with the
  // membership, so the actor system's shutdown does not wait for it.
  // So are the actors it spawned for others: its spawn server is linked
  // to them.
  std::vector<std::pair<std::string, caf::actor>> ending;
  caf::actor server;
  caf::actor relay;
  {
    std::lock_guard<std::mutex> guard{names_mtx_};
    ending.swap(published_);
    server.swap(spawn_server_);
    relay.swap(group_relay_);
  }
  for (auto& [name, actor] : ending)
    caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
  for (auto& service : {server, relay})
    if (service)
      caf::anon_send_exit(service, caf::exit_reason::user_shutdown);
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

peer_ptr core::add_peer_locked(uint32_t slot, uint64_t seen) {
  auto& seg = seg_->view;
  auto* s = seg.slot(slot);
  // Not make_shared: the weak pointers to a lost peer (kill notices not yet
  // detached) would keep its whole memory, not just the control block.
  auto p = std::shared_ptr<peer>(new peer);
  p->slot = slot;
  p->epoch = epoch_of(seen);
  p->pid = s->pid.load(std::memory_order_acquire);
  p->start_ticks = s->start_ticks.load(std::memory_order_acquire);
  p->shm = s;
  p->out = seg.ring(me_, slot);
  p->in = seg.ring(slot, me_);
  p->out_offset = seg.geo.ring_data_offset(me_, slot);
  p->in_offset = seg.geo.ring_data_offset(slot, me_);
  p->nid = slot_node_id(slot);
  // A claimer writes these while the slot says `claiming`, under a new
  // epoch: the same tenure after reading them means they are its node's.
  std::atomic_thread_fence(std::memory_order_acquire);
  if (!p->nid || s->tenure.load(std::memory_order_relaxed) != seen)
    return nullptr;
  auto fd = pidfd_open(p->pid);
  if (fd < 0 && (errno == EMFILE || errno == ENFILE))
    note_polled(*p);
  p->pidfd.store(fd, std::memory_order_release);
  peers_[slot] = p;
  ++peers_version_;
  if (!process_alive(p->pid, p->start_ticks))
    mark_lost(p, make_error(troupe::errc::peer_lost, describe_peer(*p) + " died"));
  return p;
}

void core::refresh_peers() {
  auto& seg = seg_->view;
  bool added = false;
  {
    std::lock_guard<std::mutex> guard{peers_mtx_};
    // `leave` sets `stop_` before it takes the peers under this lock: no
    // peer (and pidfd) is added after it did.
    if (stop_.load(std::memory_order_acquire))
      return;
    for (uint32_t i = 0; i < seg.geo.max_nodes; ++i) {
      if (i == me_)
        continue;
      auto* s = seg.slot(i);
      auto seen = s->tenure.load(std::memory_order_acquire);
      auto st = state_of(seen);
      auto ep = epoch_of(seen);
      auto& known = peers_[i];
      if (known && (st != slot_alive || ep != known->epoch)) {
        auto how = st == slot_free && ep == known->epoch ? " left the group" : " died";
        mark_lost(known, make_error(troupe::errc::peer_lost, describe_peer(*known) + how));
        known = nullptr;
        ++peers_version_;
      }
      if (st == slot_alive && !known) {
        // CAF names a node by its pid, and pids are reused: a newcomer may
        // have the node id of a node that went a moment ago. It waits until
        // that node's loss is handled (its proxies gone), or its frames would
        // reach that node's proxies. The end of the handling looks again.
        if (node_id_in_use_locked(slot_node_id(i)))
          continue;
        if (add_peer_locked(i, seen)) {
          seen_epoch_[i] = ep;
          added = true;
        }
      } else if ((st == slot_dead || st == slot_free) && !known && ep != 0
                 && ep != seen_epoch_[i]) {
        // An incarnation that joined and went (died, or left) between two
        // looks: what it wrote to this node is still in the ring (which is
        // never reset; frames name their writer). Attach to it as to a peer
        // that died, so the loss handling delivers those frames.
        seen_epoch_[i] = ep;
        if (auto p = add_peer_locked(i, seen); p && !p->lost.load())
          mark_lost(
            p, make_error(troupe::errc::peer_lost,
                          describe_peer(*p) + (st == slot_free ? " left the group" : " died")));
        added = true;
      }
    }
  }
  if (added)
    wake_watcher();
  if (added && my_slot_ != nullptr && !stop_.load(std::memory_order_acquire)) {
    // The reader reads the new rings from its next turn on: a newcomer may
    // have written already (ringing before the reader knew its ring).
    my_slot_->doorbell.fetch_add(1);
    futex_wake(&my_slot_->doorbell, INT_MAX);
  }
}

void core::note_polled(const peer& p) {
  peers_polled_.fetch_add(1, std::memory_order_relaxed);
  if (!opts_.quiet)
    std::cerr << "[troupe] group '" << group() << "': no file descriptor left (ulimit -n is "
              << descriptor_limit() << ") to watch the " << describe_peer(p)
              << " with a pidfd: its death is noticed by polling, within 250 ms\n";
}

caf::node_id core::slot_node_id(uint32_t slot) {
  auto* s = seg_->view.slot(slot);
  auto len = std::min<size_t>(s->node_id_len, node_id_max);
  caf::node_id nid;
  caf::binary_deserializer src{sys_, reinterpret_cast<const char*>(s->node_id), len};
  if (src(nid))
    return {};
  return nid;
}

bool core::node_id_in_use_locked(const caf::node_id& nid) {
  if (!nid)
    return false;
  for (auto& p : peers_)
    if (p && p->nid == nid)
      return true;
  if (draining_ && draining_->nid == nid)
    return true;
  std::lock_guard<std::mutex> guard{lost_mtx_};
  for (const auto* xs : {&lost_, &handling_})
    for (auto& p : *xs)
      if (p->nid == nid)
        return true;
  return false;
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
  // A node whose loss is being handled first: what it wrote before it went is
  // delivered now, and handles in it name its actors (even if a newcomer has
  // its node id by now).
  peer_ptr p;
  {
    std::lock_guard<std::mutex> guard{peers_mtx_};
    if (draining_ && draining_->nid == nid)
      p = draining_;
  }
  if (!p)
    p = peer_by_node(nid);
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

// -- liveness ------------------------------------------------------------------------

void core::watcher_loop() {
  std::vector<pollfd> fds;
  std::vector<peer_ptr> watched;
  while (!stop_.load(std::memory_order_acquire)) {
    refresh_peers();
    fds.clear();
    watched.clear();
    fds.push_back(pollfd{wake_fd_, POLLIN, 0});
    exit_if_orphaned();
    // Its parent's end wakes it too (fds[1], when watched by a pidfd).
    size_t first_peer = 1;
    if (auto fd = parent_pidfd_.load(std::memory_order_acquire); fd >= 0) {
      fds.push_back(pollfd{fd, POLLIN, 0});
      first_peer = 2;
    }
    for (auto& p : peer_snapshot()) {
      if (p->lost.load())
        continue;
      if (auto fd = p->pidfd.load(std::memory_order_acquire); fd >= 0) {
        fds.push_back(pollfd{fd, POLLIN, 0});
        watched.push_back(p);
      } else if (!process_alive(p->pid, p->start_ticks)) {
        mark_lost(p, make_error(troupe::errc::peer_lost, describe_peer(*p) + " died"));
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
    for (size_t i = first_peer; i < fds.size(); ++i)
      if (fds[i].revents != 0)
        mark_lost(
          watched[i - first_peer],
          make_error(troupe::errc::peer_lost, describe_peer(*watched[i - first_peer]) + " died"));
  }
}

caf::error core::watch_parent(pid_t parent) {
  // Our parent's pid cannot be reused while we are its child: open its
  // pidfd first, then check that it still is our parent.
  int fd = pidfd_open(parent);
  if (parent <= 1 || ::getppid() != parent) {
    if (fd >= 0)
      ::close(fd);
    return make_error(troupe::errc::peer_lost, "the process that started this one (pid "
                                                 + std::to_string(parent) + ") is gone");
  }
  parent_pid_.store(parent, std::memory_order_release);
  parent_pidfd_.store(fd, std::memory_order_release);
  // The watcher picks the pidfd up at its next round; wake it for that.
  wake_watcher();
  return caf::none;
}

void core::close_watcher_descriptors() {
  // The watcher is gone (or is this thread, on its way to `_Exit`). What
  // still holds this core (a handle to a proxy, a kill notice running on a
  // scheduler thread) holds no descriptor: they are closed when `leave`
  // returns.
  {
    std::lock_guard<std::mutex> guard{wake_mtx_};
    if (wake_fd_ >= 0)
      ::close(wake_fd_);
    wake_fd_ = -1;
  }
  if (auto fd = parent_pidfd_.exchange(-1); fd >= 0)
    ::close(fd);
}

void core::wake_watcher() {
  std::lock_guard<std::mutex> guard{wake_mtx_};
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    [[maybe_unused]] auto rc = ::write(wake_fd_, &one, sizeof(one));
  }
}

void core::exit_if_orphaned() {
  auto parent = parent_pid_.load(std::memory_order_acquire);
  // Orphans are adopted by init or a subreaper: the parent pid changes.
  if (parent == 0 || ::getppid() == parent)
    return;
  // The process ends here, on this thread: the node must not be destroyed
  // meanwhile (a thread that drops the last handle would destroy this
  // thread's `std::thread`), and its actors are not stopped first (a thread
  // that waits for one would go on to tear the process down beside us).
  auto keep_alive = weak_from_this().lock();
  // A thread already leaving takes the process down itself.
  if (!keep_alive || left_.exchange(true))
    return;
  orphaned_ = true;
  if (!opts_.quiet)
    std::cerr << "[troupe] " << group() << ": the process that started this one (pid " << parent
              << ") is gone: leaving the group and exiting\n";
  leave_claimed();
  // Destructors would wait for actors that may never end; the group's
  // state is clean now, which is what must not be lost.
  std::_Exit(1);
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
  try {
    helper_ = std::thread{[this, busy] {
      name_this_thread("troupe.helper");
      helper_loop(busy);
    }};
  } catch (const std::system_error& e) {
    // No thread for now (`ulimit -u`): the input waits for the reader, as
    // it would without a helper; the next look tries again (said once).
    helper_done_.store(true, std::memory_order_release);
    static std::atomic<bool> reported{false};
    if (!opts_.quiet && !reported.exchange(true))
      std::cerr << "[troupe] group '" << group()
                << "': " << describe(start_failed("cannot start a helper reader", e.code().value()))
                << '\n';
  }
}

// -- names ---------------------------------------------------------------------------

namespace {

caf::error check_actor_name(const std::string& name) {
  if (name.empty() || name.size() > actor_name_max)
    return make_error(troupe::errc::invalid_argument, "a published name has 1 to "
                                                        + std::to_string(actor_name_max)
                                                        + " characters");
  for (unsigned char c : name)
    if (c < 0x20 || c == 0x7f)
      return make_error(troupe::errc::invalid_argument,
                        "a published name holds no control characters");
  return caf::none;
}

void bump_names(segment_header* hdr) {
  hdr->names_seq.fetch_add(1, std::memory_order_release);
  futex_wake(&hdr->names_seq, INT_MAX);
}

} // namespace

std::optional<uint32_t> core::write_name_entry(const std::string& name, uint64_t actor) {
  auto& seg = seg_->view;
  for (uint32_t i = 0; i < seg.geo.max_names; ++i) {
    auto* e = seg.name(i);
    uint32_t st = name_free;
    if (!e->state.compare_exchange_strong(st, name_writing))
      continue;
    e->slot = me_;
    e->epoch = my_epoch_;
    e->actor = actor;
    std::memset(e->name, 0, sizeof(e->name));
    std::memcpy(e->name, name.data(), name.size());
    e->state.store(name_live, std::memory_order_release);
    return i;
  }
  return std::nullopt;
}

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
  if (auto err = check_member())
    return err;
  if (auto err = check_actor_name(name))
    return err;
  if (!x)
    return make_error(troupe::errc::invalid_argument, "cannot publish an invalid actor handle");
  if (x->node() != sys_.node())
    return make_error(troupe::errc::invalid_argument,
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
    if (s->state() == slot_alive && s->epoch() == e->epoch
        && process_alive(s->pid.load(), s->start_ticks.load())) {
      if (e->slot == me_ && e->actor == x->id())
        return caf::none;
      return make_error(errc::name_taken, "'" + name + "' is already published in group '" + group()
                                            + "' (by pid " + std::to_string(s->pid.load()) + ")");
    }
    uint32_t st = name_live;
    e->state.compare_exchange_strong(st, name_free);
  }
  {
    // Held throughout: `leave` closes the names under it before it sweeps
    // this node's, so no entry is written after the sweep.
    std::lock_guard<std::mutex> guard{names_mtx_};
    if (names_closed_)
      return make_error(troupe::errc::peer_lost, "this node left group '" + group() + "'");
    auto i = write_name_entry(name, x->id());
    if (!i)
      return make_error(troupe::errc::invalid_argument,
                        "group '" + group() + "' has no room for more names ("
                          + std::to_string(seg.geo.max_names) + ")");
    // Two nodes publishing one name at once: the lower entry wins.
    for (uint32_t j = 0; j < *i; ++j) {
      auto* other = seg.name(j);
      if (other->state.load(std::memory_order_acquire) == name_live && name == other->name) {
        seg.name(*i)->state.store(name_free, std::memory_order_release);
        return make_error(errc::name_taken,
                          "'" + name + "' is already published in group '" + group() + "'");
      }
    }
    published_.emplace_back(name, x);
  }
  bump_names(seg.header());
  return caf::none;
}

caf::error core::unpublish(const std::string& name) {
  if (auto err = check_member())
    return err;
  auto& seg = seg_->view;
  for (uint32_t i = 0; i < seg.geo.max_names; ++i) {
    auto* e = seg.name(i);
    if (e->state.load(std::memory_order_acquire) != name_live || e->slot != me_
        || e->epoch != my_epoch_ || name != e->name)
      continue;
    uint32_t st = name_live;
    if (e->state.compare_exchange_strong(st, name_free)) {
      bump_names(seg.header());
      std::lock_guard<std::mutex> guard{names_mtx_};
      auto named = [&](auto& entry) { return entry.first == name; };
      published_.erase(std::remove_if(published_.begin(), published_.end(), named),
                       published_.end());
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
    // Also while it waits: once the node left, it meets no peer any more.
    if (auto err = check_member())
      return err;
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

caf::expected<caf::actor> core::spawn_server_of(pid_t pid) {
  auto& seg = seg_->view;
  auto* hdr = seg.header();
  // A child this process started a moment ago (`node::spawn`) may not have
  // joined yet: it is waited for while it runs, as long as a join may take.
  auto deadline = steady::now() + opts_.join_timeout;
  for (;;) {
    if (auto err = check_member()) // as in `lookup`
      return err;
    auto seen = hdr->members_seq.load(std::memory_order_acquire);
    bool was_member = false; // it joined and left (or is leaving): no wait
    for (uint32_t i = 0; i < seg.geo.max_nodes; ++i) {
      auto* s = seg.slot(i);
      if (s->pid.load(std::memory_order_acquire) != pid)
        continue;
      auto st = s->state();
      if (st != slot_alive) {
        was_member |= st == slot_free || st == slot_dead; // not while claiming
        continue;
      }
      if (i == me_)
        return spawn_server_of(sys_.node());
      if (auto p = peer_at(i); p && p->epoch == s->epoch())
        return spawn_server_of(p->nid);
    }
    if (was_member || parent_pid_of(pid) != ::getpid() || !process_alive(pid, 0)
        || steady::now() >= deadline)
      return make_error(troupe::errc::peer_lost,
                        "no live node of group '" + group() + "' has pid " + std::to_string(pid));
    // Joins bump `members_seq` but wake nobody on it: look again soon.
    futex_wait(&hdr->members_seq, seen, std::chrono::milliseconds(1));
  }
}

caf::expected<caf::actor> core::spawn_server_of(const caf::node_id& nid) {
  if (auto err = check_member())
    return err;
  if (nid == sys_.node()) {
    std::lock_guard<std::mutex> guard{names_mtx_};
    if (spawn_server_)
      return spawn_server_;
    return make_error(troupe::errc::peer_lost, "this node left group '" + group() + "'");
  }
  auto p = peer_by_node(nid);
  if (!p)
    return make_error(troupe::errc::peer_lost, "that node is no longer in group '" + group() + "'");
  auto aid = static_cast<caf::actor_id>(p->shm->spawn_server.load(std::memory_order_acquire));
  if (auto x = proxies_.get_or_put(p->nid, aid))
    return caf::actor_cast<caf::actor>(std::move(x));
  return make_error(troupe::errc::peer_lost, describe_peer(*p) + " is gone");
}

caf::error core::add_subscription(const std::string& group) {
  auto entry = subscription_entry(group);
  // Held throughout: `leave` closes subscriptions under it before it sweeps
  // this node's names, so no entry is written after the sweep.
  std::lock_guard<std::mutex> guard{names_mtx_};
  if (!group_relay_ || names_closed_)
    return make_error(troupe::errc::peer_lost, "this node left group '" + this->group() + "'");
  auto relay = group_relay_.id();
  auto& seg = seg_->view;
  // Unlike a published name, one entry per node: each names its own relay.
  for (uint32_t i = 0; i < seg.geo.max_names; ++i) {
    auto* e = seg.name(i);
    if (e->state.load(std::memory_order_acquire) == name_live && e->slot == me_
        && e->epoch == my_epoch_ && entry == e->name)
      return caf::none;
  }
  if (write_name_entry(entry, relay)) {
    bump_names(seg.header());
    return caf::none;
  }
  return make_error(troupe::errc::invalid_argument,
                    "group '" + this->group() + "' has no room for more names ("
                      + std::to_string(seg.geo.max_names)
                      + "), which subscriptions to process groups share with published names");
}

void core::remove_subscription(const std::string& group) {
  auto entry = subscription_entry(group);
  auto& seg = seg_->view;
  for (uint32_t i = 0; i < seg.geo.max_names; ++i) {
    auto* e = seg.name(i);
    if (e->state.load(std::memory_order_acquire) != name_live || e->slot != me_
        || e->epoch != my_epoch_ || entry != e->name)
      continue;
    uint32_t st = name_live;
    if (e->state.compare_exchange_strong(st, name_free))
      bump_names(seg.header());
  }
}

std::vector<caf::strong_actor_ptr> core::subscribed_relays(const std::string& group,
                                                           bool& complete) {
  complete = true;
  std::vector<caf::strong_actor_ptr> res;
  auto entry = subscription_entry(group);
  auto& seg = seg_->view;
  for (uint32_t i = 0; i < seg.geo.max_names; ++i) {
    auto* e = seg.name(i);
    if (e->state.load(std::memory_order_acquire) != name_live || entry != e->name)
      continue;
    auto slot = e->slot;
    auto epoch = e->epoch;
    auto aid = static_cast<caf::actor_id>(e->actor);
    // Freed (and maybe taken again) while read: skip it, as `lookup` would
    // find it gone.
    if (e->state.load(std::memory_order_acquire) != name_live || entry != e->name)
      continue;
    if (slot == me_)
      continue;
    auto* s = seg.slot(slot);
    if (s->state() != slot_alive || s->epoch() != epoch)
      continue; // a node that is gone; its entries go with its names
    auto p = peer_at(slot);
    if (!p || p->epoch != epoch) {
      complete = false;
      continue;
    }
    if (auto x = proxies_.get_or_put(p->nid, aid))
      res.push_back(std::move(x));
  }
  return res;
}

uint64_t core::membership_version() const noexcept {
  auto* hdr = seg_->view.header();
  return uint64_t{hdr->names_seq.load(std::memory_order_acquire)} << 32
         | hdr->members_seq.load(std::memory_order_acquire);
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
  res.peers_polled = peers_polled_.load(std::memory_order_relaxed);
  return res;
}

} // namespace troupe::ipc::detail
