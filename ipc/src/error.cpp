#include "troupe/ipc/error.hpp"

#include <caf/make_message.hpp>

namespace troupe::ipc {

namespace {

const char* name_of(errc x) {
  switch (x) {
  case errc::message_too_large:
    return "message_too_large";
  case errc::group_running:
    return "group_running";
  case errc::no_such_group:
    return "no_such_group";
  case errc::bad_key:
    return "bad_key";
  case errc::bad_segment:
    return "bad_segment";
  case errc::group_full:
    return "group_full";
  case errc::name_taken:
    return "name_taken";
  case errc::name_not_found:
    return "name_not_found";
  case errc::spawn_failed:
    return "spawn_failed";
  case errc::bad_frame:
    return "bad_frame";
  case errc::key_error:
    return "key_error";
  case errc::index_error:
    return "index_error";
  case errc::value_error:
    return "value_error";
  case errc::type_error:
    return "type_error";
  case errc::empty:
    return "empty";
  case errc::broken_barrier:
    return "broken_barrier";
  case errc::no_shared_memory:
    return "no_shared_memory";
  case errc::resource_limit:
    return "resource_limit";
  }
  return nullptr;
}

/// Lets `troupe::describe` and CAF's renderer name these codes. It runs before
/// `main` in every program that links this file, which every program that can
/// make one of these errors does (`make_error` is defined here).
const bool names_registered = [] {
  troupe::detail::set_layer_code_namer(
    [](uint8_t code) { return name_of(static_cast<errc>(code)); });
  return true;
}();

} // namespace

std::string to_string(errc x) {
  if (auto name = name_of(x))
    return name;
  return "ipc::errc(" + std::to_string(static_cast<int>(x)) + ")";
}

caf::error make_error(errc x) {
  return caf::error{static_cast<uint8_t>(x), error_category};
}

caf::error make_error(errc x, std::string what) {
  return caf::error{static_cast<uint8_t>(x), error_category, caf::make_message(std::move(what))};
}

} // namespace troupe::ipc

namespace troupe {

bool is(const caf::error& err, ipc::errc x) noexcept {
  return err && err.category() == error_category && err.code() == static_cast<uint8_t>(x);
}

} // namespace troupe
