#include "troupe/error.hpp"

#include "troupe/configure.hpp"
#include "troupe/timeout.hpp"

#include <caf/exit_reason.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>
#include <caf/sec.hpp>

#include <atomic>

namespace troupe {

namespace {

/// Returns the context of `ctx` as text: a lone string as is, anything else as
/// CAF prints a message; empty for an empty context.
std::string context_text(const caf::message& ctx) {
  if (ctx.empty())
    return {};
  if (ctx.match_elements<std::string>())
    return ctx.get_as<std::string>(0);
  return caf::to_string(ctx);
}

std::string with_context(std::string head, const caf::message& ctx) {
  auto text = context_text(ctx);
  if (!text.empty()) {
    head += ": ";
    head += text;
  }
  return head;
}

/// Set by troupe::ipc before `main`; an atomic so that reading it while a
/// late-loaded library sets it is no race. Constant-initialised to null, so
/// no static initialisation order can see it unset after it was set.
std::atomic<detail::code_namer> layer_code_namer{nullptr};

/// Returns the name of any code of the troupe category.
std::string code_name(uint8_t code) {
  if (code < 64)
    return to_string(static_cast<errc>(code));
  if (auto namer = layer_code_namer.load(std::memory_order_acquire))
    if (auto name = namer(code))
      return name;
  return "errc(" + std::to_string(static_cast<int>(code)) + ")";
}

} // namespace

std::string to_string(errc x) {
  switch (x) {
  case errc::timeout:
    return "timeout";
  case errc::owner_down:
    return "owner_down";
  case errc::update_failed:
    return "update_failed";
  case errc::not_held:
    return "not_held";
  case errc::invalid_argument:
    return "invalid_argument";
  case errc::would_deadlock:
    return "would_deadlock";
  case errc::child_down:
    return "child_down";
  case errc::restart_intensity:
    return "restart_intensity";
  case errc::start_failed:
    return "start_failed";
  case errc::worker_crashed:
    return "worker_crashed";
  case errc::cancelled:
    return "cancelled";
  case errc::task_failed:
    return "task_failed";
  case errc::closed:
    return "closed";
  case errc::full:
    return "full";
  case errc::peer_lost:
    return "peer_lost";
  }
  return "errc(" + std::to_string(static_cast<int>(x)) + ")";
}

caf::error make_error(errc x) {
  return caf::error{static_cast<uint8_t>(x), error_category};
}

caf::error make_error(errc x, std::string what) {
  return caf::error{static_cast<uint8_t>(x), error_category, caf::make_message(std::move(what))};
}

bool is(const caf::error& err, errc x) noexcept {
  // An empty caf::error has no category to ask for.
  return err && err.category() == error_category && err.code() == static_cast<uint8_t>(x);
}

std::string describe(const caf::error& err) {
  if (!err)
    return "no error";
  if (err.category() == error_category)
    return with_context("troupe." + code_name(err.code()), err.context());
  if (err.category() == caf::atom("system"))
    return with_context("caf." + caf::to_string(static_cast<caf::sec>(err.code())), err.context());
  if (err.category() == caf::atom("exit"))
    return with_context("exit." + caf::to_string(static_cast<caf::exit_reason>(err.code())),
                        err.context());
  return caf::to_string(err);
}

void configure(caf::actor_system_config& cfg) {
  cfg.add_error_category(error_category,
                         [](uint8_t code, caf::atom_value, const caf::message& ctx) {
                           return with_context("troupe." + code_name(code), ctx);
                         });
}

} // namespace troupe

namespace troupe::detail {

void set_layer_code_namer(code_namer namer) noexcept {
  layer_code_namer.store(namer, std::memory_order_release);
}

caf::error normalize_request_error(caf::error err) {
  if (err && err.category() == caf::atom("system")) {
    switch (static_cast<caf::sec>(err.code())) {
    case caf::sec::request_timeout:
      return make_error(errc::timeout, "no answer within the timeout");
    case caf::sec::request_receiver_down:
      return make_error(errc::owner_down, "the actor terminated before answering");
    default:
      break;
    }
  }
  return err;
}

} // namespace troupe::detail
