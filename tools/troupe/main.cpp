// troupe: inspect, watch and clean the troupe groups of this host.
//
//   troupe ls [--json] [GROUP...]         groups, nodes, names, rings, counters
//   troupe top [--once] [GROUP]           one group live (top.cpp)
//   troupe clean [--dry-run] [GROUP...]   remove what no live process uses
//
// Exit status: 0 ok, 1 something was refused or failed (a running group, an
// unreadable segment, no such group), 2 usage error.

#include "common.hpp"
#include "troupe/ipc/error.hpp"
#include "troupe/ipc/inspect.hpp"

#include <caf/message.hpp>

#include <time.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

using namespace troupe_tool;

namespace {

constexpr const char* main_help = R"(usage: troupe [--help] COMMAND [ARGS]

Inspect, watch and clean the troupe groups of this host: the shared-memory
segments /dev/shm/troupe.<group> and the shared values
/dev/shm/troupe.<group>.v.<name>. Nothing is joined or written; only `clean`
removes names under /dev/shm. Installed, `man troupe` documents it all.

commands:
  ls      list groups, their nodes, published names, rings and counters
  top     watch one group live: rates per node, ring fill, names, values
  clean   remove segments whose processes are all dead

Run `troupe COMMAND --help` for a command's options.

exit status: 0 ok, 1 something was refused or failed, 2 usage error
)";

constexpr const char* ls_help = R"(usage: troupe ls [--json] [GROUP...]

List the troupe groups of this host (all of them, or the GROUPs named): for each
its nodes (slot, pid, alive or dead, process start time, counters, command line),
the names published in it, and how full each ring between two nodes is; then the
shared values and arrays and any segment that cannot be read.

options:
  --json      print one JSON object instead of text
  -h, --help  show this help

exit status: 0 ok, 1 a named group does not exist or cannot be read, 2 usage error
)";

constexpr const char* clean_help = R"(usage: troupe clean [--dry-run] [GROUP...]

Remove the segments of groups whose processes are all dead, and shared values and
arrays whose creator is dead and whose group is not running. A group counts as
running while a node slot holds a process whose pid and start time still match
(the rule troupe itself sweeps by), or while its creator is still setting it up.

Without GROUP: every group and shared value on this host; running ones are kept
and listed. With GROUPs: those groups and their shared values; a running group is
refused, with the pids that keep it running.

options:
  -n, --dry-run  say what would be removed, remove nothing
  -h, --help     show this help

exit status: 0 ok, 1 a named group is running, missing or unreadable, or a removal
failed, 2 usage error
)";

// -- text output ----------------------------------------------------------------

void print_group(std::ostream& out, const tipc::group_info& g) {
  out << "group " << g.group << "  /dev/shm/" << g.shm_name << "  "
      << (g.live ? "running" : "not running") << " (" << g.liveness << ")\n";
  if (!g.ready) {
    out << "  header not finished, " << bytes_text(g.size_bytes) << "\n";
    return;
  }
  out << "  created " << time_text(g.created_unix_ms) << " by pid " << g.creator_pid << ", "
      << bytes_text(g.size_bytes) << ", uid " << g.owner << ", mode " << mode_text(g.mode) << "\n";
  out << "  limits: " << g.max_nodes << " nodes, " << bytes_text(g.ring_bytes) << " rings, "
      << g.max_names << " names, " << bytes_text(g.max_message_bytes) << " messages\n";
  if (g.slots.empty()) {
    out << "  nodes: none yet\n";
  } else {
    char line[256];
    std::snprintf(line, sizeof(line), "  %-4s %-8s %-6s %-5s %-19s %-19s %9s %9s %8s %-9s %s\n",
                  "SLOT", "PID", "STATUS", "EPOCH", "STARTED", "JOINED", "SENT", "RECEIVED",
                  "REJECTED", "DOORBELL", "COMMAND");
    out << line;
    for (auto& s : g.slots) {
      auto bell = std::to_string(s.doorbell) + (s.parked ? " parked" : "");
      std::snprintf(line, sizeof(line), "  %-4u %-8d %-6s %-5u %-19s %-19s %9llu %9llu %8llu %-9s ",
                    s.slot, s.pid, status_of(s).c_str(), s.epoch,
                    time_text(s.started_unix_ms).c_str(), time_text(s.joined_unix_ms).c_str(),
                    static_cast<unsigned long long>(s.frames_sent),
                    static_cast<unsigned long long>(s.frames_received),
                    static_cast<unsigned long long>(s.frames_rejected), bell.c_str());
      out << line << (s.command.empty() ? "-" : s.command) << "\n";
    }
  }
  out << "  names (" << g.names.size() << " of " << g.max_names << ", seq " << g.names_seq
      << "):" << (g.names.empty() ? " none" : "") << "\n";
  for (auto& n : g.names)
    out << "    " << (n.subscription ? "group " : "") << n.name << "  slot " << n.slot << " epoch "
        << n.epoch << " actor " << n.actor << (n.owner_alive ? "" : "  (stale: its node is gone)")
        << "\n";
  if (!g.rings.empty()) {
    out << "  rings (writer->reader used/capacity):\n";
    for (auto& r : g.rings)
      out << "    " << r.writer << "->" << r.reader << "  " << r.used << "/" << r.capacity << "\n";
  }
}

