#include "segment.hpp"

#include "troupe/ipc/error.hpp"

#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

namespace bip = boost::interprocess;

namespace troupe::ipc::detail {

namespace {

class boost_segment final : public mapped_segment {
public:
  bip::shared_memory_object shm;
  bip::mapped_region region;

  caf::error reserve(size_t offset, size_t len, const std::string& what) override {
    return reserve_bytes(shm.get_mapping_handle().handle, offset, len, what);
  }

  void release(size_t offset, size_t len) override {
    // Best effort: a hole that stays allocated only costs memory.
    [[maybe_unused]] auto rc =
      ::fallocate(shm.get_mapping_handle().handle, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  static_cast<off_t>(offset), static_cast<off_t>(len));
  }

  void close_file() override {
    shm = bip::shared_memory_object{};
  }
};

std::string mebibytes(uint64_t n) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f MiB", static_cast<double>(n) / (1024.0 * 1024.0));
  return buf;
}

caf::error bip_error(const std::string& what, const bip::interprocess_exception& e) {
  return make_error(errc::bad_segment, what + ": " + e.what());
}

bool is_power_of_two(uint64_t x) {
  return x != 0 && (x & (x - 1)) == 0;
}

/// Maps an existing segment and checks what can be checked without the key.
caf::expected<std::unique_ptr<boost_segment>> map_existing(const std::string& group,
                                                           caf::timespan ready_timeout) {
  auto res = std::make_unique<boost_segment>();
  res->group = group;
  res->shm_name = shm_name_of(group);
  try {
    res->shm = bip::shared_memory_object(bip::open_only, res->shm_name.c_str(), bip::read_write);
  } catch (const bip::interprocess_exception& e) {
    if (e.get_error_code() == bip::not_found_error)
      return make_error(errc::no_such_group, "no group '" + group + "' runs on this host");
    return bip_error("cannot open the segment of group '" + group + "'", e);
  }
  struct stat st {};
  if (::fstat(res->shm.get_mapping_handle().handle, &st) != 0)
    return make_error(errc::bad_segment, std::string{"fstat: "} + std::strerror(errno));
  if (st.st_uid != ::geteuid())
    return make_error(errc::bad_segment, "the segment of group '" + group + "' belongs to uid "
                                           + std::to_string(st.st_uid) + ", not to this user");
  if ((st.st_mode & 0077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return make_error(errc::bad_segment, "the segment of group '" + group + "' has mode " + mode
                                           + "; troupe only trusts 0600");
  }
  // The creator truncates, maps and fills the header; wait until it is done.
  auto deadline = std::chrono::steady_clock::now() + ready_timeout;
  for (;;) {
    bip::offset_t size = 0;
    res->shm.get_size(size);
    if (static_cast<size_t>(size) >= geometry::header_bytes()) {
      try {
        res->region = bip::mapped_region(res->shm, bip::read_write);
      } catch (const bip::interprocess_exception& e) {
        return bip_error("cannot map the segment of group '" + group + "'", e);
      }
      auto* hdr = static_cast<segment_header*>(res->region.get_address());
      if (hdr->ready.load(std::memory_order_acquire) == 1)
        break;
      res->region = bip::mapped_region{};
    }
    if (std::chrono::steady_clock::now() >= deadline)
      return make_error(errc::bad_segment,
                        "the segment of group '" + group + "' was never finished by its creator");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  auto* hdr = static_cast<segment_header*>(res->region.get_address());
  if (hdr->magic != segment_magic)
    return make_error(errc::bad_segment,
                      "'/dev/shm/" + res->shm_name + "' is not a troupe segment");
  if (hdr->version != layout_version)
    return make_error(errc::bad_segment, "the segment of group '" + group + "' has layout version "
                                           + std::to_string(hdr->version) + ", this troupe speaks "
                                           + std::to_string(layout_version));
  geometry geo{hdr->max_nodes, hdr->ring_bytes, hdr->max_names};
  if (geo.max_nodes < 2 || geo.max_nodes > 64 || !is_power_of_two(geo.ring_bytes)
      || geo.total_bytes() != hdr->total_bytes || res->region.get_size() < geo.total_bytes())
    return make_error(errc::bad_segment,
                      "the segment of group '" + group + "' has an inconsistent geometry");
  res->view = segment_view{static_cast<unsigned char*>(res->region.get_address()), geo};
  return res;
}

} // namespace

caf::error mapped_segment::reserve(size_t, size_t, const std::string&) {
  return caf::none; // memory that is not a tmpfs object (the decoder harness's)
}

void mapped_segment::release(size_t, size_t) {}

void mapped_segment::close_file() {}

caf::error no_shared_memory(size_t need, const std::string& what) {
  struct statvfs fs {};
  std::string free = "unknown";
  if (::statvfs("/dev/shm", &fs) == 0)
    free = mebibytes(uint64_t{fs.f_bavail} * fs.f_frsize) + " of "
           + mebibytes(uint64_t{fs.f_blocks} * fs.f_frsize);
  return make_error(errc::no_shared_memory, "/dev/shm has no room for " + what + ": "
                                              + mebibytes(need) + " needed, " + free + " free");
}

caf::error reserve_bytes(int fd, size_t offset, size_t len, const std::string& what) {
  for (;;) {
    if (::fallocate(fd, 0, static_cast<off_t>(offset), static_cast<off_t>(len)) == 0)
      return caf::none;
    if (errno == EINTR)
      continue;
    if (errno == EOPNOTSUPP)
      return caf::none;
    if (errno == ENOSPC || errno == ENOMEM)
      return no_shared_memory(len, what);
    return make_error(errc::bad_segment, "fallocate for " + what + ": " + std::strerror(errno));
  }
}

std::string shm_name_of(const std::string& group) {
  return "troupe." + group;
}

caf::error check_group_name(const std::string& group) {
  if (group.empty() || group.size() > group_name_max)
    return make_error(troupe::errc::invalid_argument,
                      "a group name has 1 to " + std::to_string(group_name_max) + " characters");
  for (char c : group) {
    auto ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'
              || c == '-' || c == '.';
    if (!ok)
      return make_error(troupe::errc::invalid_argument,
                        "group name '" + group + "' may only hold [A-Za-z0-9_.-]");
  }
  if (group == "." || group == "..")
    return make_error(troupe::errc::invalid_argument, "'" + group + "' is not a group name");
  return caf::none;
}

caf::error check_options(const group_options& opts) {
  if (opts.max_nodes < 2 || opts.max_nodes > 64)
    return make_error(troupe::errc::invalid_argument, "max_nodes must be from 2 to 64");
  if (!is_power_of_two(opts.ring_bytes) || opts.ring_bytes < (uint64_t{64} << 10)
      || opts.ring_bytes > (uint64_t{256} << 20))
    return make_error(troupe::errc::invalid_argument,
                      "ring_bytes must be a power of two from 64 KiB to 256 MiB");
  if (opts.max_names < 1 || opts.max_names > 65536)
    return make_error(troupe::errc::invalid_argument, "max_names must be from 1 to 65536");
  if (opts.max_message_bytes < 1024 || opts.max_message_bytes > (uint64_t{1} << 30))
    return make_error(troupe::errc::invalid_argument,
                      "max_message_bytes must be from 1 KiB to 1 GiB");
  return caf::none;
}

std::string to_hex(const void* data, size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  auto* bytes = static_cast<const uint8_t*>(data);
  std::string res;
  res.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    res += digits[bytes[i] >> 4];
    res += digits[bytes[i] & 0xF];
  }
  return res;
}

std::optional<std::vector<uint8_t>> from_hex(const std::string& hex) {
  if (hex.size() % 2 != 0)
    return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9')
      return c - '0';
    if (c >= 'a' && c <= 'f')
      return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
      return c - 'A' + 10;
    return -1;
  };
  std::vector<uint8_t> res;
  res.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    auto hi = nibble(hex[i]);
    auto lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0)
      return std::nullopt;
    res.push_back(static_cast<uint8_t>(hi << 4 | lo));
  }
  return res;
}

