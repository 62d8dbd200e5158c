// `troupe top [--once] [--interval S] [GROUP]`: one group of this host, live.
//
// Every interval it reads the host's segments read-only (`inspect_host`, as
// `troupe ls` does: nothing is joined or written) and shows, per node, what
// changed since the last reading: frames per second in and out, bytes per
// second written, rejected frames; and what is: ring fill toward each peer,
// whether the reader is parked, the command line. Then the group's names and
// shared values. On a terminal it redraws in place (alternate screen, raw
// keys); `--once` prints one frame as plain text.

#include "common.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace troupe_tool {

namespace {

constexpr const char* top_help = R"(usage: troupe top [--once] [--interval SECONDS] [GROUP]

Watch one troupe group of this host, refreshed every interval: per node its pid,
frames per second in and out, bytes per second written, rejected frames, ring
fill toward each peer (peer:percent), whether its reader is parked, and its
command line; then the group's published names and shared values. Without
GROUP, the first running group. It reads the segments read-only, as `troupe ls`
does, and never joins a group.

keys:
  q            quit
  s            sort by the next column (slot, in, out, bytes, ring fill)
  g, n, right  the next group of this host
  p, left      the previous group

options:
  --once               print one frame as plain text and exit (the rates are
                       measured over one interval first), for scripts
  --interval SECONDS   time between two frames, 0.1 to 60 (default 1)
  -h, --help           show this help

exit status: 0 ok, 1 the group does not exist or no terminal, 2 usage error
)";

using clock_type = std::chrono::steady_clock;

enum class sort_key { slot, in, out, bytes, ring, count_ };

const char* sort_name(sort_key k) {
  switch (k) {
  case sort_key::slot:
    return "slot";
  case sort_key::in:
    return "frames in";
  case sort_key::out:
    return "frames out";
  case sort_key::bytes:
    return "bytes out";
  default:
    return "ring fill";
  }
}

/// One reading of the host.
struct reading {
  tipc::host_info host;
  clock_type::time_point at;
};

/// A node's counters at one reading; a node is its slot and epoch.
struct counters {
  uint64_t sent = 0;
  uint64_t received = 0;
  uint64_t written = 0;
};

using node_key = std::pair<uint32_t, uint32_t>;

/// Bytes ever written by the node in `slot`, over all its rings.
uint64_t written_by(const tipc::group_info& g, uint32_t slot) {
  uint64_t sum = 0;
  for (auto& r : g.rings)
    if (r.writer == slot)
      sum += r.written;
  return sum;
}

std::map<node_key, counters> counters_of(const tipc::group_info& g) {
  std::map<node_key, counters> out;
  for (auto& s : g.slots)
    out[{s.slot, s.epoch}] = counters{s.frames_sent, s.frames_received, written_by(g, s.slot)};
  return out;
}

const tipc::group_info* find_group(const tipc::host_info& host, const std::string& name) {
  for (auto& g : host.groups)
    if (g.group == name)
      return &g;
  return nullptr;
}

/// A node's line, with what it is sorted by.
struct row {
  const tipc::slot_info* slot = nullptr;
  std::optional<double> in, out, bytes; // per second; none on the first reading
  double fullest = 0;                   // the fullest ring toward a peer, 0 to 1
  std::string rings;                    // "1:0% 2:37%"
};

std::string rate_text(const std::optional<double>& x) {
  if (!x)
    return "-";
  char buf[32];
  if (*x >= 10e6)
    std::snprintf(buf, sizeof(buf), "%.1fM", *x / 1e6);
  else if (*x >= 10e3)
    std::snprintf(buf, sizeof(buf), "%.1fk", *x / 1e3);
  else
    std::snprintf(buf, sizeof(buf), "%.0f", *x);
  return buf;
}

std::string byte_rate_text(const std::optional<double>& x) {
  if (!x)
    return "-";
  char buf[32];
  if (*x >= 1 << 20)
    std::snprintf(buf, sizeof(buf), "%.1f MiB", *x / (1 << 20));
  else if (*x >= 1 << 10)
    std::snprintf(buf, sizeof(buf), "%.1f KiB", *x / (1 << 10));
  else
    std::snprintf(buf, sizeof(buf), "%.0f B", *x);
  return buf;
}

