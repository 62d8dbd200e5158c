#pragma once

// The engine behind `troupe::ipc::node`: the peers, the proxies, the reader
// and watcher threads. Internal.

#include "layout.hpp"
#include "segment.hpp"
#include "transport/message_decoder.hpp"
#include "troupe/ipc/node.hpp"

#include <caf/actor_proxy.hpp>
#include <caf/actor_system.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/node_id.hpp>
#include <caf/proxy_registry.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/scoped_execution_unit.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace troupe::ipc::detail {

/// Makes troupe's blocking calls borrow a node's callers and read its rings
/// while they wait for an answer from another process (see
/// `troupe::detail::remote_call_hooks`). Done by every core; idempotent.
void install_call_hooks() noexcept;

/// Idle `scoped_actor`s for blocking calls to other nodes' actors, kept by
/// the node so that they end before the actor system does.
struct caller_pool {
  static constexpr size_t max_idle = 16;
  std::mutex mtx;
  bool closed = false;
  std::vector<std::unique_ptr<caf::scoped_actor>> idle;
};

/// This node's view of another node of the group: one incarnation, (slot,
/// epoch). Shared by the proxies of its actors; outlives its loss so that
/// late senders fail cleanly.
struct peer {
  uint32_t slot = 0;
  uint32_t epoch = 0;
  pid_t pid = 0;
  uint64_t start_ticks = 0;
  caf::node_id nid;
  ring_view out; // frames from this node to the peer
  ring_view in;  // frames from the peer to this node
  /// Where the data of `out` and `in` lie in the segment.
  size_t out_offset = 0;
  size_t in_offset = 0;
  /// The data of both rings are backed by memory (see `mapped_segment::
  /// reserve`): set by the first write to the peer, under `write_mtx`.
  bool rings_reserved = false;
  node_slot* shm = nullptr;
  /// Watched by the watcher thread; closed once the peer's loss is handled
  /// or this node leaves (`close_pidfd`), whoever still holds the peer.
  std::atomic<int> pidfd{-1};

  /// Closes `pidfd`; once.
  void close_pidfd() noexcept;

  /// Set once the peer is gone (after `lost_reason`); senders then fail
  /// with `lost_reason`. `loss_claimed` makes sure one thread writes it.
  std::atomic<bool> lost{false};
  std::atomic<bool> loss_claimed{false};
  caf::error lost_reason;

  /// Serializes writers of this process on `out`.
  std::mutex write_mtx;
  /// Frames that could not be written without waiting (written by the
  /// reader thread, which must never block); flushed before any other frame
  /// so order holds. A frame too large for one record goes out in pieces,
  /// as many as fit at each try: `sent` counts what is in the ring already,
  /// and until the frame is whole nothing else may be written after it.
  struct outgoing_frame {
    std::vector<char> bytes;
    size_t sent = 0;
  };
  std::mutex backlog_mtx;
  std::deque<outgoing_frame> backlog;
  std::atomic<bool> has_backlog{false};

  /// Requests sent to the peer's actors that await an answer: (requester,
  /// response id) -> requester.
  struct key_hash {
    size_t operator()(const std::pair<caf::actor_id, uint64_t>& k) const noexcept {
      return std::hash<uint64_t>{}(k.first * 0x9E3779B97F4A7C15ull ^ k.second);
    }
  };
  std::mutex pending_mtx;
  std::unordered_map<std::pair<caf::actor_id, uint64_t>, caf::weak_actor_ptr, key_hash> pending;

  /// Proxies of the peer's actors that sent here, and the last local
  /// receiver (reader thread only): saves the registries' locks per frame.
  std::unordered_map<caf::actor_id, caf::strong_actor_ptr> senders;
  caf::actor_id last_receiver = 0;
  caf::weak_actor_ptr last_dest;

  /// Local actors this peer asked to hear about (announce frames) that have
  /// a functor attached for it already (reader thread only): a repeated
  /// announce attaches nothing more.
  std::unordered_set<caf::actor_id> announced;