std::string key_to_hex(const group_key& key) {
  return to_hex(key.data(), key.size());
}

caf::expected<group_key> key_from_hex(const std::string& hex) {
  group_key res{};
  if (hex.size() != key_bytes * 2)
    return make_error(errc::bad_key,
                      "a group key has " + std::to_string(key_bytes * 2) + " hex digits");
  auto bytes = from_hex(hex);
  if (!bytes)
    return make_error(errc::bad_key, "a group key is made of hex digits");
  std::copy(bytes->begin(), bytes->end(), res.begin());
  return res;
}

caf::expected<std::unique_ptr<mapped_segment>> create_segment(const std::string& group,
                                                              const group_options& opts) {
  if (auto err = check_group_name(group))
    return err;
  if (auto err = check_options(opts))
    return err;
  geometry geo{opts.max_nodes, opts.ring_bytes, opts.max_names};
  auto name = shm_name_of(group);
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto res = std::make_unique<boost_segment>();
    res->group = group;
    res->shm_name = name;
    try {
      res->shm = bip::shared_memory_object(bip::create_only, name.c_str(), bip::read_write,
                                           bip::permissions{0600});
    } catch (const bip::interprocess_exception& e) {
      if (e.get_error_code() != bip::already_exists_error)
        return bip_error("cannot create the segment of group '" + group + "'", e);
      // Someone made it: a running group, one being created, or a dead one.
      auto old = map_existing(group, opts.join_timeout);
      if (!old) {
        if (is(old.error(), errc::no_such_group))
          continue; // removed meanwhile: try again
        return std::move(old.error());
      }
      auto& seg = (*old)->view;
      if (auto pid = live_pid(seg))
        return make_error(errc::group_running, "group '" + group + "' is already running (pid "
                                                 + std::to_string(pid) + ")");
      if (!opts.quiet)
        std::cerr << "[troupe] group '" << group
                  << "': swept a segment left by processes that all died\n";
      remove_segment(name);
      continue;
    }
    try {
      res->shm.truncate(static_cast<bip::offset_t>(geo.total_bytes()));
      res->region = bip::mapped_region(res->shm, bip::read_write);
    } catch (const bip::interprocess_exception& e) {
      remove_segment(name);
      return bip_error("cannot size the segment of group '" + group + "'", e);
    }
    // The header, slots, names and ring headers are touched from here on;
    // the ring data only as pairs of nodes start to talk.
    if (auto err = res->reserve(0, geo.rings_offset(), "group '" + group + "'")) {
      remove_segment(name);
      return err;
    }
    auto* base = static_cast<unsigned char*>(res->region.get_address());
    // A fresh tmpfs object reads as zeros: every slot free, every ring empty.
    auto* hdr = reinterpret_cast<segment_header*>(base);
    hdr->magic = segment_magic;
    hdr->version = layout_version;
    hdr->max_nodes = geo.max_nodes;
    hdr->ring_bytes = geo.ring_bytes;
    hdr->max_names = geo.max_names;
    hdr->total_bytes = geo.total_bytes();
    hdr->max_message_bytes = opts.max_message_bytes;
    if (::getrandom(hdr->key, key_bytes, 0) != static_cast<ssize_t>(key_bytes)) {
      remove_segment(name);
      return make_error(errc::bad_segment, std::string{"getrandom: "} + std::strerror(errno));
    }
    hdr->creator_pid = ::getpid();
    hdr->created_unix_ms = unix_ms();
    std::snprintf(hdr->group, sizeof(hdr->group), "%s", group.c_str());
    hdr->ready.store(1, std::memory_order_release);
    res->view = segment_view{base, geo};
    return std::unique_ptr<mapped_segment>{std::move(res)};
  }
  return make_error(errc::bad_segment,
                    "cannot create the segment of group '" + group + "': it keeps reappearing");
}

