#include "troupe/ipc/testing/decoder_harness.hpp"

#include "core.hpp"
#include "segment.hpp"
#include "troupe/ipc/error.hpp"

#include <caf/all.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace troupe::ipc::testing {

namespace {

constexpr uint32_t own_slot = 0;
constexpr uint32_t peer_slot = 1;

/// A segment in this process's heap: zeroed like a fresh tmpfs object.
class heap_segment final : public detail::mapped_segment {
public:
  explicit heap_segment(const group_options& opts) {
    view.geo = detail::geometry{opts.max_nodes, opts.ring_bytes, opts.max_names};
    auto bytes = (view.geo.total_bytes() + 4095) & ~size_t{4095};
    mem_ = static_cast<unsigned char*>(std::aligned_alloc(4096, bytes));
    if (mem_ == nullptr)
      throw std::bad_alloc{};
    std::memset(mem_, 0, bytes);
    view.base = mem_;
    auto* hdr = view.header();
    hdr->magic = detail::segment_magic;
    hdr->version = detail::layout_version;
    hdr->max_nodes = view.geo.max_nodes;
    hdr->ring_bytes = view.geo.ring_bytes;
    hdr->max_names = view.geo.max_names;
    hdr->total_bytes = view.geo.total_bytes();
    hdr->max_message_bytes = opts.max_message_bytes;
    hdr->creator_pid = ::getpid();
    hdr->ready.store(1, std::memory_order_release);
    group = "decoder-harness";
  }

  ~heap_segment() override {
    std::free(mem_);
  }

  heap_segment(const heap_segment&) = delete;
  heap_segment& operator=(const heap_segment&) = delete;

private:
  unsigned char* mem_ = nullptr;
};

/// Where frames to `decoder_harness::receiver_id` go.
caf::behavior sink(caf::event_based_actor* self) {
  self->set_exit_handler([](caf::exit_msg&) {});
  self->set_down_handler([](caf::down_msg&) {});
  self->set_error_handler([](caf::error&) {});
  self->set_default_handler(
    [self](caf::scheduled_actor*, caf::message_view& x) -> caf::result<caf::message> {
      if (self->current_message_id().is_request())
        return x.move_content_to_message();
      return caf::message{};
    });
  // Never matches: the default handler sees every message.
  return {[](caf::unit_t) {}};
}

detail::frame_kind kind_of(decoder_harness::control kind) {
  switch (kind) {
  case decoder_harness::control::announce:
    return detail::frame_kind::announce;
  case decoder_harness::control::kill:
    return detail::frame_kind::kill;
  case decoder_harness::control::link:
    return detail::frame_kind::link;
  case decoder_harness::control::unlink:
    return detail::frame_kind::unlink;
  case decoder_harness::control::corrupt:
    break;
  }
  return detail::frame_kind::corrupt;
}

} // namespace

struct decoder_harness::impl {
  caf::actor_system& sys;
  std::shared_ptr<detail::core> core;
  caf::actor sink;
  caf::scoped_actor self;

  impl(caf::actor_system& sys, std::shared_ptr<detail::core> core)
    : sys(sys), core(std::move(core)), self(sys) {
    spawn_sink();
  }

  void spawn_sink() {
    sink = sys.spawn(testing::sink);
    // Under its own id too, as every actor a frame can name is (exported):
    // CAF then never attaches to it while serializing it.
    sys.registry().put(sink.id(), caf::actor_cast<caf::strong_actor_ptr>(sink));
    sys.registry().erase(static_cast<caf::actor_id>(receiver_id));
    sys.registry().put(static_cast<caf::actor_id>(receiver_id),
                       caf::actor_cast<caf::strong_actor_ptr>(sink));
  }

  /// Waits until the sink has handled what the last input sent it (a
  /// request of normal priority comes after every earlier message of normal
  /// or high priority), so that an input's effects happen within its own
  /// run. A sink that an input killed is replaced.
  void settle() {
    bool alive = false;
    self->request(sink, std::chrono::seconds(5), int32_t{0})
      .receive([&](int32_t) { alive = true; }, [&](caf::error&) {});
    if (!alive)
      spawn_sink();
    else if (sys.registry().get(static_cast<caf::actor_id>(receiver_id))
             != caf::actor_cast<caf::strong_actor_ptr>(sink))
      sys.registry().put(static_cast<caf::actor_id>(receiver_id),
                         caf::actor_cast<caf::strong_actor_ptr>(sink));
  }
};