  /// Reassembly of a frame sent in chunks (reader thread only). Kept
  /// between frames while they come (no allocation and page faults per
  /// large message); given back when the reader parks.
  std::vector<char> assembly;
  uint64_t assembly_total = 0;

  ~peer();
};

using peer_ptr = std::shared_ptr<peer>;

/// The execution unit of a thread that reads the rings (the reader thread,
/// a polling caller, a helper reader). An actor that a frame makes ready is
/// run by that thread itself, once it has let go of the rings, instead of
/// waking a worker of the scheduler for it: a cross-process message then
/// costs no thread hand-off (on these VMs a wake-up is tens of
/// microseconds, most of a round trip). Under a stream of input the thread
/// takes turns: at most `core::frames_per_turn` frames read, then the actor
/// run for at most as many messages (carried over to the next turn while
/// input keeps coming), so that decoding and handling share one thread and
/// a mailbox grows no faster than its actor empties it. An actor whose
/// runs here used more than `slow_run` of CPU time, or took that long and
/// blocked, three times within a second (a run that was only preempted is
/// no slow one), or that blocked for long (see `core::watcher_loop`), or
/// whose sends found a full ring (a thread that reads the rings never waits
/// for space), goes to the scheduler from then on. The owners of shared
/// containers and sync primitives (`serve_on_readers`) answer in
/// microseconds and never block: they always run here.
class reader_unit final : public caf::scoped_execution_unit {
public:
  /// `busy_since` (steady-clock nanoseconds, 0 while idle) is set while this
  /// unit runs an actor, for the watcher to see a handler that blocks;
  /// `backlogged` counts frames that found a full ring.
  reader_unit(caf::actor_system* sys, std::atomic<int64_t>* busy_since,
              std::atomic<int64_t>* last_run, const std::atomic<uint64_t>* backlogged);

  void exec_later(caf::resumable* ptr) override;

  /// Runs the actors that became ready, each for at most `max_throughput`
  /// messages: the owners served on readers (and those they make ready),
  /// then at most one other actor unless `owners_only` (a helper reader or
  /// a polling caller): the one carried over from the last turn, else the
  /// last made ready. What that one makes ready goes to the scheduler, so
  /// that nothing waits behind an actor that blocks. If it has messages
  /// left, it is carried over to the next turn while `input_waiting()`,
  /// else it goes to the scheduler. Every other actor goes to the
  /// scheduler.
  void run_ready(const std::function<bool()>& input_waiting, bool owners_only = false);

  /// Gives the actor carried over to the next turn (if any) to the
  /// scheduler: this thread stops reading for now.
  void hand_over_carried();

  static constexpr size_t max_throughput = 64;
  static constexpr std::chrono::microseconds slow_run{1000};

private:
  struct ready_actor {
    caf::resumable* job = nullptr;
    caf::abstract_actor* actor = nullptr; // null: not an actor, or not to run here
    bool owner = false;                   // served on readers: always runs here
  };
  caf::resumable::resume_result run(const ready_actor& x);

  std::vector<ready_actor> ready_;
  std::vector<ready_actor> others_;
  /// The actor run here last turn that still had messages, under a stream
  /// of input (null job: none).
  ready_actor carried_{};
  /// The actor whose last run here took `slow_run` by the clock: its next
  /// run is looked at closer (see `run`).
  const caf::abstract_actor* suspect_ = nullptr;
  /// While an actor other than an owner runs here: what it makes ready
  /// goes to the scheduler.
  bool diverting_ = false;
  std::atomic<int64_t>* busy_since_;
  std::atomic<int64_t>* last_run_;
  const std::atomic<uint64_t>* backlogged_;
};

class core : public std::enable_shared_from_this<core>, public caf::proxy_registry::backend {
public:
  core(caf::actor_system& sys, std::unique_ptr<mapped_segment> seg, group_options opts);
  ~core() override;

