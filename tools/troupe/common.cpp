#include "common.hpp"

#include "troupe/ipc/error.hpp"

#include <caf/message.hpp>

#include <time.h>

#include <cstdio>
#include <iostream>

namespace troupe_tool {

int usage_error(const std::string& msg, const char* command) {
  std::cerr << "troupe: " << msg << "\nRun 'troupe " << (command ? std::string{command} + " " : "")
            << "--help' for usage.\n";
  return exit_usage;
}

bool is_help(const std::string& arg) {
  return arg == "-h" || arg == "--help";
}

std::string what_of(const caf::error& err) {
  auto& ctx = err.context();
  if (ctx.size() == 1 && ctx.match_element<std::string>(0))
    return ctx.get_as<std::string>(0);
  return troupe::describe(err);
}

std::string time_text(uint64_t unix_ms) {
  if (unix_ms == 0)
    return "-";
  auto secs = static_cast<time_t>(unix_ms / 1000);
  tm parts{};
  ::localtime_r(&secs, &parts);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &parts);
  return buf;
}

std::string bytes_text(uint64_t n) {
  char buf[32];
  if (n >= (uint64_t{1} << 20) && n % (uint64_t{1} << 20) == 0)
    std::snprintf(buf, sizeof(buf), "%llu MiB", static_cast<unsigned long long>(n >> 20));
  else if (n >= (uint64_t{1} << 20))
    std::snprintf(buf, sizeof(buf), "%.1f MiB", static_cast<double>(n) / (1 << 20));
  else if (n >= 1024 && n % 1024 == 0)
    std::snprintf(buf, sizeof(buf), "%llu KiB", static_cast<unsigned long long>(n >> 10));
  else
    std::snprintf(buf, sizeof(buf), "%llu B", static_cast<unsigned long long>(n));
  return buf;
}

std::string mode_text(uint32_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%04o", mode);
  return buf;
}

std::string status_of(const tipc::slot_info& s) {
  if (s.process_alive)
    return "alive";
  return s.state == "free" ? "left" : "dead";
}

void print_block(std::ostream& out, const tipc::block_info& b) {
  out << "  " << b.shm_name << "  ";
  if (b.ready)
    out << b.kind << " '" << b.name << "' of group '"
        << (b.groups.empty() ? std::string{"?"} : b.groups.front()) << "' (" << b.type_name << ", "
        << b.count << " x " << b.elem_size << " bytes)"
        << (b.values.empty() ? "" : " = " + b.values) << ", creator pid " << b.creator_pid << " "
        << (b.creator_alive ? "alive" : "dead");
  else
    out << "unfinished";
  out << "\n    " << (b.live ? "in use" : "unused") << ": " << b.liveness << "\n";
}

} // namespace troupe_tool