std::vector<row> rows_of(const tipc::group_info& g, const std::map<node_key, counters>* before,
                         double seconds) {
  auto now = counters_of(g);
  std::vector<row> rows;
  for (auto& s : g.slots) {
    row r;
    r.slot = &s;
    node_key key{s.slot, s.epoch};
    if (before != nullptr && seconds > 0 && s.process_alive) {
      auto it = before->find(key);
      if (it != before->end()) {
        auto& b = it->second;
        auto& n = now[key];
        auto per_s = [&](uint64_t x1, uint64_t x0) {
          return x1 >= x0 ? static_cast<double>(x1 - x0) / seconds : 0.0;
        };
        r.in = per_s(n.received, b.received);
        r.out = per_s(n.sent, b.sent);
        r.bytes = per_s(n.written, b.written);
      }
    }
    for (auto& ring : g.rings) {
      if (ring.writer != s.slot || ring.capacity == 0)
        continue;
      auto fill = static_cast<double>(ring.used) / static_cast<double>(ring.capacity);
      r.fullest = std::max(r.fullest, fill);
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%s%u:%.0f%%", r.rings.empty() ? "" : " ", ring.reader,
                    std::ceil(fill * 100));
      r.rings += buf;
    }
    rows.push_back(std::move(r));
  }
  return rows;
}

void sort_rows(std::vector<row>& rows, sort_key key) {
  auto value = [key](const row& r) -> double {
    switch (key) {
    case sort_key::in:
      return r.in.value_or(-1);
    case sort_key::out:
      return r.out.value_or(-1);
    case sort_key::bytes:
      return r.bytes.value_or(-1);
    case sort_key::ring:
      return r.fullest;
    default:
      return 0;
    }
  };
  std::stable_sort(rows.begin(), rows.end(), [&](const row& a, const row& b) {
    if (key == sort_key::slot)
      return a.slot->slot < b.slot->slot;
    return value(a) > value(b);
  });
}

/// What the view shows: which group, sorted how.
struct view {
  std::string group; // empty: none chosen yet
  sort_key sort = sort_key::slot;
  double interval_s = 1.0;
};

/// The frame for `now`, rates against `before` (null: none yet), as lines.
std::vector<std::string> frame(const view& v, const reading& now, const reading* before) {
  std::vector<std::string> out;
  auto& host = now.host;
  char line[512];
  auto* g = v.group.empty() ? nullptr : find_group(host, v.group);
  size_t index = 0;
  for (size_t i = 0; i < host.groups.size(); ++i)
    if (g == &host.groups[i])
      index = i + 1;
  auto wall = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(wall.time_since_epoch()).count();
  std::snprintf(line, sizeof(line), "troupe top  %s  group %zu of %zu  every %.1f s, sorted by %s",
                time_text(static_cast<uint64_t>(ms)).c_str(), index, host.groups.size(),
                v.interval_s, sort_name(v.sort));
  out.emplace_back(line);
  if (g == nullptr) {
    out.emplace_back(v.group.empty() ? "no troupe group on this host"
                                     : "group " + v.group + ": gone (no segment)");
    return out;
  }
  out.push_back("group " + g->group + "  " + (g->live ? "running" : "not running") + " ("
                + g->liveness + ")");
  if (!g->ready) {
    out.emplace_back("  header not finished");
    return out;
  }
  std::snprintf(line, sizeof(line), "  %u nodes at most, %s rings, %u names, created by pid %d",
                g->max_nodes, bytes_text(g->ring_bytes).c_str(), g->max_names, g->creator_pid);
  out.emplace_back(line);
  out.emplace_back("");

  std::optional<std::map<node_key, counters>> earlier;
  double seconds = 0;
  if (before != nullptr)
    if (auto* g0 = find_group(before->host, g->group)) {
      earlier = counters_of(*g0);
      seconds = std::chrono::duration<double>(now.at - before->at).count();
    }
  auto rows = rows_of(*g, earlier ? &*earlier : nullptr, seconds);
  sort_rows(rows, v.sort);
  std::snprintf(line, sizeof(line), "%-4s %-8s %-6s %9s %9s %11s %8s %-7s %-24s %s", "SLOT", "PID",
                "STATUS", "IN/S", "OUT/S", "BYTES/S", "REJECTED", "READER", "RINGS (peer:fill)",
                "COMMAND");
  out.emplace_back(line);
  for (auto& r : rows) {
    auto& s = *r.slot;
    std::snprintf(
      line, sizeof(line), "%-4u %-8d %-6s %9s %9s %11s %8llu %-7s %-24s %s", s.slot, s.pid,
      status_of(s).c_str(), rate_text(r.in).c_str(), rate_text(r.out).c_str(),
      byte_rate_text(r.bytes).c_str(), static_cast<unsigned long long>(s.frames_rejected),
      s.process_alive ? (s.parked ? "parked" : "running") : "-",
      r.rings.empty() ? "-" : r.rings.c_str(), s.command.empty() ? "-" : s.command.c_str());
    out.emplace_back(line);
  }
  out.emplace_back("");
  out.push_back("names (" + std::to_string(g->names.size()) + " of " + std::to_string(g->max_names)
                + "):" + (g->names.empty() ? " none" : ""));
  for (auto& n : g->names)
    out.push_back("  " + std::string{n.subscription ? "group " : ""} + n.name + "  slot "
                  + std::to_string(n.slot) + " actor " + std::to_string(n.actor)
                  + (n.owner_alive ? "" : "  (stale)"));
  std::vector<const tipc::block_info*> blocks;
  for (auto& b : host.blocks)
    if (std::find(b.groups.begin(), b.groups.end(), g->group) != b.groups.end())
      blocks.push_back(&b);
  out.push_back("shared values and arrays: " + std::string{blocks.empty() ? "none" : ""});
  for (auto* b : blocks) {
    std::ostringstream text;
    print_block(text, *b);
    std::string l;
    std::istringstream lines{text.str()};
    while (std::getline(lines, l))
      out.push_back(l);
  }
  return out;
}