  /// Claims a slot and starts the threads.
  caf::error start();

  /// Leaves the group (idempotent).
  void leave();
  /// The work of `leave`, for the thread that set `left_`.
  void leave_claimed();
  /// `troupe::errc::peer_lost` once this node left (or is leaving); what
  /// needs the membership fails with it.
  caf::error check_member() const;

  // -- proxy_registry::backend --------------------------------------------------

  caf::strong_actor_ptr make_proxy(caf::node_id nid, caf::actor_id aid) override;
  void set_last_hop(caf::node_id*) override;

  // -- used by node ---------------------------------------------------------------

  /// Makes this process end when process `parent` (which started it) does:
  /// the watcher sees it go, the node leaves, and the process exits with
  /// status 1. Fails with `troupe::errc::peer_lost` if `parent` is gone already.
  caf::error watch_parent(pid_t parent);

  caf::error publish(const std::string& name, const caf::actor& x);
  caf::error unpublish(const std::string& name);
  caf::expected<caf::actor> lookup(const std::string& name, caf::timespan wait, pid_t by = 0);
  caf::expected<uint32_t> slot_of(const std::string& name);
  /// The spawn server (see spawn_server.hpp) of the live node with pid
  /// `pid`, or of node `nid`; `troupe::errc::peer_lost` if there is none.
  caf::expected<caf::actor> spawn_server_of(pid_t pid);
  caf::expected<caf::actor> spawn_server_of(const caf::node_id& nid);

  // -- publish/subscribe (see groups.hpp) ----------------------------------------

  /// Says in the name table that this node has subscribers to `group`.
  caf::error add_subscription(const std::string& group);
  /// Takes that back.
  void remove_subscription(const std::string& group);
  /// The group relays of the other live nodes with subscribers to `group`.
  /// `complete` is false if an entry names a node this one does not know
  /// yet (it joined a moment ago): ask again at the next message.
  std::vector<caf::strong_actor_ptr> subscribed_relays(const std::string& group, bool& complete);
  /// Changes whenever a name is published or removed, or a node joins,
  /// leaves or dies: what `subscribed_relays` returned holds until then.
  uint64_t membership_version() const noexcept;

  node_stats stats() const;
  caf::error write_raw(uint32_t peer_slot, const std::vector<unsigned char>& bytes);
  /// Bytes published in the ring from slot `from` to slot `to` and not yet
  /// read (a test hook).
  uint64_t unread(uint32_t from, uint32_t to) {
    auto r = seg_->view.ring(from, to);
    return r.hdr->tail.load(std::memory_order_acquire)
           - r.hdr->head.load(std::memory_order_acquire);
  }
  /// Marks the node in `slot` dead, as a node that took it for dead would,
  /// whether or not it runs (a test hook); false if the slot is not alive.
  bool take_for_dead(uint32_t slot);
  /// Leaves `slot` as a node of pid `claimer` that stopped or died in the
  /// middle of claiming it would (a test hook); false unless it is free or
  /// dead.
  bool claim_as(uint32_t slot, int32_t claimer);

  caf::actor_system& system() {
    return sys_;
  }
  const std::string& group() const {
    return seg_->group;
  }
  std::string key() const;
  /// Tells this run of the group from another of the same name (in a
  /// container on the same kernel, or a later run): name, creator, creation.
  std::string instance() const;
  uint32_t slot() const {
    return me_;
  }
  const group_options& options() const {
    return opts_;
  }

  /// The idle callers of blocking calls to this group's actors (see
  /// `lend_caller` in node.cpp); emptied and closed when the node leaves.
  const std::shared_ptr<caller_pool>& callers() const noexcept {
    return callers_;
  }