// -- JSON output ----------------------------------------------------------------

std::string json_str(const std::string& s) {
  std::string res = "\"";
  for (unsigned char c : s) {
    switch (c) {
    case '"':
      res += "\\\"";
      break;
    case '\\':
      res += "\\\\";
      break;
    case '\n':
      res += "\\n";
      break;
    default:
      if (c < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof(buf), "\\u%04x", c);
        res += buf;
      } else {
        res += static_cast<char>(c);
      }
    }
  }
  return res + "\"";
}

const char* json_bool(bool x) {
  return x ? "true" : "false";
}

void json_group(std::ostream& out, const tipc::group_info& g) {
  out << "{\"group\":" << json_str(g.group) << ",\"shm_name\":" << json_str(g.shm_name)
      << ",\"running\":" << json_bool(g.live) << ",\"liveness\":" << json_str(g.liveness)
      << ",\"ready\":" << json_bool(g.ready) << ",\"owner_uid\":" << g.owner
      << ",\"mode\":" << json_str(mode_text(g.mode)) << ",\"size_bytes\":" << g.size_bytes
      << ",\"creator_pid\":" << g.creator_pid << ",\"created_unix_ms\":" << g.created_unix_ms
      << ",\"max_nodes\":" << g.max_nodes << ",\"ring_bytes\":" << g.ring_bytes
      << ",\"max_names\":" << g.max_names << ",\"max_message_bytes\":" << g.max_message_bytes
      << ",\"names_seq\":" << g.names_seq << ",\"nodes\":[";
  for (size_t i = 0; i < g.slots.size(); ++i) {
    auto& s = g.slots[i];
    out << (i ? "," : "") << "{\"slot\":" << s.slot << ",\"pid\":" << s.pid
        << ",\"status\":" << json_str(status_of(s)) << ",\"slot_state\":" << json_str(s.state)
        << ",\"epoch\":" << s.epoch << ",\"start_ticks\":" << s.start_ticks
        << ",\"started_unix_ms\":" << s.started_unix_ms
        << ",\"joined_unix_ms\":" << s.joined_unix_ms << ",\"frames_sent\":" << s.frames_sent
        << ",\"frames_received\":" << s.frames_received
        << ",\"frames_rejected\":" << s.frames_rejected << ",\"doorbell\":" << s.doorbell
        << ",\"parked\":" << json_bool(s.parked) << ",\"command\":" << json_str(s.command) << "}";
  }
  out << "],\"names\":[";
  for (size_t i = 0; i < g.names.size(); ++i) {
    auto& n = g.names[i];
    out << (i ? "," : "") << "{\"name\":" << json_str(n.name)
        << ",\"subscription\":" << json_bool(n.subscription) << ",\"slot\":" << n.slot
        << ",\"epoch\":" << n.epoch << ",\"actor\":" << n.actor
        << ",\"owner_alive\":" << json_bool(n.owner_alive) << "}";
  }
  out << "],\"rings\":[";
  for (size_t i = 0; i < g.rings.size(); ++i) {
    auto& r = g.rings[i];
    out << (i ? "," : "") << "{\"writer\":" << r.writer << ",\"reader\":" << r.reader
        << ",\"used\":" << r.used << ",\"capacity\":" << r.capacity << ",\"written\":" << r.written
        << "}";
  }
  out << "]}";
}

