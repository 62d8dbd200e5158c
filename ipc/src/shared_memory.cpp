#include "troupe/ipc/shared_memory.hpp"

#include "block_layout.hpp"
#include "segment.hpp"
#include "troupe/ipc/inspect.hpp"

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#endif

#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>

#include <cxxabi.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <thread>

namespace bip = boost::interprocess;

namespace troupe::ipc::detail {

namespace {

constexpr size_t name_max = 64;
constexpr auto ready_timeout = std::chrono::seconds(5);
/// How long a block may stay unfinished without a creator to ask (one that
/// died before it stamped the header) before a `create` of its name sweeps
/// it.
constexpr auto unfinished_grace = std::chrono::seconds(10);

uint64_t round_up(uint64_t x, uint64_t to) {
  return (x + to - 1) / to * to;
}

/// Whether the block under `shm_name` is unfinished and nobody will finish
/// it: the creator that stamped its header (pid and start time, written
/// right after sizing it) is dead, or no creator stamped it and it has not
/// changed for `unfinished_grace`. Read with `pread`, never mapped; false
/// when it cannot tell (not this user's, not a troupe block, finished).
bool abandoned_unfinished(const std::string& shm_name) {
  auto path = "/dev/shm/" + shm_name;
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return false;
  struct stat st {};
  alignas(block_header) unsigned char bytes[sizeof(block_header)] = {};
  bool known = ::fstat(fd, &st) == 0 && st.st_uid == ::geteuid();
  auto got = known ? ::pread(fd, bytes, sizeof(bytes), 0) : -1;
  ::close(fd);
  if (!known || got < 0)
    return false;
  auto* hdr = reinterpret_cast<const block_header*>(bytes);
  bool whole = static_cast<size_t>(got) == sizeof(bytes);
  if (whole && hdr->magic != 0 && hdr->magic != block_magic)
    return false; // not a troupe block: map_existing says so
  if (whole && hdr->ready.load(std::memory_order_relaxed) == 1)
    return false;
  if (whole && hdr->creator_pid > 0)
    return !process_alive(hdr->creator_pid, hdr->creator_start_ticks);
  // Sizing and writing move the modification time; nothing else does.
  auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  return now - st.st_mtim.tv_sec >= static_cast<time_t>(unfinished_grace.count());
}

std::string demangle(const char* mangled) {
  int status = 0;
  char* res = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  if (status != 0 || res == nullptr)
    return mangled;
  std::string str{res};
  std::free(res);
  return str;
}

const char* kind_name(uint32_t kind) {
  return kind == static_cast<uint32_t>(shm_kind::array) ? "array" : "value";
}

caf::error check_name(const std::string& name) {
  if (name.empty() || name.size() > name_max)
    return make_error(troupe::errc::invalid_argument,
                      "a shared value's name has 1 to " + std::to_string(name_max) + " characters");
  for (char c : name) {
    auto ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'
              || c == '-' || c == '.';
    if (!ok)
      return make_error(troupe::errc::invalid_argument,
                        "shared value name '" + name + "' may only hold [A-Za-z0-9_.-]");
  }
  if (name == "." || name == "..")
    return make_error(troupe::errc::invalid_argument,
                      "'" + name + "' is not a shared value's name");
  return caf::none;
}

std::string shm_name_for(const node& n, const std::string& name) {
  return shm_name_of(n.group()) + block_infix + name;
}

std::string errno_text(const char* what, int err) {
  return std::string{what} + ": " + std::strerror(err);
}

} // namespace

struct shm_block::impl {
  bip::shared_memory_object shm;
  bip::mapped_region region;
  std::string name;     // as the user gave it
  std::string shm_name; // under /dev/shm
  std::string group;
  bool creator = false;
  bool removed = false;

  block_header* header() const {
    return static_cast<block_header*>(region.get_address());
  }

