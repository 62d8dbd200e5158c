#include "troupe/ipc/inspect.hpp"

#include "block_layout.hpp"
#include "layout.hpp"
#include "segment.hpp"
#include "troupe/ipc/error.hpp"
#include "troupe/ipc/shared_memory.hpp"

#include <caf/message.hpp>

#include <cxxabi.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

namespace troupe::ipc {

namespace {

using namespace detail;

constexpr const char* shm_dir = "/dev/shm";
constexpr const char* shm_prefix = "troupe.";

/// How long a header may stay unfinished before it counts as abandoned by
/// its creator (who would have finished it in microseconds).
constexpr uint64_t setup_grace_ms = 10000;

std::string errno_text(const char* what, int err) {
  return std::string{what} + ": " + std::strerror(err);
}

/// The message an error was made with (without the `troupe.NAME: ` head).
std::string describe_context(const caf::error& err) {
  auto& ctx = err.context();
  if (ctx.size() == 1 && ctx.match_element<std::string>(0))
    return ctx.get_as<std::string>(0);
  return describe(err);
}

std::string demangle(const std::string& mangled) {
  int status = 0;
  char* res = abi::__cxa_demangle(mangled.c_str(), nullptr, nullptr, &status);
  if (status != 0 || res == nullptr)
    return mangled;
  std::string str{res};
  std::free(res);
  return str;
}

std::string mode_text(uint32_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%04o", mode & 07777);
  return buf;
}

/// A read-only mapping of one object under /dev/shm (the thin wrapper around
/// shm_open, fstat and mmap).
struct ro_mapping {
  int fd = -1;
  const unsigned char* base = nullptr;
  size_t size = 0;
  struct stat st {};

  ro_mapping() = default;
  ro_mapping(const ro_mapping&) = delete;
  ro_mapping& operator=(const ro_mapping&) = delete;
  ~ro_mapping() {
    if (base != nullptr)
      ::munmap(const_cast<unsigned char*>(base), size);
    if (fd >= 0)
      ::close(fd);
  }