void json_block(std::ostream& out, const tipc::block_info& b) {
  out << "{\"shm_name\":" << json_str(b.shm_name) << ",\"name\":" << json_str(b.name)
      << ",\"kind\":" << json_str(b.kind) << ",\"type_name\":" << json_str(b.type_name)
      << ",\"elem_size\":" << b.elem_size << ",\"count\":" << b.count
      << ",\"values\":" << json_str(b.values) << ",\"size_bytes\":" << b.size_bytes
      << ",\"ready\":" << json_bool(b.ready) << ",\"creator_pid\":" << b.creator_pid
      << ",\"creator_alive\":" << json_bool(b.creator_alive) << ",\"in_use\":" << json_bool(b.live)
      << ",\"liveness\":" << json_str(b.liveness) << "}";
}

// -- commands -------------------------------------------------------------------

/// Whether block `b` may belong to one of `groups`.
bool block_of(const tipc::block_info& b, const std::vector<std::string>& groups) {
  for (auto& g : b.groups)
    for (auto& want : groups)
      if (g == want)
        return true;
  return false;
}

bool wanted(const std::string& group, const std::vector<std::string>& groups) {
  if (groups.empty())
    return true;
  for (auto& want : groups)
    if (want == group)
      return true;
  return false;
}

int cmd_ls(const std::vector<std::string>& args) {
  bool json = false;
  std::vector<std::string> groups;
  for (auto& arg : args) {
    if (is_help(arg)) {
      std::cout << ls_help;
      return exit_ok;
    }
    if (arg == "--json")
      json = true;
    else if (!arg.empty() && arg[0] == '-')
      return usage_error("ls: unknown option '" + arg + "'", "ls");
    else
      groups.push_back(arg);
  }
  auto host = tipc::inspect_host();
  if (!host) {
    std::cerr << "troupe ls: " << what_of(host.error()) << "\n";
    return exit_failed;
  }
  int rc = exit_ok;
  // Named groups that are not (readably) there.
  std::vector<tipc::unreadable_info> problems;
  for (auto& u : host->unreadable)
    if (groups.empty() || wanted(u.shm_name.substr(std::strlen("troupe.")), groups))
      problems.push_back(u);
  for (auto& want : groups) {
    bool found = false;
    for (auto& g : host->groups)
      found = found || g.group == want;
    for (auto& u : host->unreadable)
      found = found || u.shm_name == "troupe." + want;
    if (!found) {
      std::cerr << "troupe ls: no group '" << want << "' on this host\n";
      rc = exit_failed;
    }
  }
  if (!problems.empty() && !groups.empty())
    rc = exit_failed;
  if (json) {
    std::cout << "{\"groups\":[";
    bool first = true;
    for (auto& g : host->groups) {
      if (!wanted(g.group, groups))
        continue;
      std::cout << (first ? "" : ",");
      json_group(std::cout, g);
      first = false;
    }
    std::cout << "],\"shared_values\":[";
    first = true;
    for (auto& b : host->blocks) {
      if (!groups.empty() && !block_of(b, groups))
        continue;
      std::cout << (first ? "" : ",");
      json_block(std::cout, b);
      first = false;
    }
    std::cout << "],\"unreadable\":[";
    for (size_t i = 0; i < problems.size(); ++i)
      std::cout << (i ? "," : "") << "{\"shm_name\":" << json_str(problems[i].shm_name)
                << ",\"reason\":" << json_str(problems[i].reason) << "}";
    std::cout << "]}\n";
    return rc;
  }
  size_t shown = 0;
  for (auto& g : host->groups) {
    if (!wanted(g.group, groups))
      continue;
    if (shown++ > 0)
      std::cout << "\n";
    print_group(std::cout, g);
  }
  bool header = false;
  for (auto& b : host->blocks) {
    if (!groups.empty() && !block_of(b, groups))
      continue;
    if (!header)
      std::cout << (shown++ > 0 ? "\n" : "") << "shared values and arrays:\n";
    header = true;
    print_block(std::cout, b);
  }
  if (!problems.empty()) {
    std::cout << (shown++ > 0 ? "\n" : "") << "unreadable:\n";
    for (auto& u : problems)
      std::cout << "  " << u.shm_name << ": " << u.reason << "\n";
  }
  if (shown == 0 && groups.empty())
    std::cout << "no troupe groups on this host\n";
  return rc;
}

