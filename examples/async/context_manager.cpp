// context_manager: an async context manager as a resource with a
// guaranteed release.
//
// A "database connection" is acquired for a query and released afterwards:
// on a normal exit, when the body fails, and when the actor holding it dies.

#include "troupe/configure.hpp"
#include "troupe/error.hpp"
#include "troupe/scoped_resource.hpp"

#include <caf/all.hpp>

#include <future>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>

namespace {

struct connection {
  std::string name;
};

connection connect() {
  std::cout << "Connecting..." << std::endl;
  return connection{"db"};
}

void disconnect(connection&) {
  std::cout << "Disconnecting..." << std::endl;
}

std::string query(connection&, const std::string& sql) {
  if (sql.empty())
    throw std::invalid_argument("empty query");
  return "Result for: " + sql;
}

} // namespace

int main() {
  caf::actor_system_config cfg;
  troupe::configure(cfg);
  caf::actor_system sys{cfg};

  // 1. The usual case: acquire, use, release.
  {
    auto db = troupe::scoped_resource<connection>::make(nullptr, connect, disconnect);
    if (!db)
      return 1;
    std::cout << query(db->get(), "SELECT * FROM users") << std::endl;
  } // released here

  // 2. The body fails: the release runs all the same.
  try {
    auto db = troupe::scoped_resource<connection>::make(nullptr, connect, disconnect);
    std::cout << query(db->get(), "") << std::endl;
  } catch (const std::exception& ex) {
    std::cout << "query failed: " << ex.what() << std::endl;
  }

  // 3. An actor holds the connection and is killed: the release runs.
  auto released = std::make_shared<std::promise<void>>();
  auto holder = sys.spawn([released](caf::event_based_actor* self) -> caf::behavior {
    auto db = std::make_shared<std::optional<troupe::scoped_resource<connection>>>();
    auto made = troupe::scoped_resource<connection>::make(self, connect, [released](connection& c) {
      disconnect(c);
      released->set_value();
    });
    if (made)
      db->emplace(std::move(*made));
    return {[db](caf::get_atom) { return (*db)->held(); }};
  });
  caf::scoped_actor self{sys};
  self->request(holder, std::chrono::seconds(5), caf::get_atom::value)
    .receive([](bool) {}, [](caf::error&) {});
  std::cout << "killing the actor that holds the connection" << std::endl;
  self->send_exit(holder, caf::exit_reason::kill);
  auto done = released->get_future();
  return done.wait_for(std::chrono::seconds(5)) == std::future_status::ready ? 0 : 1;
}