caf::expected<std::unique_ptr<mapped_segment>>
open_segment(const std::string& group, const group_key& key, caf::timespan join_timeout) {
  if (auto err = check_group_name(group))
    return err;
  auto res = map_existing(group, join_timeout);
  if (!res)
    return std::move(res.error());
  auto* hdr = (*res)->view.header();
  // Compare all bytes, whatever differs first.
  uint8_t diff = 0;
  for (size_t i = 0; i < key_bytes; ++i)
    diff |= static_cast<uint8_t>(hdr->key[i] ^ key[i]);
  if (diff != 0)
    return make_error(errc::bad_key, "wrong key for group '" + group + "'");
  return std::unique_ptr<mapped_segment>{std::move(*res)};
}

int32_t slot_pid(const node_slot& s) {
  auto tenure = s.tenure.load(std::memory_order_acquire);
  return state_of(tenure) == slot_claiming ? claimer_of(tenure)
                                           : s.pid.load(std::memory_order_acquire);
}

bool slot_process_alive(const node_slot& s) {
  auto tenure = s.tenure.load(std::memory_order_acquire);
  if (state_of(tenure) == slot_claiming)
    return process_alive(claimer_of(tenure), 0); // its start time is not stored yet
  if (state_of(tenure) != slot_alive)
    return false;
  auto pid = s.pid.load(std::memory_order_acquire);
  return pid > 0 && process_alive(pid, s.start_ticks.load(std::memory_order_acquire));
}

int32_t live_pid(const segment_view& seg) {
  for (uint32_t i = 0; i < seg.geo.max_nodes; ++i) {
    auto* s = seg.slot(i);
    if (slot_process_alive(*s))
      return slot_pid(*s);
  }
  return 0;
}