  std::atomic<bool> stall_next_frame{false};
  /// While set, lost peers wait in `lost_` unhandled (a test hook).
  std::atomic<bool> hold_losses{false};
  /// How many lost peers wait to be handled (a test hook).
  size_t unhandled_losses() {
    std::lock_guard<std::mutex> guard{lost_mtx_};
    return lost_.size();
  }
  /// How many peers the peer table holds (a test hook).
  size_t known_peers() {
    std::lock_guard<std::mutex> guard{peers_mtx_};
    return static_cast<size_t>(
      std::count_if(peers_.begin(), peers_.end(), [](const peer_ptr& p) { return p != nullptr; }));
  }

  // -- test hooks (decoder_harness): the reader driven by hand --------------------

  /// `start`, but without the reader and watcher threads: frames are read
  /// only when `test_feed` says so.
  caf::error start_without_threads();

  /// Puts `n` bytes (at most a ring's worth) into the ring from the peer in
  /// `peer_slot`, from ring offset `at` on (wrapping), and reads them with
  /// the reader's own code (`drain`) on the calling thread. Starts and ends
  /// by forgetting what the node holds of the peer (`test_forget`). Returns
  /// what the counters moved by.
  node_stats test_feed(uint32_t peer_slot, const unsigned char* bytes, size_t n, uint64_t at);

  /// Drops the node's state about `p`: proxies (killed), half-assembled
  /// chunks, pending requests (failed), and what it wrote to `p`.
  void test_forget(peer& p);

  /// What this node wrote to the peer in `peer_slot` since the last call
  /// (nobody reads that ring otherwise), from ring offset `*at` on (pads
  /// where it wrapped included); empties the ring.
  std::vector<unsigned char> test_take_output(uint32_t peer_slot, uint64_t* at);

  /// A proxy of actor `aid` of the peer in `peer_slot`.
  caf::strong_actor_ptr test_proxy(uint32_t peer_slot, caf::actor_id aid);

  /// `send_control` to the peer in `peer_slot`.
  void test_send_control(uint32_t peer_slot, frame_kind kind, uint64_t receiver, uint64_t sender,
                         const caf::error* reason = nullptr);

  /// Tells cores apart even when one is allocated where another was.
  const uint64_t serial;

  // -- used by proxies ------------------------------------------------------------

  /// Sends a message to actor `receiver` of `p`; answers the sender with an
  /// error if that fails.
  void send(const peer_ptr& p, caf::actor_id receiver, caf::mailbox_element_ptr what);

  /// Sends a control frame (never waits; queues behind a full ring).
  void send_control(const peer_ptr& p, frame_kind kind, uint64_t receiver, uint64_t sender,
                    const caf::error* reason = nullptr);

  /// Registers `x` in the actor registry so that frames can reach it by id.
  void export_actor(const caf::strong_actor_ptr& x);

  /// `export_actor`, skipped when this thread just did it for `x`.
  void export_sender(const caf::strong_actor_ptr& x);

private:
  /// Claims a slot for this node and skips what its rings hold for earlier
  /// nodes in it (the first half of `start`).
  caf::error claim_slot();

  /// Claims a free slot, or one that has rested for `grace` since its node
  /// left or died (`me_` names it); false when there is none now.
  bool try_claim_slot(uint64_t now, uint64_t grace);

  /// When the first free or dead slot will have rested for `grace` (in
  /// `mono_ms` time); none when every slot is taken.
  std::optional<uint64_t> first_rested_slot(uint64_t grace) const;

  /// Counts (and tells, unless quiet) a peer watched by polling because this
  /// process had no descriptor left for its pidfd.
  void note_polled(const peer& p);