caf::expected<reading> read_host() {
  auto host = tipc::inspect_host();
  if (!host)
    return std::move(host.error());
  return reading{std::move(*host), clock_type::now()};
}

/// The first running group, else the first group, else none.
std::string default_group(const tipc::host_info& host) {
  for (auto& g : host.groups)
    if (g.live)
      return g.group;
  return host.groups.empty() ? std::string{} : host.groups.front().group;
}

/// The group `step` places away from `current` (wrapping), or `current`.
std::string step_group(const tipc::host_info& host, const std::string& current, int step) {
  auto n = static_cast<int>(host.groups.size());
  if (n == 0)
    return current;
  int at = -1;
  for (int i = 0; i < n; ++i)
    if (host.groups[static_cast<size_t>(i)].group == current)
      at = i;
  at = at < 0 ? 0 : ((at + step) % n + n) % n;
  return host.groups[static_cast<size_t>(at)].group;
}

// -- the terminal ---------------------------------------------------------------

volatile sig_atomic_t stop_requested = 0;

extern "C" void on_stop_signal(int) {
  stop_requested = 1;
}

/// Raw keys, the alternate screen and a hidden cursor while it lives; the
/// terminal as it was afterwards.
class terminal_session {
public:
  terminal_session() {
    ok_ = ::tcgetattr(STDIN_FILENO, &saved_) == 0;
    if (ok_) {
      auto raw = saved_;
      raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
      raw.c_cc[VMIN] = 0;
      raw.c_cc[VTIME] = 0;
      ::tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    }
    std::fputs("\x1b[?1049h\x1b[?25l", stdout);
    std::fflush(stdout);
  }
  ~terminal_session() {
    std::fputs("\x1b[?25h\x1b[?1049l", stdout);
    std::fflush(stdout);
    if (ok_)
      ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }
  terminal_session(const terminal_session&) = delete;
  terminal_session& operator=(const terminal_session&) = delete;

private:
  termios saved_{};
  bool ok_ = false;
};

std::pair<size_t, size_t> terminal_size() {
  winsize ws{};
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0)
    return {ws.ws_row, ws.ws_col};
  return {24, 80};
}

void draw(const std::vector<std::string>& lines) {
  auto [rows, cols] = terminal_size();
  std::string screen = "\x1b[H";
  for (size_t i = 0; i < lines.size() && i < rows; ++i) {
    if (i + 1 == rows && lines.size() > rows) {
      screen += "... " + std::to_string(lines.size() - i) + " more lines\x1b[K";
      break;
    }
    screen += lines[i].substr(0, cols) + "\x1b[K";
    if (i + 1 < rows)
      screen += "\r\n";
  }
  screen += "\x1b[J";
  std::fwrite(screen.data(), 1, screen.size(), stdout);
  std::fflush(stdout);
}

enum class key_action { none, quit, sort, next, previous };

