// libFuzzer target for the ipc frame decoder: every input is a ring's worth
// of bytes from another node (see decoder_harness::feed_input), read by the
// node's own reader code: the frame walk, the frame handlers, CAF's
// deserialization of senders, stages and messages (the test suite's message
// types registered), chunk reassembly and rejection.

#include "ipc/messages.hpp"
#include "troupe/ipc/testing/decoder_harness.hpp"

#include <caf/all.hpp>

#include <cstddef>
#include <cstdint>

namespace {

struct fuzz_state {
  troupe::test::ipc::config cfg{true};
  caf::actor_system sys{cfg};
  troupe::ipc::testing::decoder_harness sut{sys};
};

// Lives until the process ends: libFuzzer exits without unwinding.
fuzz_state* state = nullptr;

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  state = new fuzz_state;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  state->sut.feed_input(data, size);
  return 0;
}