  // -- peers ----------------------------------------------------------------------
  peer_ptr peer_at(uint32_t slot);
  peer_ptr peer_by_node(const caf::node_id& nid);
  /// Reads the slot table and registers new incarnations (any thread).
  void refresh_peers();
  /// A peer for the node of `slot` in tenure `seen` (state and epoch, see
  /// `node_slot::tenure`), read from the slot; null if the slot moved on to
  /// another tenure while it was read (its pid and node id may be the next
  /// node's) or its node id cannot be read.
  peer_ptr add_peer_locked(uint32_t slot, uint64_t seen);
  /// The node id in `slot` (none if it cannot be read).
  caf::node_id slot_node_id(uint32_t slot);
  /// Whether a known peer, one whose loss waits to be handled, or the one
  /// being drained has node id `nid` (under `peers_mtx_`).
  bool node_id_in_use_locked(const caf::node_id& nid);
  /// Tells the group that the slot table changed (`members_seq`), and
  /// wakes the other nodes' readers to look.
  void announce_membership();
  void mark_lost(const peer_ptr& p, caf::error reason);
  std::vector<peer_ptr> peer_snapshot();

  // -- writing --------------------------------------------------------------------
  enum class put_result { done, would_block, failed };
  /// Writes a whole frame (header + payload), in chunks if it is larger than
  /// a record may be. With `may_wait`, waits for space (per the policy);
  /// without, queues what does not fit at once in the peer's backlog.
  caf::error write_frame(peer& p, const char* data, size_t n, bool may_wait);
  caf::error write_frame_locked(peer& p, const char* data, size_t n,
                                std::chrono::steady_clock::time_point deadline);
  /// Writes the pieces of frame `data` (`n` bytes, too large for one
  /// record) from byte `sent` on, advancing `sent`; without `may_wait`,
  /// stops at the first piece that does not fit (`would_block`). With the
  /// write lock held.
  put_result put_pieces(peer& p, const char* data, size_t n, size_t& sent, bool may_wait,
                        std::chrono::steady_clock::time_point deadline, caf::error& err);
  /// Writes one record made of `a` then `b`, with the write lock held.
  put_result put_record(peer& p, const char* a, size_t an, const char* b, size_t bn, bool may_wait,
                        std::chrono::steady_clock::time_point deadline, caf::error& err);
  /// Flushes the backlog; returns false if some of it is still there.
  bool flush_backlog_locked(peer& p, bool may_wait, caf::error& err);
  caf::error wait_for_space(peer& p, uint64_t need, std::chrono::steady_clock::time_point deadline);
  /// Reserves the data of the rings to and from `p` (with its write lock).
  caf::error reserve_rings(peer& p);
  /// Gives the data of the rings to and from lost peer `p` back, once both
  /// are done with (see `handle_losses`).
  void release_rings(peer& p);
  void ring_doorbell(peer& p);
  /// Wakes this node's reader if it is parked (work for it in a backlog).
  void wake_own_reader();
  void bounce(const caf::strong_actor_ptr& sender, caf::message_id mid, const caf::error& err,
              bool tell_async_sender);

  // -- reading --------------------------------------------------------------------
  //
  // Who reads the rings: the reader thread, or one blocking caller waiting
  // for an answer (`poll_until`), whichever holds `drain_mtx_`; a turn is
  // nearly the same code for both. While a caller polls, the reader thread
  // sleeps (see `park`) and writers leave it asleep (`parked` is 0: somebody
  // is reading); the caller, when it stops, hands the rings back, waking the
  // reader if input came. On two cores that takes a thread hand-off and a
  // wake-up out of a cross-process call: the caller reads its own answer.
  // A caller leaves what runs functors attached to remote actors (kill
  // frames: it stops reading at one, so the frames behind it keep their
  // order), loss handling and deferred work to the reader thread: the
  // caller may hold the user's locks.

  /// What one thread keeps between its turns at the rings.
  struct turn_state {
    /// `busy_since`: see `reader_unit` (null: a slot of its own).
    explicit turn_state(core& c, std::atomic<int64_t>* busy_since = nullptr);
    std::atomic<int64_t> own_busy_since{0};
    reader_unit ctx;
    std::vector<peer_ptr> peers;
    uint64_t seen_version = ~uint64_t{0};
    uint32_t seen_members = ~uint32_t{0};
    /// The ring the next turn reads first.
    size_t first_peer = 0;
    /// The last turn left frames in a backlog (to retry soon).
    bool backlog = false;
    /// The last turn found the rings taken by another thread.
    bool busy = false;
    /// Runs only the owners served on readers (a helper reader).
    bool owners_only = false;
    /// Frames this thread read (for `node_stats::frames_read_by_callers`).
    uint64_t frames_read = 0;
  };