  /// Milliseconds since the object was created or last resized.
  uint64_t age_ms() const {
    auto changed = std::max(st.st_mtim.tv_sec, st.st_ctim.tv_sec);
    auto now = static_cast<int64_t>(unix_ms() / 1000);
    return now > changed ? static_cast<uint64_t>(now - changed) * 1000 : 0;
  }
};

/// Opens and maps `/dev/shm/<shm_name>` read-only. Errors: `no_such_group`
/// if there is no such object, `bad_segment` otherwise.
caf::expected<std::unique_ptr<ro_mapping>> map_ro(const std::string& shm_name) {
  auto res = std::make_unique<ro_mapping>();
  auto path = "/" + shm_name;
  res->fd = ::shm_open(path.c_str(), O_RDONLY | O_CLOEXEC, 0);
  if (res->fd < 0) {
    auto err = errno;
    if (err == ENOENT)
      return make_error(errc::no_such_group, "no /dev/shm/" + shm_name);
    std::string reason = errno_text("open", err);
    struct stat st {};
    if (err == EACCES && ::stat((std::string{shm_dir} + path).c_str(), &st) == 0)
      reason = "permission denied: it belongs to uid " + std::to_string(st.st_uid) + " (mode "
               + mode_text(st.st_mode) + "), this is uid " + std::to_string(::geteuid())
               + "; run as its owner (or root)";
    return make_error(errc::bad_segment, reason);
  }
  if (::fstat(res->fd, &res->st) != 0)
    return make_error(errc::bad_segment, errno_text("fstat", errno));
  res->size = static_cast<size_t>(res->st.st_size);
  if (res->size > 0) {
    auto* p = ::mmap(nullptr, res->size, PROT_READ, MAP_SHARED, res->fd, 0);
    if (p == MAP_FAILED)
      return make_error(errc::bad_segment, errno_text("mmap", errno));
    res->base = static_cast<const unsigned char*>(p);
  }
  return res;
}

uint64_t boot_unix_ms() {
  static const uint64_t value = [] {
    std::ifstream in{"/proc/stat"};
    std::string key;
    uint64_t btime = 0;
    while (in >> key) {
      if (key == "btime") {
        in >> btime;
        break;
      }
      in.ignore(1 << 20, '\n');
    }
    return btime * 1000;
  }();
  return value;
}

uint64_t ticks_to_unix_ms(uint64_t ticks) {
  static const long hz = ::sysconf(_SC_CLK_TCK);
  if (ticks == 0 || hz <= 0 || boot_unix_ms() == 0)
    return 0;
  return boot_unix_ms() + ticks * 1000 / static_cast<uint64_t>(hz);
}

std::string command_line(int32_t pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary};
  std::string res{std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
  while (!res.empty() && res.back() == '\0')
    res.pop_back();
  std::replace(res.begin(), res.end(), '\0', ' ');
  return res;
}

const char* slot_state_name(uint32_t st) {
  switch (st) {
  case slot_free:
    return "free";
  case slot_claiming:
    return "claiming";
  case slot_alive:
    return "alive";
  case slot_dead:
    return "dead";
  default:
    return "unknown";
  }
}

std::string pid_list(const std::vector<int32_t>& pids) {
  std::string res;
  for (auto pid : pids) {
    if (!res.empty())
      res += ", ";
    res += std::to_string(pid);
  }
  return res;
}

std::string copy_string(const char* p, size_t max) {
  return std::string{p, ::strnlen(p, max)};
}

/// Whether `shm_name` is a value's block (holds `.v.` after the prefix).
bool is_block_name(const std::string& shm_name) {
  return shm_name.find(block_infix, std::strlen(shm_prefix)) != std::string::npos;
}

/// Fills `info` from the header of a mapped group segment.
caf::error read_group(const ro_mapping& m, group_info& info) {
  info.owner = m.st.st_uid;
  info.mode = static_cast<uint32_t>(m.st.st_mode & 07777);
  info.size_bytes = m.size;
  info.ready = false;
  auto* hdr = reinterpret_cast<const segment_header*>(m.base);
  // A magic is written first; what has another one is not a group.
  if (m.size >= sizeof(uint64_t) && hdr->magic != 0 && hdr->magic != segment_magic)
    return make_error(errc::bad_segment, "not a troupe group segment (bad magic)");
  if (m.size >= geometry::header_bytes())
    info.ready = hdr->ready.load(std::memory_order_acquire) == 1;
  if (!info.ready) {
    // The creator is still at it, or died doing it.
    if (m.size >= geometry::header_bytes())
      info.creator_pid = hdr->creator_pid;
    if (info.creator_pid > 0 && !process_alive(info.creator_pid, 0)) {
      info.liveness = "unfinished: its creator pid " + std::to_string(info.creator_pid) + " died";
    } else if (m.age_ms() >= setup_grace_ms) {
      info.liveness = "unfinished for " + std::to_string(m.age_ms() / 1000) + " s: abandoned";
    } else {
      info.live = true;
      info.liveness = "being created";
      if (info.creator_pid > 0)
        info.liveness += " by pid " + std::to_string(info.creator_pid);
      if (info.creator_pid > 0)
        info.live_pids.push_back(info.creator_pid);
    }
    return caf::none;
  }
  if (hdr->magic != segment_magic)
    return make_error(errc::bad_segment, "not a troupe group segment (bad magic)");
  if (hdr->version != layout_version)
    return make_error(errc::bad_segment, "layout version " + std::to_string(hdr->version)
                                           + ", this troupe speaks "
                                           + std::to_string(layout_version));
  geometry geo{hdr->max_nodes, hdr->ring_bytes, hdr->max_names};
  if (geo.max_nodes < 2 || geo.max_nodes > 64 || geo.ring_bytes == 0
      || (geo.ring_bytes & (geo.ring_bytes - 1)) != 0 || geo.total_bytes() != hdr->total_bytes
      || m.size < geo.total_bytes())
    return make_error(errc::bad_segment, "inconsistent geometry");
  info.creator_pid = hdr->creator_pid;
  info.created_unix_ms = hdr->created_unix_ms;
  info.max_nodes = geo.max_nodes;
  info.ring_bytes = geo.ring_bytes;
  info.max_names = geo.max_names;
  info.max_message_bytes = hdr->max_message_bytes;
  info.names_seq = hdr->names_seq.load(std::memory_order_acquire);
  // Only ever read through this view: the mapping is PROT_READ.
  segment_view seg{const_cast<unsigned char*>(m.base), geo};
  std::vector<uint32_t> used;
  size_t dead = 0;
  for (uint32_t i = 0; i < geo.max_nodes; ++i) {
    auto* s = seg.slot(i);
    slot_info x;
    x.slot = i;
    auto tenure = s->tenure.load(std::memory_order_acquire);
    auto st = state_of(tenure);
    x.epoch = epoch_of(tenure);
    if (st == slot_free && x.epoch == 0)
      continue;
    used.push_back(i);
    x.state = slot_state_name(st);
    x.pid = slot_pid(*s);
    x.start_ticks = s->start_ticks.load(std::memory_order_acquire);
    x.started_unix_ms = ticks_to_unix_ms(x.start_ticks);
    x.joined_unix_ms = s->joined_unix_ms.load(std::memory_order_relaxed);
    x.frames_sent = s->frames_sent.load(std::memory_order_relaxed);
    x.frames_received = s->frames_received.load(std::memory_order_relaxed);
    x.frames_rejected = s->frames_rejected.load(std::memory_order_relaxed);
    x.doorbell = s->doorbell.load(std::memory_order_relaxed);
    x.parked = s->parked.load(std::memory_order_relaxed) != 0;
    x.process_alive = slot_process_alive(*s);
    if (x.process_alive) {
      x.command = command_line(x.pid);
      info.live_pids.push_back(x.pid);
    } else if (st == slot_alive || st == slot_claiming || st == slot_dead) {
      ++dead;
    }
    info.slots.push_back(std::move(x));
  }
  for (uint32_t i = 0; i < geo.max_names; ++i) {
    auto* e = seg.name(i);
    if (e->state.load(std::memory_order_acquire) != name_live)
      continue;
    name_info x;
    x.subscription = e->name[0] == subscription_mark;
    x.name =
      copy_string(e->name + (x.subscription ? 1 : 0), actor_name_max - (x.subscription ? 1 : 0));
    x.slot = e->slot;
    x.epoch = e->epoch;
    x.actor = e->actor;
    if (x.slot < geo.max_nodes) {
      auto* s = seg.slot(x.slot);
      x.owner_alive = s->epoch() == x.epoch && slot_process_alive(*s);
    }
    info.names.push_back(std::move(x));
  }
  std::sort(info.names.begin(), info.names.end(),
            [](const name_info& a, const name_info& b) { return a.name < b.name; });
  for (auto w : used) {
    for (auto r : used) {
      if (w == r)
        continue;
      auto ring = seg.ring(w, r);
      auto tail = ring.hdr->tail.load(std::memory_order_acquire);
      auto head = ring.hdr->head.load(std::memory_order_acquire);
      info.rings.push_back(ring_info{w, r, tail >= head ? tail - head : 0, ring.capacity, tail});
    }
  }
  if (!info.live_pids.empty()) {
    info.live = true;
    info.liveness =
      (info.live_pids.size() == 1 ? "pid " : "pids ") + pid_list(info.live_pids) + " alive";
  } else if (used.empty() && process_alive(info.creator_pid, 0)) {
    // Between creating the segment and claiming its first slot.
    info.live = true;
    info.live_pids.push_back(info.creator_pid);
    info.liveness = "being set up by pid " + std::to_string(info.creator_pid);
  } else if (used.empty()) {
    info.liveness =
      "no node ever joined, creator pid " + std::to_string(info.creator_pid) + " gone";
  } else if (dead == 0) {
    info.liveness = "every node left";
  } else {
    info.liveness = "all " + std::to_string(dead) + " node" + (dead == 1 ? "" : "s") + " dead";
  }
  return caf::none;
}

/// One element of a built-in number type (its mangled name `type`, the
/// Itanium ABI's one letter) at `p`, as text; empty for another type. The
/// load is atomic (relaxed), as `shared_value`'s own are.
std::string number_text(const unsigned char* p, char type) {
  auto load = [p](auto zero) {
    using T = decltype(zero);
    T x;
    if constexpr (sizeof(T) == 1) {
      auto bits = __atomic_load_n(reinterpret_cast<const uint8_t*>(p), __ATOMIC_RELAXED);
      std::memcpy(&x, &bits, sizeof(T));
    } else if constexpr (sizeof(T) == 2) {
      auto bits = __atomic_load_n(reinterpret_cast<const uint16_t*>(p), __ATOMIC_RELAXED);
      std::memcpy(&x, &bits, sizeof(T));
    } else if constexpr (sizeof(T) == 4) {
      auto bits = __atomic_load_n(reinterpret_cast<const uint32_t*>(p), __ATOMIC_RELAXED);
      std::memcpy(&x, &bits, sizeof(T));
    } else {
      auto bits = __atomic_load_n(reinterpret_cast<const uint64_t*>(p), __ATOMIC_RELAXED);
      std::memcpy(&x, &bits, sizeof(T));
    }
    return x;
  };
  std::ostringstream out;
  switch (type) {
  case 'b':
    out << (load(uint8_t{}) != 0 ? "true" : "false");
    break;
  case 'c':
  case 'a':
    out << static_cast<int>(load(int8_t{}));
    break;
  case 'h':
    out << static_cast<unsigned>(load(uint8_t{}));
    break;
  case 's':
    out << load(int16_t{});
    break;
  case 't':
    out << load(uint16_t{});
    break;
  case 'i':
    out << load(int32_t{});
    break;
  case 'j':
    out << load(uint32_t{});
    break;
  case 'l':
  case 'x':
    out << load(int64_t{});
    break;
  case 'm':
  case 'y':
    out << load(uint64_t{});
    break;
  case 'f':
    out << load(float{});
    break;
  case 'd':
    out << load(double{});
    break;
  default:
    return {};
  }
  return out.str();
}

/// The size of the built-in number type whose mangled name is `type`; 0
/// for another type.
uint64_t number_size(char type) {
  switch (type) {
  case 'b':
  case 'c':
  case 'a':
  case 'h':
    return 1;
  case 's':
  case 't':
    return 2;
  case 'i':
  case 'j':
  case 'f':
    return 4;
  case 'l':
  case 'x':
  case 'm':
  case 'y':
  case 'd':
    return 8;
  default:
    return 0;
  }
}

/// What `block_info::values` says of a finished block.
std::string values_text(const ro_mapping& m, const block_header& hdr, const std::string& mangled) {
  constexpr uint64_t shown = 8;
  if (mangled.size() != 1 || number_size(mangled[0]) != hdr.elem_size
      || hdr.data_offset % hdr.elem_size != 0)
    return {};
  auto n = std::min(hdr.count, shown);
  if (hdr.data_offset > m.size || n * hdr.elem_size > m.size - hdr.data_offset)
    return {};
  std::string text;
  for (uint64_t i = 0; i < n; ++i) {
    auto x = number_text(m.base + hdr.data_offset + i * hdr.elem_size, mangled[0]);
    if (x.empty())
      return {};
    text += (i == 0 ? "" : ", ") + x;
  }
  if (hdr.kind == static_cast<uint32_t>(shm_kind::array))
    text = "[" + text + (hdr.count > shown ? ", ...]" : "]");
  return text;
}

/// Fills `info` from the header of a mapped block.
caf::error read_block(const ro_mapping& m, block_info& info) {
  info.size_bytes = m.size;
  auto* hdr = reinterpret_cast<const block_header*>(m.base);
  if (m.size >= sizeof(uint64_t) && hdr->magic != 0 && hdr->magic != block_magic)
    return make_error(errc::bad_segment, "not a troupe shared value (bad magic)");
  if (m.size >= sizeof(block_header))
    info.ready = hdr->ready.load(std::memory_order_acquire) == 1;
  if (m.size >= sizeof(block_header))
    info.creator_pid = hdr->creator_pid;
  if (!info.ready) {
    if (info.creator_pid > 0 && !process_alive(info.creator_pid, 0)) {
      info.liveness = "unfinished: its creator pid " + std::to_string(info.creator_pid) + " died";
    } else if (m.age_ms() >= setup_grace_ms) {
      info.liveness = "unfinished for " + std::to_string(m.age_ms() / 1000) + " s: abandoned";
    } else {
      info.live = true;
      info.liveness = "being created";
    }
    return caf::none;
  }
  if (hdr->magic != block_magic)
    return make_error(errc::bad_segment, "not a troupe shared value (bad magic)");
  if (hdr->version != block_version)
    return make_error(errc::bad_segment, "block version " + std::to_string(hdr->version)
                                           + ", this troupe speaks "
                                           + std::to_string(block_version));
  info.kind = hdr->kind == static_cast<uint32_t>(shm_kind::array) ? "array" : "value";
  auto mangled = copy_string(hdr->type_name, type_name_bytes);
  info.type_name = demangle(mangled);
  info.elem_size = hdr->elem_size;
  info.count = hdr->count;
  info.values = values_text(m, *hdr, mangled);
  info.creator_alive = process_alive(hdr->creator_pid, hdr->creator_start_ticks);
  if (info.creator_alive) {
    info.live = true;
    info.liveness = "creator pid " + std::to_string(info.creator_pid) + " alive";
    return caf::none;
  }
  // Its creator is gone, but nodes of its group may still use it.
  for (auto& g : info.groups) {
    auto grp = inspect_group(g);
    if (grp && grp->live) {
      info.live = true;
      info.liveness = "creator pid " + std::to_string(info.creator_pid) + " gone, but group '" + g
                      + "' runs (" + grp->liveness + ")";
      return caf::none;
    }
  }
  info.liveness = "creator pid " + std::to_string(info.creator_pid) + " gone, no group of it runs";
  return caf::none;
}

void split_block_name(const std::string& shm_name, block_info& info) {
  auto prefix = std::strlen(shm_prefix);
  auto infix = std::strlen(block_infix);
  for (auto pos = shm_name.find(block_infix, prefix); pos != std::string::npos;
       pos = shm_name.find(block_infix, pos + 1)) {
    auto group = shm_name.substr(prefix, pos - prefix);
    if (info.name.empty())
      info.name = shm_name.substr(pos + infix);
    if (!check_group_name(group))
      info.groups.push_back(std::move(group));
  }
}

caf::expected<block_info> inspect_block(const std::string& shm_name,
                                        std::unique_ptr<ro_mapping>* keep = nullptr) {
  auto m = map_ro(shm_name);
  if (!m)
    return std::move(m.error());
  block_info info;
  info.shm_name = shm_name;
  split_block_name(shm_name, info);
  if (auto err = read_block(**m, info))
    return err;
  if (keep != nullptr)
    *keep = std::move(*m);
  return info;
}

caf::expected<group_info> inspect_group_impl(const std::string& group,
                                             std::unique_ptr<ro_mapping>* keep) {
  if (auto err = check_group_name(group))
    return err;
  auto shm_name = shm_name_of(group);
  auto m = map_ro(shm_name);
  if (!m) {
    if (is(m.error(), errc::no_such_group))
      return make_error(errc::no_such_group, "no group '" + group + "' on this host");
    return make_error(errc::bad_segment, "group '" + group + "': " + describe_context(m.error()));
  }
  group_info info;
  info.group = group;
  info.shm_name = shm_name;
  if (auto err = read_group(**m, info))
    return make_error(errc::bad_segment, "group '" + group + "': " + describe_context(err));
  if (keep != nullptr)
    *keep = std::move(*m);
  return info;
}

bool same_object(const ro_mapping& a, const ro_mapping& b) {
  return a.st.st_dev == b.st.st_dev && a.st.st_ino == b.st.st_ino;
}

caf::error unlink_shm(const std::string& shm_name) {
  auto path = "/" + shm_name;
  if (::shm_unlink(path.c_str()) != 0 && errno != ENOENT)
    return make_error(errc::bad_segment,
                      "cannot remove /dev/shm/" + shm_name + ": " + std::strerror(errno));
  return caf::none;
}

} // namespace

caf::expected<host_info> inspect_host() {
  auto* dir = ::opendir(shm_dir);
  if (dir == nullptr)
    return make_error(errc::bad_segment, errno_text("cannot list /dev/shm", errno));
  std::vector<std::string> names;
  while (auto* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name.rfind(shm_prefix, 0) == 0 && name.size() > std::strlen(shm_prefix))
      names.push_back(std::move(name));
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  host_info res;
  for (auto& name : names) {
    auto m = map_ro(name);
    if (!m) {
      if (!is(m.error(), errc::no_such_group)) // unless gone meanwhile
        res.unreadable.push_back(unreadable_info{name, describe_context(m.error())});
      continue;
    }
    // What the object is says its magic; its name only while it has none.
    uint64_t magic = 0;
    if ((*m)->size >= sizeof(magic))
      std::memcpy(&magic, (*m)->base, sizeof(magic));
    auto as_block = magic == block_magic || (magic == 0 && is_block_name(name));
    if (magic != 0 && magic != block_magic && magic != segment_magic) {
      res.unreadable.push_back(unreadable_info{name, "not a troupe segment (bad magic)"});
    } else if (as_block) {
      block_info info;
      info.shm_name = name;
      split_block_name(name, info);
      if (auto err = read_block(**m, info))
        res.unreadable.push_back(unreadable_info{name, describe_context(err)});
      else
        res.blocks.push_back(std::move(info));
    } else if (auto group = name.substr(std::strlen(shm_prefix)); check_group_name(group)) {
      res.unreadable.push_back(unreadable_info{name, "not a valid group name"});
    } else {
      group_info info;
      info.group = group;
      info.shm_name = name;
      if (auto err = read_group(**m, info))
        res.unreadable.push_back(unreadable_info{name, describe_context(err)});
      else
        res.groups.push_back(std::move(info));
    }
  }
  return res;
}

caf::expected<group_info> inspect_group(const std::string& group) {
  return inspect_group_impl(group, nullptr);
}

namespace {

/// Unlinks `shm_name` if `inspect` shows it dead twice, the second time on
/// what the name holds just before the unlink (the same object, still
/// dead); else fails with `busy` saying why, `what` naming it.
template <class Inspect>
caf::error remove_if_dead(const std::string& shm_name, const std::string& what, errc busy,
                          Inspect inspect) {
  std::unique_ptr<ro_mapping> first;
  auto info = inspect(&first);
  if (!info)
    return std::move(info.error());
  if (info->live)
    return make_error(busy, what + " is in use: " + info->liveness);
  std::unique_ptr<ro_mapping> second;
  auto again = inspect(&second);
  if (!again)
    return std::move(again.error());
  if (!same_object(*first, *second) || again->live)
    return make_error(busy, what + " was made again meanwhile: " + again->liveness);
  return unlink_shm(shm_name);
}

} // namespace

caf::error remove_dead_group(const std::string& group) {
  auto shm_name = shm_name_of(group);
  return remove_if_dead(
    shm_name, "group '" + group + "'", errc::group_running,
    [&](std::unique_ptr<ro_mapping>* mapping) { return inspect_group_impl(group, mapping); });
}

caf::error remove_dead_block(const std::string& shm_name) {
  if (shm_name.rfind(shm_prefix, 0) != 0 || !is_block_name(shm_name)
      || shm_name.find('/') != std::string::npos)
    return make_error(troupe::errc::invalid_argument,
                      "'" + shm_name + "' is not the name of a shared value's block");
  return remove_if_dead(
    shm_name, "/dev/shm/" + shm_name, errc::name_taken,
    [&](std::unique_ptr<ro_mapping>* mapping) { return inspect_block(shm_name, mapping); });
}

} // namespace troupe::ipc
