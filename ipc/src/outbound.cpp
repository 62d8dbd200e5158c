// What leaves a node: serializing a message, writing frames into a peer's
// ring (in pieces when large), the backlog when a ring is full or taken,
// the doorbell, and `shm_proxy`, the handle of a remote actor.

#include "core_internal.hpp"
#include "transport/ring.hpp"
#include "troupe/ipc/error.hpp"

#include <caf/all.hpp>
#include <caf/default_attachable.hpp>

#include <signal.h>

#include <climits>
#include <cstddef>
#include <cstring>

namespace troupe::ipc::detail {

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
    bounce(sender, mid, werr, !is(werr, troupe::errc::peer_lost));
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
  // A new node in the slot uses these rings from its claim on: punched
  // under it, frames it wrote would turn to zeros. The claim looks at
  // `releasing` after taking the slot, this node at the slot after raising
  // it (both seq_cst): one of the two sees the other and lets go.
  auto* s = p.shm;
  s->releasing.fetch_add(1);
  auto seen = s->tenure.load();
  if (state_of(seen) != slot_claiming && epoch_of(seen) == p.epoch) {
    seg_->release(p.out_offset, p.out.capacity);
    seg_->release(p.in_offset, p.in.capacity);
    p.rings_reserved = false;
  }
  s->releasing.fetch_sub(1, std::memory_order_release);
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
      err = make_error(troupe::errc::full, "the ring to " + describe_peer(p) + " is full");
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
  if (an >= sizeof(frame_header)) {
    // Which nodes the frame is between: slots are reused (see layout.hpp).
    uint32_t epochs[2] = {my_epoch_, p.epoch};
    std::memcpy(at + offsetof(frame_header, from_epoch), epochs, sizeof(epochs));
  }
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
      return make_error(troupe::errc::full, "the ring to " + describe_peer(p) + " stayed full");
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
    return make_error(troupe::errc::invalid_argument,
                      "no live node in slot " + std::to_string(peer_slot));
  std::lock_guard<std::mutex> guard{p->write_mtx};
  if (!p->rings_reserved)
    if (auto err = reserve_rings(*p))
      return err;
  auto* hdr = p->out.hdr;
  auto cap = p->out.capacity;
  auto tail = hdr->tail.load(std::memory_order_relaxed);
  auto rec = align8(bytes.size());
  if (cap - (tail - hdr->head.load(std::memory_order_acquire)) < rec)
    return make_error(troupe::errc::full, "the ring is full");
  for (size_t i = 0; i < rec; ++i)
    p->out.data[(tail + i) & (cap - 1)] = i < bytes.size() ? bytes[i] : 0;
  hdr->tail.store(tail + rec, std::memory_order_release);
  ring_doorbell(*p);
  return caf::none;
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
    auto err = troupe::is(reason_, troupe::errc::peer_lost)
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