decoder_harness::decoder_harness(caf::actor_system& sys, uint64_t max_message_bytes) {
  if (!sys.node())
    throw std::runtime_error{"decoder_harness: the actor system has no node id"};
  group_options opts;
  opts.max_nodes = 2;
  opts.max_names = 4;
  opts.ring_bytes = ring_bytes;
  opts.max_message_bytes = max_message_bytes;
  // The node never waits for the peer, who never reads.
  opts.on_full = full_policy::fail;
  opts.quiet = true;
  auto seg = std::make_unique<heap_segment>(opts);
  // The made-up peer: alive (this process stands in for it), with a node id
  // no actor system has.
  auto* s = seg->view.slot(peer_slot);
  caf::node_id::default_data::host_id_type host;
  host.fill(0xF2);
  auto nid = caf::make_node_id(0x7F7F7F7Fu, host);
  std::vector<char> buf;
  caf::binary_serializer sink_nid{sys, buf};
  if (sink_nid(nid) || buf.size() > detail::node_id_max)
    throw std::runtime_error{"decoder_harness: cannot store the peer's node id"};
  std::memcpy(s->node_id, buf.data(), buf.size());
  s->node_id_len = static_cast<uint32_t>(buf.size());
  s->pid.store(::getpid());
  s->start_ticks.store(detail::process_start_ticks(::getpid()));
  s->tenure.store(detail::tenure_of(detail::slot_alive, 1));
  auto core = std::make_shared<detail::core>(sys, std::move(seg), opts);
  if (auto err = core->start_without_threads())
    throw std::runtime_error{"decoder_harness: " + describe(err)};
  if (core->slot() != own_slot)
    throw std::runtime_error{"decoder_harness: the node took the wrong slot"};
  impl_ = std::make_unique<impl>(sys, std::move(core));
}

decoder_harness::~decoder_harness() {
  impl_->sys.registry().erase(static_cast<caf::actor_id>(receiver_id));
  // The sink ends before the node leaves: its end may still go through the
  // node (links and monitors an input gave it to the made-up peer's
  // actors). Once the node has left, a proxy made for that would hold the
  // node, and the node its proxies: neither would ever be freed.
  auto& self = impl_->self;
  self->monitor(impl_->sink);
  self->send_exit(impl_->sink, caf::exit_reason::kill); // it traps the others
  self->receive([](const caf::down_msg&) {}, caf::after(std::chrono::seconds(10)) >> [] {});
  impl_->core->leave();
}

node_stats decoder_harness::feed(const unsigned char* bytes, size_t size, uint64_t at) {
  auto res = impl_->core->test_feed(peer_slot, bytes, size, at);
  impl_->settle();
  return res;
}

node_stats decoder_harness::feed_input(const unsigned char* data, size_t size) {
  if (size < 2)
    return feed(data, 0, 0);
  uint64_t at = (uint64_t{data[0]} | uint64_t{data[1]} << 8) * 8;
  return feed(data + 2, size - 2, at);
}

caf::actor decoder_harness::peer_actor(uint64_t aid) {
  return caf::actor_cast<caf::actor>(
    impl_->core->test_proxy(peer_slot, static_cast<caf::actor_id>(aid)));
}

void decoder_harness::send_control(control kind, uint64_t receiver, uint64_t sender,
                                   const caf::error& reason) {
  impl_->core->test_send_control(peer_slot, kind_of(kind), receiver, sender,
                                 kind == control::kill ? &reason : nullptr);
}

std::vector<unsigned char> decoder_harness::take_output(uint64_t* at) {
  return impl_->core->test_take_output(peer_slot, at);
}

std::vector<unsigned char> decoder_harness::take_output_as_input() {
  uint64_t at = 0;
  auto bytes = take_output(&at);
  // Two bytes of offset in front (built by hand: g++ 12 misjudges a vector
  // insert after a two-element start with -Warray-bounds).
  std::vector<unsigned char> res(bytes.size() + 2);
  res[0] = static_cast<unsigned char>((at / 8) & 0xFF);
  res[1] = static_cast<unsigned char>((at / 8) >> 8);
  std::copy(bytes.begin(), bytes.end(), res.begin() + 2);
  return res;
}

node_stats decoder_harness::stats() const {
  return impl_->core->stats();
}

} // namespace troupe::ipc::testing