void remove_segment(const std::string& shm_name) {
  bip::shared_memory_object::remove(shm_name.c_str());
}

namespace {

/// Reads /proc/PID/stat into `line`: 0, or why it could not (an errno).
int read_stat(pid_t pid, std::string& line) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%d/stat", static_cast<int>(pid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno;
  char buf[1024]; // a command name of at most 16 bytes, then numbers
  ssize_t n = 0;
  do
    n = ::read(fd, buf, sizeof(buf));
  while (n < 0 && errno == EINTR);
  auto err = n < 0 ? errno : 0;
  ::close(fd);
  if (n <= 0)
    return err != 0 ? err : ESRCH;
  line.assign(buf, static_cast<size_t>(n));
  return 0;
}

/// The fields of a /proc/PID/stat line after the command name (which ends
/// at the last ')'), from field 3 (the state) on; empty if malformed.
std::istringstream stat_fields(const std::string& line) {
  auto close = line.rfind(')');
  if (close == std::string::npos)
    return std::istringstream{};
  return std::istringstream{line.substr(close + 1)};
}

std::istringstream stat_fields(pid_t pid) {
  std::string line;
  if (read_stat(pid, line) != 0)
    return std::istringstream{};
  return stat_fields(line);
}

/// Field 22 of a /proc/PID/stat line; 0 for a zombie or a malformed line.
uint64_t start_ticks_of(const std::string& line) {
  auto fields = stat_fields(line);
  std::string state;
  fields >> state; // field 3
  if (state.empty() || state == "Z" || state == "X" || state == "x")
    return 0;
  std::string skip;
  for (int i = 4; i < 22; ++i)
    fields >> skip;
  uint64_t start = 0;
  fields >> start; // field 22
  return start;
}

} // namespace

uint64_t process_start_ticks(pid_t pid) {
  std::string line;
  return read_stat(pid, line) == 0 ? start_ticks_of(line) : 0;
}

pid_t parent_pid_of(pid_t pid) {
  auto fields = stat_fields(pid);
  std::string state;
  long parent = 0;
  fields >> state >> parent; // fields 3 and 4
  return static_cast<pid_t>(parent);
}

bool process_alive(pid_t pid, uint64_t start_ticks) {
  if (pid <= 0)
    return false;
  if (::kill(pid, 0) != 0 && errno == ESRCH)
    return false;
  std::string line;
  if (auto err = read_stat(pid, line); err != 0)
    // Gone since kill(2) looked, or no descriptor left to look with (this
    // process at its `ulimit -n`): then kill(2)'s answer stands. Taking a
    // live node for dead would free its slot while it runs.
    return err != ENOENT && err != ESRCH;
  auto now = start_ticks_of(line);
  return now != 0 && (start_ticks == 0 || now == start_ticks);
}

uint64_t descriptor_limit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY)
    return 0;
  return lim.rlim_cur;
}

caf::error check_descriptor_room(size_t needed, const std::string& what) {
  auto limit = descriptor_limit();
  if (limit == 0)
    return caf::none;
  auto says = [&](const std::string& free) {
    return make_error(errc::resource_limit, what + " needs " + std::to_string(needed)
                                              + " more open files in this process, and " + free
                                              + " of its limit of " + std::to_string(limit)
                                              + " (ulimit -n) are free");
  };
  auto* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr)
    return errno == EMFILE || errno == ENFILE ? says("none") : caf::none; // no /proc: no telling
  // The limit is on descriptor numbers: count those below it, less the one
  // this listing holds.
  uint64_t used = 0;
  while (auto* e = ::readdir(dir))
    if (e->d_name[0] != '.' && std::strtoull(e->d_name, nullptr, 10) < limit)
      ++used;
  ::closedir(dir);
  used = used > 0 ? used - 1 : 0;
  auto free = limit > used ? limit - used : 0;
  return free >= needed ? caf::none : says(std::to_string(free));
}

uint64_t unix_ms() {
  using namespace std::chrono;
  return static_cast<uint64_t>(
    duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

uint64_t mono_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

void futex_wait(std::atomic<uint32_t>* word, uint32_t expected, std::chrono::nanoseconds timeout) {
  auto ns = timeout.count();
  timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT, expected, &ts, nullptr, 0);
}

void futex_wake(std::atomic<uint32_t>* word, int count) {
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, count, nullptr, nullptr, 0);
}

int pidfd_open(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  return -1;
#endif
}

} // namespace troupe::ipc::detail