  void reader_loop();
  /// Reads the rings while the reader thread is stuck in a handler that
  /// blocks (started by the watcher); ends once it is back.
  void helper_loop(int64_t stuck_since);
  /// Takes a new snapshot of the peers if they changed.
  void catch_up(turn_state& st);
  /// Reads every ring once and handles the losses (on the reader thread
  /// only), holding `drain_mtx_` (skipped, with `st.busy`, if another thread
  /// holds it); then, without it, runs what became ready and the deferred
  /// work (on the reader thread only) and retries backlogs. True if there
  /// was input.
  bool turn(turn_state& st);
  /// Whether a parked reader would have something to do.
  bool work_waiting(const turn_state& st);
  /// Spins until `work_waiting` or `until`.
  void spin_until_work(const turn_state& st, std::chrono::steady_clock::time_point until);
  /// Input is waiting, no caller reads, and the doorbell still reads `seen`.
  bool unrung_input(const turn_state& st, uint32_t seen);
  /// The reader thread waits for a doorbell (or a timeout).
  void park(turn_state& st);
  /// Frees the reassembly buffers a burst of large frames left (before the
  /// reader parks).
  void release_idle_buffers(turn_state& st);

public:
  /// Runs `fn` on the reader thread, after its next drain, where no actor's
  /// lock is held (and wakes the reader for it); drops it once the node left.
  void defer(std::function<void()> fn);

  /// Reads the rings on the calling thread, as the reader thread would,
  /// until `done()` or `until` (or the node leaves). For a blocking caller
  /// that waits for an answer from another node; does nothing on a thread
  /// that is reading the rings already, or while another caller polls.
  void poll_until(const std::function<bool()>& done, std::chrono::steady_clock::time_point until);

private:
  void run_deferred();
  std::mutex deferred_mtx_;
  std::vector<std::function<void()>> deferred_;
  /// Set by `leave`: what is deferred after it is dropped.
  bool deferred_closed_ = false;

  /// Reads `p`'s ring, at most `budget` frames (less what it read); false
  /// if it had no input.
  bool drain(peer& p, reader_unit& ctx, size_t& budget);
  /// What `drain` does with a frame, by the nodes it is between.
  enum class frame_fate {
    read,
    /// For an earlier node in this slot, or from one this node never knew.
    skip,
    /// From a later node in the peer's slot: `p` ends here.
    later,
    /// From an earlier node in the peer's slot, whose loss is not handled
    /// yet: its own drain reads it.
    earlier,
    /// From a node the peer's slot has not had yet.
    forged,
  };
  frame_fate fate_of(const peer& p, const frame_header& h);
  /// Whether a lost peer (slot, epoch) is still to be handled.
  bool loss_unhandled(uint32_t slot, uint32_t epoch);
  /// Frames one turn reads at most, over all rings.
  static constexpr size_t frames_per_turn = reader_unit::max_throughput;
  void handle_frame(peer& p, const frame_header& h, const unsigned char* payload, reader_unit& ctx);
  void reject(peer& p, const frame_header* h, const std::string& why);
  void handle_losses(reader_unit& ctx);
  /// Kills the proxies of `p`'s actors and forgets them.
  void kill_proxies_of(const peer& p, const caf::error& reason);
  /// Takes the kill notices for `p` off the local actors it announced.
  void detach_kill_notices(peer& p);
  /// On leaving: the kill notices of announced actors that ended but whose
  /// functors have not sent them yet.
  void send_pending_kill_notices();
  /// Sends `user_shutdown` to every actor this node still publishes.
  void end_published();
  /// Whether the parent that `watch_parent` named is gone; if so, leaves the
  /// group and ends the process (on the watcher thread).
  void exit_if_orphaned();
  bool any_input(const std::vector<peer_ptr>& peers);
  void fail_pending(peer& p, const caf::error& reason);
  caf::strong_actor_ptr sender_proxy(peer& p, caf::actor_id aid);
  caf::strong_actor_ptr local_receiver(peer& p, caf::actor_id aid);