int cmd_clean(const std::vector<std::string>& args) {
  bool dry_run = false;
  std::vector<std::string> groups;
  for (auto& arg : args) {
    if (is_help(arg)) {
      std::cout << clean_help;
      return exit_ok;
    }
    if (arg == "-n" || arg == "--dry-run")
      dry_run = true;
    else if (!arg.empty() && arg[0] == '-')
      return usage_error("clean: unknown option '" + arg + "'", "clean");
    else
      groups.push_back(arg);
  }
  auto host = tipc::inspect_host();
  if (!host) {
    std::cerr << "troupe clean: " << what_of(host.error()) << "\n";
    return exit_failed;
  }
  int rc = exit_ok;
  size_t removed = 0;
  auto verb = dry_run ? "would remove" : "removed";
  for (auto& want : groups) {
    bool found = false;
    for (auto& g : host->groups)
      found = found || g.group == want;
    for (auto& b : host->blocks)
      found = found || block_of(b, {want});
    for (auto& u : host->unreadable)
      found = found || u.shm_name == "troupe." + want;
    if (!found) {
      std::cerr << "troupe clean: no group '" << want << "' on this host\n";
      rc = exit_failed;
    }
  }
  for (auto& u : host->unreadable) {
    if (!groups.empty() && !wanted(u.shm_name.substr(std::strlen("troupe.")), groups))
      continue;
    std::cerr << "troupe clean: kept /dev/shm/" << u.shm_name << ": " << u.reason << "\n";
    rc = exit_failed;
  }
  for (auto& g : host->groups) {
    if (!wanted(g.group, groups))
      continue;
    if (g.live) {
      if (groups.empty()) {
        std::cout << "kept group '" << g.group << "': running (" << g.liveness << ")\n";
      } else {
        std::cerr << "troupe clean: refused: group '" << g.group << "' is running (" << g.liveness
                  << ")\n";
        rc = exit_failed;
      }
      continue;
    }
    if (!dry_run) {
      // Decided again on what the name holds now.
      if (auto err = tipc::remove_dead_group(g.group)) {
        if (troupe::is(err, troupe::ipc::errc::no_such_group))
          continue; // someone else swept it meanwhile
        std::cerr << "troupe clean: refused: " << what_of(err) << "\n";
        rc = exit_failed;
        continue;
      }
    }
    ++removed;
    std::cout << verb << " group '" << g.group << "' (/dev/shm/" << g.shm_name
              << "): " << g.liveness << "\n";
  }
  for (auto& b : host->blocks) {
    if (!groups.empty() && !block_of(b, groups))
      continue;
    if (b.live) {
      std::cout << "kept /dev/shm/" << b.shm_name << ": in use (" << b.liveness << ")\n";
      continue;
    }
    if (!dry_run) {
      if (auto err = tipc::remove_dead_block(b.shm_name)) {
        std::cerr << "troupe clean: kept /dev/shm/" << b.shm_name << ": " << what_of(err) << "\n";
        rc = exit_failed;
        continue;
      }
    }
    ++removed;
    std::cout << verb << " /dev/shm/" << b.shm_name << ": " << b.liveness << "\n";
  }
  if (removed == 0 && rc == exit_ok)
    std::cout << "nothing to clean\n";
  return rc;
}

} // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args{argv + 1, argv + argc};
  if (args.empty())
    return usage_error("a command is needed (ls, top or clean)", nullptr);
  auto& cmd = args.front();
  if (is_help(cmd) || cmd == "help") {
    std::cout << main_help;
    return exit_ok;
  }
  std::vector<std::string> rest{args.begin() + 1, args.end()};
  if (cmd == "ls")
    return cmd_ls(rest);
  if (cmd == "clean")
    return cmd_clean(rest);
  if (cmd == "top")
    return cmd_top(rest);
  if (!cmd.empty() && cmd[0] == '-')
    return usage_error("unknown option '" + cmd + "'", nullptr);
  return usage_error("unknown command '" + cmd + "'", nullptr);
}