  std::string what() const {
    return std::string{kind_name(header() ? header()->kind : 1)} + " '" + name + "' of group '"
           + group + "'";
  }
};

namespace {

/// Opens and maps an existing block, checking owner, mode, magic, version and
/// geometry (not the type).
caf::expected<std::unique_ptr<shm_block::impl>> map_existing(const node& n,
                                                             const std::string& name) {
  auto res = std::make_unique<shm_block::impl>();
  res->name = name;
  res->group = n.group();
  res->shm_name = shm_name_for(n, name);
  auto label = "'" + name + "' of group '" + res->group + "'";
  try {
    res->shm = bip::shared_memory_object(bip::open_only, res->shm_name.c_str(), bip::read_write);
  } catch (const bip::interprocess_exception& e) {
    if (e.get_error_code() == bip::not_found_error)
      return make_error(errc::name_not_found, "no shared value or array " + label);
    return make_error(errc::bad_segment, "cannot open " + label + ": " + e.what());
  }
  struct stat st {};
  if (::fstat(res->shm.get_mapping_handle().handle, &st) != 0)
    return make_error(errc::bad_segment, errno_text("fstat", errno));
  if (st.st_uid != ::geteuid())
    return make_error(errc::bad_segment, label + " belongs to uid " + std::to_string(st.st_uid)
                                           + ", not to this user");
  if ((st.st_mode & 0077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return make_error(errc::bad_segment, label + " has mode " + mode + "; troupe only trusts 0600");
  }
  // The creator truncates, maps and fills the header; wait until it is done.
  auto deadline = std::chrono::steady_clock::now() + ready_timeout;
  for (;;) {
    bip::offset_t size = 0;
    res->shm.get_size(size);
    if (static_cast<size_t>(size) >= sizeof(block_header)) {
      try {
        res->region = bip::mapped_region(res->shm, bip::read_write);
      } catch (const bip::interprocess_exception& e) {
        return make_error(errc::bad_segment, "cannot map " + label + ": " + e.what());
      }
      if (res->header()->ready.load(std::memory_order_acquire) == 1)
        break;
      res->region = bip::mapped_region{};
    }
    if (std::chrono::steady_clock::now() >= deadline)
      return make_error(errc::bad_segment, label + " was never finished by its creator");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  auto* hdr = res->header();
  if (hdr->magic != block_magic)
    return make_error(errc::bad_segment,
                      "'/dev/shm/" + res->shm_name + "' is not a troupe shared value");
  if (hdr->version != block_version)
    return make_error(errc::bad_segment, label + " has layout version "
                                           + std::to_string(hdr->version) + ", this troupe speaks "
                                           + std::to_string(block_version));
  if (hdr->elem_size == 0 || hdr->data_offset < sizeof(block_header)
      || hdr->count > (hdr->total_bytes - hdr->data_offset) / hdr->elem_size
      || hdr->total_bytes > res->region.get_size())
    return make_error(errc::bad_segment, label + " has an inconsistent geometry");
  return res;
}

} // namespace

shm_block::shm_block() noexcept = default;
shm_block::shm_block(shm_block&&) noexcept = default;
shm_block& shm_block::operator=(shm_block&& other) noexcept {
  if (this != &other) {
    remove_if_creator();
    impl_ = std::move(other.impl_);
  }
  return *this;
}

shm_block::~shm_block() {
  remove_if_creator();
}

void shm_block::remove_if_creator() noexcept {
  // Only the creator removes a block, and its `remove` cannot fail; an
  // opener's handle just lets go.
  if (impl_ && impl_->creator && !impl_->removed) {
    impl_->removed = true;
    remove_segment(impl_->shm_name);
  }
}

caf::expected<shm_block> shm_block::create(const node& n, const std::string& name, shm_kind kind,
                                           const shm_type& type, uint64_t count,
                                           const std::function<void(void*)>& init) {
  if (auto err = check_name(name))
    return err;
  if (type.size == 0 || type.align == 0 || count == 0)
    return make_error(troupe::errc::invalid_argument, "a shared value holds at least one byte");
  auto data_offset = round_up(sizeof(block_header), std::max<uint64_t>(64, type.align));
  auto total = data_offset + type.size * count;
  auto shm_name = shm_name_for(n, name);
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto res = std::make_unique<impl>();
    res->name = name;
    res->group = n.group();
    res->shm_name = shm_name;
    try {
      res->shm = bip::shared_memory_object(bip::create_only, shm_name.c_str(), bip::read_write,
                                           bip::permissions{0600});
    } catch (const bip::interprocess_exception& e) {
      if (e.get_error_code() != bip::already_exists_error)
        return make_error(errc::bad_segment, "cannot create '" + name + "': " + e.what());
      // A block of that name exists: live, being made, or left by a dead
      // creator, finished or not.
      if (abandoned_unfinished(shm_name)) {
        std::cerr << "[troupe] group '" << n.group() << "': swept shared value or array '" << name
                  << "', left unfinished by a creator that died\n";
        remove_segment(shm_name);
        continue;
      }
      auto old = map_existing(n, name);
      if (!old) {
        if (is(old.error(), errc::name_not_found))
          continue; // removed meanwhile: try again
        return std::move(old.error());
      }
      auto* hdr = (*old)->header();
      if (process_alive(hdr->creator_pid, hdr->creator_start_ticks))
        return make_error(errc::name_taken, "shared " + std::string{kind_name(hdr->kind)} + " '"
                                              + name + "' of group '" + n.group()
                                              + "' exists (made by pid "
                                              + std::to_string(hdr->creator_pid) + ")");
      std::cerr << "[troupe] group '" << n.group() << "': swept shared " << kind_name(hdr->kind)
                << " '" << name << "' left by pid " << hdr->creator_pid << ", which died\n";
      remove_segment(shm_name);
      continue;
    }
    try {
      res->shm.truncate(static_cast<bip::offset_t>(total));
      res->region = bip::mapped_region(res->shm, bip::read_write);
    } catch (const bip::interprocess_exception& e) {
      remove_segment(shm_name);
      return make_error(errc::bad_segment, "cannot size '" + name + "': " + e.what());
    }
    // Stamped first, so that a creator killed before it finished leaves a
    // block the next `create` of the name can tell abandoned.
    res->header()->creator_pid = ::getpid();
    res->header()->creator_start_ticks = process_start_ticks(::getpid());
    if (auto err = reserve_bytes(res->shm.get_mapping_handle().handle, 0, total,
                                 "shared " + std::string{kind_name(static_cast<uint32_t>(kind))}
                                   + " '" + name + "'")) {
      remove_segment(shm_name);
      return err;
    }
    // A fresh tmpfs object reads as zeros; `ready` is 0 until the end.
    auto* hdr = res->header();
    hdr->magic = block_magic;
    hdr->version = block_version;
    hdr->kind = static_cast<uint32_t>(kind);
    hdr->elem_size = type.size;
    hdr->elem_align = type.align;
    hdr->type_tag = type.tag;
    hdr->count = count;
    hdr->data_offset = data_offset;
    hdr->total_bytes = total;
    std::snprintf(hdr->type_name, sizeof(hdr->type_name), "%s", type.name);
    pthread_mutexattr_t attr;
    int rc = ::pthread_mutexattr_init(&attr);
    if (rc == 0) {
      ::pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
      ::pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
      ::pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
      rc = ::pthread_mutex_init(&hdr->mutex, &attr);
      ::pthread_mutexattr_destroy(&attr);
    }
    if (rc != 0) {
      remove_segment(shm_name);
      return make_error(errc::bad_segment, errno_text("pthread_mutex_init", rc));
    }
    init(static_cast<unsigned char*>(res->region.get_address()) + data_offset);
    hdr->ready.store(1, std::memory_order_release);
    res->creator = true;
    shm_block out;
    out.impl_ = std::move(res);
    return out;
  }
  return make_error(errc::bad_segment, "cannot create '" + name + "': it keeps reappearing");
}

caf::expected<shm_block> shm_block::open(const node& n, const std::string& name, shm_kind kind,
                                         const shm_type& type) {
  if (auto err = check_name(name))
    return err;
  auto res = map_existing(n, name);
  if (!res)
    return std::move(res.error());
  auto* hdr = (*res)->header();
  if (hdr->kind != static_cast<uint32_t>(kind))
    return make_error(errc::bad_segment, "'" + name + "' of group '" + n.group() + "' is a shared "
                                           + kind_name(hdr->kind) + ", not a shared "
                                           + kind_name(static_cast<uint32_t>(kind)));
  if (hdr->elem_size != type.size || hdr->elem_align != type.align || hdr->type_tag != type.tag) {
    char stored[type_name_bytes + 1] = {};
    std::memcpy(stored, hdr->type_name, type_name_bytes);
    return make_error(errc::bad_segment, (*res)->what() + " holds " + demangle(stored) + " ("
                                           + std::to_string(hdr->elem_size) + " bytes), not "
                                           + demangle(type.name) + " (" + std::to_string(type.size)
                                           + " bytes)");
  }
  shm_block out;
  out.impl_ = std::move(*res);
  return out;
}

caf::error shm_block::remove(const node& n, const std::string& name) {
  if (auto err = check_name(name))
    return err;
  auto shm_name = "/" + shm_name_for(n, name);
  if (::shm_unlink(shm_name.c_str()) != 0) {
    if (errno == ENOENT)
      return make_error(errc::name_not_found,
                        "no shared value or array '" + name + "' of group '" + n.group() + "'");
    return make_error(errc::bad_segment, errno_text("shm_unlink", errno));
  }
  return caf::none;
}

void* shm_block::data() const noexcept {
  return static_cast<unsigned char*>(impl_->region.get_address()) + impl_->header()->data_offset;
}

uint64_t shm_block::count() const noexcept {
  return impl_->header()->count;
}

bool shm_block::creator() const noexcept {
  return impl_ && impl_->creator;
}

const std::string& shm_block::name() const noexcept {
  return impl_->name;
}

caf::expected<bool> shm_block::lock(caf::timespan timeout) const {
  auto* m = &impl_->header()->mutex;
  int rc;
  if (troupe::detail::is_forever(timeout)) {
    rc = ::pthread_mutex_lock(m);
  } else {
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    auto ns = static_cast<int64_t>(now.tv_nsec) + timeout.count();
    timespec until{now.tv_sec + static_cast<time_t>(ns / 1000000000),
                   static_cast<long>(ns % 1000000000)};
    rc = ::pthread_mutex_timedlock(m, &until);
  }
  switch (rc) {
  case 0:
    return false;
  case EOWNERDEAD:
    // Its holder died: the lock is ours, and the data may be half-updated.
#if defined(__SANITIZE_THREAD__)
    // ThreadSanitizer's interceptor of pthread_mutex_timedlock records the
    // lock only when it returns 0 (the one of pthread_mutex_lock also on
    // EOWNERDEAD): tell it, or our unlock is "of an unlocked mutex".
    if (!troupe::detail::is_forever(timeout)) {
      __tsan_mutex_pre_lock(m, __tsan_mutex_try_lock);
      __tsan_mutex_post_lock(m, __tsan_mutex_try_lock, 0);
    }
#endif
    if (auto err = ::pthread_mutex_consistent(m); err != 0) {
      ::pthread_mutex_unlock(m);
      return make_error(errc::bad_segment, errno_text("pthread_mutex_consistent", err));
    }
    return true;
  case ETIMEDOUT:
    return make_error(troupe::errc::timeout, "the lock of " + impl_->what() + " stayed taken");
  case EDEADLK:
    return make_error(troupe::errc::would_deadlock,
                      "this thread already holds the lock of " + impl_->what());
  default:
    return make_error(errc::bad_segment, errno_text("pthread_mutex_lock", rc));
  }
}

void shm_block::unlock() const noexcept {
  ::pthread_mutex_unlock(&impl_->header()->mutex);
}

caf::error shm_block::remove() {
  if (!impl_ || !impl_->creator)
    return make_error(troupe::errc::invalid_argument,
                      "only the process that made a shared value removes it");
  if (!impl_->removed) {
    impl_->removed = true;
    remove_segment(impl_->shm_name);
  }
  return caf::none;
}

void sweep_dead_blocks(const std::string& group) {
  auto prefix = shm_name_of(group) + ".v.";
  std::error_code ec;
  for (auto& entry : std::filesystem::directory_iterator{"/dev/shm", ec}) {
    auto file = entry.path().filename().string();
    // One still in use (its creator lives) is kept: remove_dead_block says so.
    if (file.rfind(prefix, 0) == 0)
      static_cast<void>(troupe::ipc::remove_dead_block(file));
  }
}

caf::error out_of_range(const std::string& name, uint64_t index, uint64_t size) {
  return make_error(troupe::errc::invalid_argument, "index " + std::to_string(index)
                                                      + " is out of range for shared array '" + name
                                                      + "' of size " + std::to_string(size));
}

} // namespace troupe::ipc::detail