  // -- liveness -------------------------------------------------------------------
  void watcher_loop();
  /// Makes the watcher look again (a new peer, a parent to watch).
  void wake_watcher();
  /// Closes the eventfd and the parent's pidfd, which only the watcher uses.
  void close_watcher_descriptors();
  /// Starts `helper_` when the reader thread is stuck in a handler.
  void start_helper_if_stuck();

  // -- names ----------------------------------------------------------------------
  void sweep_names_of(uint32_t slot, uint32_t epoch);
  /// Takes a free entry of the name table for `name` (of this node, naming
  /// `actor`) and returns its index; nothing if the table is full.
  std::optional<uint32_t> write_name_entry(const std::string& name, uint64_t actor);

  caf::actor_system& sys_;
  std::unique_ptr<mapped_segment> seg_;
  group_options opts_;
  uint32_t me_ = 0;
  uint32_t my_epoch_ = 0;
  node_slot* my_slot_ = nullptr;
  caf::proxy_registry proxies_;
  message_decoder decoder_;

  std::mutex peers_mtx_;
  std::vector<peer_ptr> peers_; // by slot; null where no peer
  // By slot: the last incarnation (epoch) this node attached to as a peer.
  // A node that joined and died (or left) before this one ever saw it alive
  // may still have written frames to it: refresh_peers drains those once.
  std::vector<uint32_t> seen_epoch_;
  // The lost peer whose ring handle_losses drains (guarded by peers_mtx_).
  peer_ptr draining_;
  std::atomic<uint64_t> peers_version_{0};

  std::mutex lost_mtx_;
  std::vector<peer_ptr> lost_; // handed from the watcher to the reader
  // The lost peers handle_losses took and has not finished with (lost_mtx_).
  std::vector<peer_ptr> handling_;

  std::mutex names_mtx_;
  /// What this node published, by name: `leave` ends these actors.
  std::vector<std::pair<std::string, caf::actor>> published_;
  /// Spawns actors here for other nodes (`node::spawn_in`); its id is in
  /// this node's slot. Ends with the membership, as `published_` does.
  caf::actor spawn_server_;
  /// Hands group messages from other nodes to the subscribers here; its id
  /// is in this node's subscription entries. Ends as `spawn_server_` does.
  caf::actor group_relay_;
  /// Set by `leave` before it sweeps this node's names: no name or
  /// subscription entry is written after.
  bool names_closed_ = false;

  std::shared_ptr<caller_pool> callers_ = std::make_shared<caller_pool>();

  /// Held by whoever reads the rings (see `turn`).
  std::mutex drain_mtx_;
  /// Guards `reader_asleep_`, the changes of `pollers_` and this node's
  /// `parked` word while a caller polls.
  std::mutex park_mtx_;
  bool reader_asleep_ = false;
  /// 1 while a caller polls (at most one does).
  std::atomic<uint32_t> pollers_{0};
  /// When the reader thread began to run the actor it runs now (steady
  /// nanoseconds; 0 while it runs none): the watcher starts `helper_` when
  /// a handler keeps it longer than `stuck_after`.
  std::atomic<int64_t> reader_busy_since_{0};
  /// When a thread that reads the rings last ran an actor other than an
  /// owner (steady nanoseconds): the watcher looks often while recent.
  std::atomic<int64_t> last_inline_run_{0};
  static constexpr std::chrono::milliseconds stuck_after{20};
  std::thread helper_;
  std::atomic<bool> helper_done_{true};
  /// Frames that found a full ring and went to a backlog (see `reader_unit`).
  std::atomic<uint64_t> backlogged_{0};
  std::atomic<uint64_t> caller_frames_{0};
  std::atomic<uint64_t> late_wakeups_{0};
  // Peers met without a descriptor left for their pidfd (see node_stats).
  std::atomic<uint64_t> peers_polled_{0};

