#pragma once

// What the commands of the `troupe` tool share: exit statuses, usage errors
// and the text forms of times, sizes and slot states.

#include "troupe/ipc/inspect.hpp"

#include <caf/error.hpp>

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace troupe_tool {

namespace tipc = troupe::ipc;

constexpr int exit_ok = 0;
constexpr int exit_failed = 1;
constexpr int exit_usage = 2;

/// Prints `msg` and where to find the usage of `command` (null: the tool's);
/// returns `exit_usage`.
int usage_error(const std::string& msg, const char* command);

/// Whether `arg` asks for help (`-h`, `--help`).
bool is_help(const std::string& arg);

/// The message an error was made with, or its description.
std::string what_of(const caf::error& err);

/// Local time `YYYY-MM-DD HH:MM:SS`, or `-` for 0.
std::string time_text(uint64_t unix_ms);

/// `1 MiB`, `1.5 MiB`, `64 KiB`, `100 B`.
std::string bytes_text(uint64_t n);

/// `0600`.
std::string mode_text(uint32_t mode);

/// alive, left (its node left), or dead.
std::string status_of(const tipc::slot_info& s);

/// A shared value or array, two lines, as `troupe ls` prints it.
void print_block(std::ostream& out, const tipc::block_info& b);

/// `troupe top`: see top.cpp.
int cmd_top(const std::vector<std::string>& args);

} // namespace troupe_tool
