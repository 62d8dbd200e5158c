#include "block_layout.hpp"
#include "segment.hpp"
#include "support.hpp"
#include "troupe/ipc/shared_memory.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cstdint>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

using troupe::errc;
using troupe::ipc::node;
using troupe::ipc::shared_array;
using troupe::ipc::shared_value;
using namespace troupe::test::ipc;

namespace {

/// A type without the fast path.
struct vec3 {
  double x;
  double y;
  double z;
};

std::string value_path(const std::string& group, const std::string& name) {
  return shm_path(group) + ".v." + name;
}

/// Removes every shared value and array of the group when the test ends,
/// however it ends (the fixture's guard only knows the group's segment).
struct values_guard {
  std::string group;
  ~values_guard() {
    auto prefix = "troupe." + group + ".v.";
    if (auto* dir = ::opendir("/dev/shm")) {
      while (auto* entry = ::readdir(dir)) {
        std::string name = entry->d_name;
        if (name.compare(0, prefix.size(), prefix) == 0)
          std::remove(("/dev/shm/" + name).c_str());
      }
      ::closedir(dir);
    }
  }
};

/// A group of one node, and a guard for its values.
struct shm_fixture : ipc_fixture {
  values_guard values{group};
  node n;

  explicit shm_fixture(const char* tag) : ipc_fixture(tag), n(make_node()) {}

  node make_node() {
    auto res = node::create(sys, group);
    REQUIRE_MESSAGE(res, troupe::describe(res.error()));
    return std::move(*res);
  }

  /// Starts a child of the group with `args`.
  troupe::ipc::child_process child(const std::vector<std::string>& args) {
    auto res = n.spawn(TROUPE_IPC_CHILD, args);
    REQUIRE_MESSAGE(res, troupe::describe(res.error()));
    return std::move(*res);
  }
};

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

/// Leaves `path` as a creator killed half-way through `create` leaves it:
/// `size` bytes, and if it had got that far, a header stamped with
/// `creator_pid` (started at `creator_start_ticks`) and never made ready.
void leave_unfinished(const std::string& path, size_t size, int32_t creator_pid,
                      uint64_t creator_start_ticks = 0) {
  int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
  REQUIRE(fd >= 0);
  REQUIRE(::ftruncate(fd, static_cast<off_t>(size)) == 0);
  if (creator_pid != 0) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    REQUIRE(p != MAP_FAILED);
    auto* hdr = static_cast<troupe::ipc::detail::block_header*>(p);
    hdr->creator_pid = creator_pid;
    hdr->creator_start_ticks = creator_start_ticks;
    ::munmap(p, size);
  }
  ::close(fd);
}

} // namespace