  std::atomic<bool> stop_{false};
  std::atomic<bool> left_{false};
  std::thread reader_;
  std::thread watcher_;
  /// The eventfd that stops the watcher's poll; closed by `leave` under
  /// `wake_mtx_` (see `wake_watcher`).
  int wake_fd_ = -1;
  std::mutex wake_mtx_;
  /// The process that started this one, when this process must end with it
  /// (`watch_parent`); its pidfd, where the kernel has them.
  std::atomic<pid_t> parent_pid_{0};
  /// Set by the watcher before it leaves for a dead parent (see
  /// `exit_if_orphaned`); read by `leave` on that thread.
  bool orphaned_ = false;
  std::atomic<int> parent_pidfd_{-1};
};

/// A proxy for an actor of another node of the group. Sending to it writes a
/// frame into the ring to that node, on the sender's thread.
/// Attached to a local actor that a peer made a proxy of: sends the peer a
/// kill frame when the actor ends. Detached when the peer is lost (a
/// long-lived actor would otherwise keep one per peer that ever announced
/// it, each holding on to that peer's memory).
class kill_notice final : public caf::attachable {
public:
  /// Any number of CAF's token subtypes that CAF itself does not use.
  static constexpr size_t token_type = 0x74726f757065; // "troupe"

  kill_notice(std::weak_ptr<core> owner, const peer_ptr& p, caf::actor_id aid);

  void actor_exited(const caf::error& reason, caf::execution_unit* host) override;

  /// Matches the token `{token_type, &peer}`.
  bool matches(const token& what) override;

  ~kill_notice() override;

  /// How many exist in this process (for the tests).
  static int64_t alive() noexcept {
    return instances_.load(std::memory_order_relaxed);
  }

private:
  static inline std::atomic<int64_t> instances_{0};
  std::weak_ptr<core> owner_;
  std::weak_ptr<peer> peer_;
  const peer* key_;
  caf::actor_id aid_;
};

class shm_proxy final : public caf::actor_proxy {
public:
  shm_proxy(caf::actor_config& cfg, std::shared_ptr<core> owner, peer_ptr p);
  ~shm_proxy() override;

  void enqueue(caf::mailbox_element_ptr what, caf::execution_unit* host) override;
  bool add_backlink(caf::abstract_actor* x) override;
  bool remove_backlink(caf::abstract_actor* x) override;
  void kill_proxy(caf::execution_unit* host, caf::error reason) override;

  bool dead() const noexcept {
    return dead_.load(std::memory_order_acquire);
  }

  /// Why the proxy was killed (only once `dead()`).
  const caf::error& reason() const noexcept {
    return reason_;
  }

  core& owner() const noexcept {
    return *core_;
  }

  /// The incarnation of a node this proxy's actor lives in.
  const peer& bound_peer() const noexcept {
    return *peer_;
  }

  /// Writes `what` to the other node now (or answers it as a dead proxy).
  void send_now(caf::mailbox_element_ptr what);

  /// Removes this proxy's link to `source`, under the proxy's lock; false if
  /// there was none.
  bool drop_link_from(const caf::actor_addr& source);

  const char* name() const override {
    return "troupe.ipc.proxy";
  }

private:
  std::shared_ptr<core> core_;
  peer_ptr peer_;
  /// Set (after `reason_`) once the proxy is killed.
  std::atomic<bool> dead_{false};
  caf::error reason_;
  std::mutex kill_mtx_;
};

} // namespace troupe::ipc::detail
