// Writes the fuzzer's seed corpus: valid frames of every kind, made by the
// real writer (a node's encoder) through decoder_harness, one input per file
// (see decoder_harness::feed_input). Checks that the node reads each back
// without a rejection.
//
// Usage: troupe-frame-seeds DIR (made if missing)

#include "ipc/messages.hpp"
#include "troupe/ipc/error.hpp"
#include "troupe/ipc/testing/decoder_harness.hpp"

#include <caf/all.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

using troupe::ipc::testing::decoder_harness;
using namespace troupe::test::ipc;

namespace {

constexpr uint64_t sink_id = decoder_harness::receiver_id;

caf::strong_actor_ptr ptr(const caf::actor& x) {
  return caf::actor_cast<caf::strong_actor_ptr>(x);
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: troupe-frame-seeds DIR\n";
    return 2;
  }
  std::string dir = argv[1];
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  config cfg{true};
  caf::actor_system sys{cfg};
  int failures = 0;
  {
    decoder_harness sut{sys};
    caf::scoped_actor self{sys};
    // Each seed: what the writer wrote since the last one, read back once.
    auto save = [&](const std::string& name) {
      auto input = sut.take_output_as_input();
      auto st = sut.feed(input.data() + 2, input.size() - 2, (input[0] | input[1] << 8) * 8u);
      if (st.frames_received == 0 || st.frames_rejected != 0) {
        std::cerr << name << ": " << st.frames_received << " frames read, " << st.frames_rejected
                  << " rejected\n";
        ++failures;
      }
      std::ofstream out{dir + "/" + name, std::ios::binary};
      out.write(reinterpret_cast<const char*>(input.data()),
                static_cast<std::streamsize>(input.size()));
      if (!out) {
        std::cerr << "cannot write " << dir << "/" << name << '\n';
        ++failures;
      }
    };
    // A proxy of the sink's id, as the peer would address it; its announce
    // frame is a seed of its own.
    auto to_sink = [&] {
      auto res = sut.peer_actor(sink_id);
      sut.take_output();
      return res;
    };
    auto enqueue = [&](const caf::actor& dest, caf::strong_actor_ptr sender, caf::message_id mid,
                       std::vector<caf::strong_actor_ptr> stages, caf::message msg) {
      dest->enqueue(
        caf::make_mailbox_element(std::move(sender), mid, std::move(stages), std::move(msg)),
        nullptr);
    };
    auto request_id = caf::make_message_id(uint64_t{42});

    // -- message frames ------------------------------------------------------------
    auto dest = to_sink();
    self->send(dest, int32_t{42});
    save("message-local-sender");
    dest = to_sink();
    caf::anon_send(dest, std::string{"anonymous"}, point{3, 4});
    save("message-anonymous");
    dest = to_sink();
    enqueue(dest, ptr(self), request_id, {}, caf::make_message(stats_atom::value));
    save("message-request");
    dest = to_sink();
    enqueue(dest, ptr(self), request_id.response_id(), {},
            caf::make_message(std::vector<uint64_t>{1, 2, 3}));
    save("message-response");
    dest = to_sink();
    enqueue(dest, ptr(self), request_id.response_id(), {},
            caf::make_message(caf::make_error(caf::sec::request_timeout)));
    save("message-error-response");
    dest = to_sink();
    {
      // A sender of the peer's node: the payload names it.
      auto other = sut.peer_actor(77);
      sut.take_output();
      enqueue(dest, ptr(other), caf::make_message_id(), {},
              caf::make_message(secret{"psst"}, caf::actor_cast<caf::actor>(other)));
    }
    save("message-remote-sender");
    dest = to_sink();
    enqueue(dest, ptr(self), request_id, {ptr(self)},
            caf::make_message(point{-1, 1}, troupe::make_error(troupe::errc::full, "full")));
    save("message-stages");
    dest = to_sink();
    caf::anon_send(dest, caf::exit_msg{self.address(), caf::exit_reason::user_shutdown},
                   caf::down_msg{self.address(), caf::exit_reason::normal});
    save("message-system-types");
    dest = to_sink();
    self->send(dest, std::string(decoder_harness::ring_bytes / 2, 'c'));
    save("message-chunked");

    // -- control frames ------------------------------------------------------------
    sut.send_control(decoder_harness::control::announce, sink_id);
    save("announce");
    sut.send_control(decoder_harness::control::kill, 77, 0,
                     caf::make_error(caf::exit_reason::kill));
    save("kill");
    sut.send_control(decoder_harness::control::link, sink_id, 77);
    save("link");
    sut.send_control(decoder_harness::control::unlink, sink_id, 77);
    save("unlink");
    sut.send_control(decoder_harness::control::corrupt, 0);
    save("corrupt");

    // -- several frames, and a ring that wraps ------------------------------------------
    dest = to_sink();
    sut.send_control(decoder_harness::control::link, sink_id, 77);
    self->send(dest, int32_t{1});
    enqueue(dest, ptr(self), request_id, {}, caf::make_message(std::string{"ask"}));
    sut.send_control(decoder_harness::control::kill, 77, 0, caf::make_error(caf::sec::none));
    save("mixed");
    // Advance the writer to less than a frame before the ring's end: the
    // next frame wraps behind a pad. Now and then a frame of another size,
    // in case the first one's size divides the ring's.
    dest = to_sink();
    for (int i = 1;; ++i) {
      if (i > 100000) {
        std::cerr << "the writer never came close to the ring's end\n";
        return 1;
      }
      uint64_t at = 0;
      if (i % 16 == 0)
        self->send(dest, std::string{"shift"});
      else
        self->send(dest, int32_t{0});
      auto record = sut.take_output(&at).size();
      auto left = decoder_harness::ring_bytes - (at + record) % decoder_harness::ring_bytes;
      if (left < record)
        break;
    }
    self->send(dest, int32_t{1});
    self->send(dest, int32_t{2});
    save("wrapped");
  }
  if (failures != 0) {
    std::cerr << failures << " seeds were not read back cleanly\n";
    return 1;
  }
  std::cout << "wrote the seeds to " << dir << '\n';
  return 0;
}
