// A CAF program that knows nothing of troupe: it reaches an actor through
// CAF's middleman, asks it to echo a string and checks the answer.
//
//   troupe-plain-caf-client HOST PORT TEXT
//
// Exit status: 0 if the answer is TEXT, 1 otherwise.

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <chrono>
#include <iostream>
#include <string>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: troupe-plain-caf-client HOST PORT TEXT\n";
    return 2;
  }
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  caf::actor_system sys{cfg};
  auto port = static_cast<uint16_t>(std::stoi(argv[2]));
  auto dest = sys.middleman().remote_actor(argv[1], port);
  if (!dest) {
    std::cerr << "cannot connect: " << sys.render(dest.error()) << '\n';
    return 1;
  }
  caf::scoped_actor self{sys};
  int rc = 1;
  self->request(*dest, std::chrono::seconds(10), std::string{argv[3]})
    .receive(
      [&](const std::string& answer) {
        std::cout << "answer: " << answer << '\n';
        rc = answer == argv[3] ? 0 : 1;
      },
      [&](caf::error& err) { std::cerr << "request failed: " << sys.render(err) << '\n'; });
  return rc;
}