TEST_SUITE("ipc.shared_memory") {

  TEST_CASE("a shared value is read, written, added to and compared-and-set") {
    shm_fixture f{"sv-ops"};
    auto sut = shared_value<int64_t>::create(f.n, "counter", 42);
    REQUIRE_MESSAGE(sut, troupe::describe(sut.error()));
    static_assert(shared_value<int64_t>::fast_path);
    CHECK(sut->get() == int64_t{42});
    REQUIRE_FALSE(sut->set(7));
    CHECK(sut->get() == int64_t{7});
    CHECK(sut->add(5) == 12);
    CHECK(sut->fetch_add(1) == 12);
    int64_t expected = 0;
    CHECK_FALSE(sut->compare_and_set(expected, 100));
    CHECK(expected == 13);
    CHECK(sut->compare_and_set(expected, 100));
    CHECK(sut->get() == int64_t{100});
  }

  TEST_CASE("a value created once is seen under its name by other handles") {
    shm_fixture f{"sv-open"};
    auto sut = shared_value<int32_t>::create(f.n, "x", 1);
    REQUIRE(sut);
    CHECK(exists(value_path(f.group, "x")));
    auto other = shared_value<int32_t>::open(f.n, "x");
    REQUIRE_MESSAGE(other, troupe::describe(other.error()));
    CHECK(other->add(2) == 3);
    CHECK(sut->get() == 3);
    CHECK(sut->creator());
    CHECK_FALSE(other->creator());
  }

  TEST_CASE("a value left unfinished by a creator that died is swept by the next create of it") {
    shm_fixture f{"sv-unfinished"};
    // A creator that stamped the header and died: swept at once.
    auto gone = troupe::ipc::spawn_process("/bin/true", {});
    REQUIRE_MESSAGE(gone, troupe::describe(gone.error()));
    REQUIRE(gone->wait(deadline));
    leave_unfinished(value_path(f.group, "stamped"), 4096, gone->pid(), 1);
    auto stamped = shared_value<int64_t>::create(f.n, "stamped", 7);
    REQUIRE_MESSAGE(stamped, troupe::describe(stamped.error()));
    CHECK(stamped->get() == int64_t{7});
    // One that died before it sized the object: swept once it has not
    // changed for the grace period (10 s; its times are set back here).
    leave_unfinished(value_path(f.group, "empty"), 0, 0);
    timespec long_ago[2];
    REQUIRE(::clock_gettime(CLOCK_REALTIME, &long_ago[0]) == 0);
    long_ago[0].tv_sec -= 60;
    long_ago[1] = long_ago[0];
    REQUIRE(::utimensat(AT_FDCWD, value_path(f.group, "empty").c_str(), long_ago, 0) == 0);
    auto empty = shared_value<int64_t>::create(f.n, "empty", 8);
    REQUIRE_MESSAGE(empty, troupe::describe(empty.error()));
    CHECK(empty->get() == int64_t{8});
  }

  TEST_CASE("a value being created by a live process is not swept") {
    shm_fixture f{"sv-unfinished-live"};
    // This process stands for a creator still at work: the name stays its.
    leave_unfinished(value_path(f.group, "busy"), 4096, ::getpid(),
                     troupe::ipc::detail::process_start_ticks(::getpid()));
    auto sut = shared_value<int64_t>::create(f.n, "busy", 1);
    REQUIRE_FALSE(sut);
    CHECK(troupe::is(sut.error(), troupe::ipc::errc::bad_segment));
    CHECK(exists(value_path(f.group, "busy")));
  }

  TEST_CASE("the object is made with mode 0600") {
    shm_fixture f{"sv-mode"};
    auto sut = shared_value<int32_t>::create(f.n, "x");
    REQUIRE(sut);
    struct stat st {};
    REQUIRE(::stat(value_path(f.group, "x").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
    CHECK(st.st_uid == ::geteuid());
  }

  TEST_CASE("a type without the fast path is read and written under the lock") {
    shm_fixture f{"sv-struct"};
    static_assert(!shared_value<vec3>::fast_path);
    auto sut = shared_value<vec3>::create(f.n, "v", vec3{1, 2, 3});
    REQUIRE(sut);
    auto died = sut->with_lock([](vec3& v) { v.x += 10; });
    REQUIRE(died);
    CHECK_FALSE(*died);
    REQUIRE_FALSE(sut->set(vec3{11, 5, 6}));
    auto v = sut->get();
    REQUIRE(v);
    CHECK(v->x == 11);
    CHECK(v->y == 5);
    CHECK(v->z == 6);
  }

  TEST_CASE("reading a locked value from inside with_lock on the same thread fails, not hangs") {
    shm_fixture f{"sv-reenter"};
    auto sut = shared_value<double>::create(f.n, "d", 1.5);
    REQUIRE(sut);
    caf::error inner;
    REQUIRE(sut->with_lock([&](double&) { inner = sut->get().error(); }));
    CHECK(troupe::is(inner, errc::would_deadlock));
  }

  TEST_CASE("with_lock on a fast-path value keeps a lock-free add made while it ran") {
    shm_fixture f{"sv-merge"};
    auto sut = shared_value<int64_t>::create(f.n, "c", 100);
    REQUIRE(sut);
    auto other = shared_value<int64_t>::open(f.n, "c");
    REQUIRE(other);
    int runs = 0;
    auto died = sut->with_lock([&](int64_t& x) {
      if (runs++ == 0)
        other->add(1); // a lock-free writer races with the body
      x *= 2;
    });
    REQUIRE(died);
    CHECK(runs == 2);
    CHECK(sut->get() == int64_t{202});
  }

  TEST_CASE("a shared array reads, writes and adds per element and checks the index") {
    shm_fixture f{"sa-ops"};
    auto sut = shared_array<int64_t>::create(f.n, "arr", 4, 1);
    REQUIRE_MESSAGE(sut, troupe::describe(sut.error()));
    CHECK(sut->size() == 4u);
    CHECK(sut->get(3) == int64_t{1});
    REQUIRE_FALSE(sut->set(2, 9));
    CHECK(sut->add(2, 1) == int64_t{10});
    CHECK(sut->fetch_add(0, 5) == int64_t{1});
    int64_t expected = 6;
    CHECK(sut->compare_and_set(0, expected, 60) == true);
    CHECK(troupe::is(sut->get(4).error(), errc::invalid_argument));
    CHECK(troupe::is(sut->set(4, 0), errc::invalid_argument));
    CHECK(troupe::is(sut->add(99, 1).error(), errc::invalid_argument));
    int64_t sum = 0;
    auto died = sut->with_lock([&](caf::span<int64_t> xs) {
      sum = std::accumulate(xs.begin(), xs.end(), int64_t{0});
      xs[1] = -1;
    });
    REQUIRE(died);
    CHECK_FALSE(*died);
    CHECK(sum == 60 + 1 + 10 + 1);
    CHECK(sut->get(1) == int64_t{-1});
  }

  TEST_CASE("an array of a type without the fast path is changed in place under the lock") {
    shm_fixture f{"sa-struct"};
    auto sut = shared_array<vec3>::create(f.n, "pts", std::vector<vec3>{{1, 0, 0}, {2, 0, 0}});
    REQUIRE(sut);
    REQUIRE(sut->with_lock([](caf::span<vec3> xs) {
      for (auto& x : xs)
        x.y = x.x * 10;
    }));
    CHECK(sut->get(1)->y == 20);
    CHECK(troupe::is(sut->get(2).error(), errc::invalid_argument));
    auto opened = shared_array<vec3>::open(f.n, "pts");
    REQUIRE(opened);
    CHECK(opened->size() == 2u);
    CHECK(
      troupe::is(shared_array<int32_t>::create(f.n, "empty", 0).error(), errc::invalid_argument));
  }

  TEST_CASE("four processes adding concurrently reach the exact total") {
    shm_fixture f{"sv-four"};
    constexpr int64_t per_child = 2000;
    auto value = shared_value<int64_t>::create(f.n, "sum", 0);
    REQUIRE(value);
    auto array = shared_array<int64_t>::create(f.n, "sum-a", 2);
    REQUIRE(array);
    auto locked = shared_value<double>::create(f.n, "sum-l", 0);
    REQUIRE(locked);
    std::vector<troupe::ipc::child_process> children;
    for (int i = 0; i < 4; ++i)
      children.push_back(f.child({"shm-add", "sum", std::to_string(per_child)}));
    for (auto& child : children) {
      auto status = child.wait(deadline);
      REQUIRE_MESSAGE(status, troupe::describe(status.error()));
      CHECK(status->success());
    }
    CHECK(value->get() == 4 * per_child);
    CHECK(array->get(0) == 4 * per_child);
    CHECK(array->get(1) == int64_t{0});
    CHECK(locked->get() == static_cast<double>(4 * per_child));
  }

  TEST_CASE("a lock holder killed with SIGKILL hands the lock on and the next locker is told") {
    shm_fixture f{"sv-kill"};
    auto sut = shared_value<double>::create(f.n, "held", 0);
    REQUIRE(sut);
    auto holder = f.child({"shm-hold", "held"});
    // The holder stops itself once it holds the lock.
    REQUIRE(eventually([&] { return process_state(holder.pid()) == 'T'; }));
    auto blocked = sut->with_lock([](double&) {}, std::chrono::milliseconds(20));
    REQUIRE_FALSE(blocked);
    CHECK(troupe::is(blocked.error(), errc::timeout));
    // Kill it while it holds the lock.
    REQUIRE_FALSE(holder.kill(SIGKILL));
    auto status = holder.wait(deadline);
    REQUIRE(status);
    CHECK(status->signal == SIGKILL);
    double seen = 0;
    auto died = sut->with_lock([&](double& x) { seen = x; }, deadline);
    REQUIRE_MESSAGE(died, troupe::describe(died.error()));
    CHECK(*died);
    CHECK(seen == -1); // what the holder wrote before it died
    // The lock is consistent again: the next locker is not told anything.
    auto again = sut->with_lock([](double& x) { x = 0; }, deadline);
    REQUIRE(again);
    CHECK_FALSE(*again);
    CHECK(sut->get() == 0.0);
  }

  TEST_CASE("opening a value with another type is an error") {
    shm_fixture f{"sv-type"};
    auto sut = shared_value<int64_t>::create(f.n, "n", 1);
    REQUIRE(sut);
    auto narrow = shared_value<int32_t>::open(f.n, "n");
    REQUIRE_FALSE(narrow);
    CHECK(troupe::is(narrow.error(), troupe::ipc::errc::bad_segment));
    CHECK(troupe::describe(narrow.error()).find("8 bytes") != std::string::npos);
    auto unsig = shared_value<uint64_t>::open(f.n, "n");
    REQUIRE_FALSE(unsig);
    CHECK(troupe::is(unsig.error(), troupe::ipc::errc::bad_segment));
    auto as_array = shared_array<int64_t>::open(f.n, "n");
    REQUIRE_FALSE(as_array);
    CHECK(troupe::is(as_array.error(), troupe::ipc::errc::bad_segment));
    CHECK(troupe::describe(as_array.error()).find("not a shared array") != std::string::npos);
  }

  TEST_CASE("a value that others can read is not trusted") {
    shm_fixture f{"sv-loose"};
    auto sut = shared_value<int64_t>::create(f.n, "n", 1);
    REQUIRE(sut);
    REQUIRE(::chmod(value_path(f.group, "n").c_str(), 0644) == 0);
    auto opened = shared_value<int64_t>::open(f.n, "n");
    REQUIRE_FALSE(opened);
    CHECK(troupe::is(opened.error(), troupe::ipc::errc::bad_segment));
    CHECK(troupe::describe(opened.error()).find("mode 0644") != std::string::npos);
  }

  TEST_CASE("a missing name, a bad name and a taken name are errors") {
    shm_fixture f{"sv-names"};
    CHECK(troupe::is(shared_value<int64_t>::open(f.n, "nothing").error(),
                     troupe::ipc::errc::name_not_found));
    CHECK(troupe::is(shared_value<int64_t>::create(f.n, "a/b").error(), errc::invalid_argument));
    CHECK(troupe::is(shared_value<int64_t>::create(f.n, "").error(), errc::invalid_argument));
    CHECK(troupe::is(shared_value<int64_t>::create(f.n, std::string(65, 'x')).error(),
                     errc::invalid_argument));
    auto sut = shared_value<int64_t>::create(f.n, "once");
    REQUIRE(sut);
    CHECK(troupe::is(shared_value<int64_t>::create(f.n, "once").error(),
                     troupe::ipc::errc::name_taken));
    CHECK(troupe::is(shared_array<int64_t>::create(f.n, "once", 3).error(),
                     troupe::ipc::errc::name_taken));
  }

  TEST_CASE("the creator removes the name and those who opened it keep their memory") {
    shm_fixture f{"sv-remove"};
    std::optional<shared_value<int64_t>> opened;
    {
      auto sut = shared_value<int64_t>::create(f.n, "gone", 3);
      REQUIRE(sut);
      auto res = shared_value<int64_t>::open(f.n, "gone");
      REQUIRE(res);
      opened = std::move(*res);
      CHECK(troupe::is(opened->remove(), errc::invalid_argument));
    }
    CHECK_FALSE(exists(value_path(f.group, "gone")));
    CHECK(troupe::is(shared_value<int64_t>::open(f.n, "gone").error(),
                     troupe::ipc::errc::name_not_found));
    CHECK(opened->add(1) == 4);
    auto again = shared_value<int64_t>::create(f.n, "gone", 0);
    REQUIRE(again);
    REQUIRE_FALSE(again->remove());
    REQUIRE_FALSE(again->remove()); // idempotent
    CHECK_FALSE(exists(value_path(f.group, "gone")));
  }

  TEST_CASE("a value left by a creator that was killed is swept by the next create") {
    shm_fixture f{"sv-sweep"};
    auto creator = f.child({"shm-create", "left"});
    REQUIRE(eventually([&] { return process_state(creator.pid()) == 'T'; }));
    // While its creator lives, the name is taken and can be opened.
    CHECK(troupe::is(shared_value<int64_t>::create(f.n, "left").error(),
                     troupe::ipc::errc::name_taken));
    auto old = shared_value<int64_t>::open(f.n, "left");
    REQUIRE(old);
    CHECK(old->get() == int64_t{5});
    REQUIRE_FALSE(creator.kill(SIGKILL));
    REQUIRE(creator.wait(deadline));
    // Its name is left over ...
    CHECK(exists(value_path(f.group, "left")));
    // ... until a create sweeps it, or remove(node, name).
    auto sut = shared_value<int64_t>::create(f.n, "left", 7);
    REQUIRE_MESSAGE(sut, troupe::describe(sut.error()));
    CHECK(sut->get() == int64_t{7});
    CHECK(old->get() == int64_t{5}); // the old memory, now unnamed
    REQUIRE_FALSE(shared_value<int64_t>::remove(f.n, "left"));
    CHECK(
      troupe::is(shared_value<int64_t>::remove(f.n, "left"), troupe::ipc::errc::name_not_found));
  }

  TEST_CASE("the group's last node out sweeps values left by a creator that was killed") {
    shm_fixture f{"sv-lastout"};
    auto creator = f.child({"shm-create", "left"});
    REQUIRE(eventually([&] { return process_state(creator.pid()) == 'T'; }));
    auto mine = shared_value<int64_t>::create(f.n, "mine", 1);
    REQUIRE(mine);
    REQUIRE_FALSE(creator.kill(SIGKILL));
    REQUIRE(creator.wait(deadline));
    CHECK(exists(value_path(f.group, "left")));
    f.n.leave();
    CHECK_FALSE(exists(value_path(f.group, "left")));
    // A value whose creator lives on stays until that creator lets it go.
    CHECK(exists(value_path(f.group, "mine")));
    mine = caf::error{};
    CHECK_FALSE(exists(value_path(f.group, "mine")));
  }

} // TEST_SUITE