/// Reads what was typed and returns the last action it asked for.
key_action read_keys() {
  char buf[64];
  auto n = ::read(STDIN_FILENO, buf, sizeof(buf));
  auto action = key_action::none;
  for (ssize_t i = 0; i < n; ++i) {
    char c = buf[i];
    if (c == '\x1b' && i + 2 < n && buf[i + 1] == '[') {
      if (buf[i + 2] == 'C')
        action = key_action::next;
      else if (buf[i + 2] == 'D')
        action = key_action::previous;
      i += 2;
    } else if (c == 'q' || c == 'Q') {
      return key_action::quit;
    } else if (c == 's') {
      action = key_action::sort;
    } else if (c == 'g' || c == 'n') {
      action = key_action::next;
    } else if (c == 'p') {
      action = key_action::previous;
    }
  }
  return action;
}

/// Fails (with a message) when the group asked for is not on this host.
bool group_exists(const view& v, const reading& r) {
  if (v.group.empty() || find_group(r.host, v.group) != nullptr)
    return true;
  std::cerr << "troupe top: no group '" << v.group << "' on this host\n";
  return false;
}

int run_live(view v) {
  if (!::isatty(STDIN_FILENO) || !::isatty(STDOUT_FILENO)) {
    std::cerr << "troupe top: needs a terminal; use --once to print one frame\n";
    return exit_failed;
  }
  if (auto first = read_host(); first && !group_exists(v, *first))
    return exit_failed;
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGHUP, &sa, nullptr);
  terminal_session session;
  std::optional<reading> before;
  std::optional<reading> now;
  auto period =
    std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(v.interval_s));
  auto next = clock_type::now();
  while (stop_requested == 0) {
    if (clock_type::now() >= next) {
      auto fresh = read_host();
      if (!fresh) {
        draw({"troupe top: " + what_of(fresh.error())});
      } else {
        before = std::move(now);
        now = std::move(*fresh);
        if (v.group.empty())
          v.group = default_group(now->host);
        draw(frame(v, *now, before ? &*before : nullptr));
      }
      next += period;
      if (next < clock_type::now())
        next = clock_type::now() + period;
    }
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - clock_type::now());
    pollfd in{STDIN_FILENO, POLLIN, 0};
    if (::poll(&in, 1, static_cast<int>(std::max<int64_t>(wait.count(), 0))) <= 0)
      continue;
    auto action = read_keys();
    if (action == key_action::quit)
      break;
    if (action == key_action::none || !now)
      continue;
    if (action == key_action::sort) {
      v.sort =
        static_cast<sort_key>((static_cast<int>(v.sort) + 1) % static_cast<int>(sort_key::count_));
    } else {
      auto other = step_group(now->host, v.group, action == key_action::next ? 1 : -1);
      if (other != v.group) {
        v.group = other;
        before.reset(); // rates start again for the new group
      }
    }
    draw(frame(v, *now, before ? &*before : nullptr));
  }
  return exit_ok;
}

int run_once(view v) {
  auto first = read_host();
  if (!first) {
    std::cerr << "troupe top: " << what_of(first.error()) << '\n';
    return exit_failed;
  }
  if (!group_exists(v, *first))
    return exit_failed;
  if (v.group.empty())
    v.group = default_group(first->host);
  ::usleep(static_cast<useconds_t>(v.interval_s * 1e6)); // the rates' interval
  auto second = read_host();
  if (!second) {
    std::cerr << "troupe top: " << what_of(second.error()) << '\n';
    return exit_failed;
  }
  for (auto& l : frame(v, *second, &*first))
    std::cout << l << '\n';
  return exit_ok;
}

} // namespace

int cmd_top(const std::vector<std::string>& args) {
  view v;
  bool once = false;
  for (size_t i = 0; i < args.size(); ++i) {
    auto& a = args[i];
    if (is_help(a)) {
      std::cout << top_help;
      return exit_ok;
    }
    if (a == "--once") {
      once = true;
    } else if (a == "--interval") {
      if (i + 1 >= args.size())
        return usage_error("--interval needs a number of seconds", "top");
      char* end = nullptr;
      auto s = std::strtod(args[++i].c_str(), &end);
      if (end == args[i].c_str() || *end != '\0' || !(s >= 0.1 && s <= 60))
        return usage_error("--interval takes 0.1 to 60 seconds, not '" + args[i] + "'", "top");
      v.interval_s = s;
    } else if (!a.empty() && a[0] == '-') {
      return usage_error("unknown option '" + a + "'", "top");
    } else if (!v.group.empty()) {
      return usage_error("one GROUP at most", "top");
    } else {
      v.group = a;
    }
  }
  return once ? run_once(v) : run_live(v);
}

} // namespace troupe_tool
