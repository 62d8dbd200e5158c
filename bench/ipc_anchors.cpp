#include "ipc_anchors.hpp"

#include "report.hpp"

#include <boost/date_time/posix_time/posix_time_types.hpp>
#include <boost/interprocess/creation_tags.hpp>
#include <boost/interprocess/ipc/message_queue.hpp>
#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace troupe_bench {

namespace {

namespace bip = boost::interprocess;
using clock_type = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr const char* self_exe = "/proc/self/exe";
constexpr std::size_t payload_size = 64;

double median(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  auto n = xs.size();
  return n % 2 == 1 ? xs[n / 2] : (xs[n / 2 - 1] + xs[n / 2]) / 2;
}

double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

double us_since(clock_type::time_point start) {
  return seconds_since(start) * 1e6;
}

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what);
}

[[noreturn]] void fail_errno(const std::string& what) {
  fail(what + ": " + std::strerror(errno));
}

/// A name unique to this process and call, without a leading slash.
std::string unique_name(const char* what) {
  static std::atomic<unsigned> next{0};
  return "troupe-anchor-" + std::to_string(getpid()) + "-" + std::to_string(next++) + "-" + what;
}

// -- second processes --------------------------------------------------------

/// A file descriptor, closed on destruction.
class unique_fd {
public:
  unique_fd() = default;
  explicit unique_fd(int fd) : fd_(fd) {}
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() {
    reset();
  }
  int get() const {
    return fd_;
  }
  void reset(int fd = -1) {
    if (fd_ >= 0)
      close(fd_);
    fd_ = fd;
  }

private:
  int fd_ = -1;
};

/// A process started with posix_spawn. Unless it has been waited for, the
/// destructor kills it (its whole process group if it got its own) and reaps
/// it, so that no error path leaves a child running.
class child_process {
public:
  struct setup {
    bool pipe_stdin = false;  ///< a pipe to its stdin; close_stdin() sends EOF
    bool pipe_stdout = false; ///< a pipe from its stdout, for read_line()
    bool own_group = false;   ///< its own process group, killed as a whole
  };

  child_process(const std::string& path, const std::vector<std::string>& args, setup how)
    : own_group_(how.own_group) {
    int in[2] = {-1, -1};
    int out[2] = {-1, -1};
    if (how.pipe_stdin && pipe2(in, O_CLOEXEC) != 0)
      fail_errno("pipe2");
    unique_fd in_read{in[0]};
    in_.reset(in[1]);
    if (how.pipe_stdout && pipe2(out, O_CLOEXEC) != 0)
      fail_errno("pipe2");
    out_.reset(out[0]);
    unique_fd out_write{out[1]};
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (how.pipe_stdin)
      posix_spawn_file_actions_adddup2(&actions, in_read.get(), 0);
    if (how.pipe_stdout)
      posix_spawn_file_actions_adddup2(&actions, out_write.get(), 1);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    if (how.own_group) {
      posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
      posix_spawnattr_setpgroup(&attr, 0);
    }
    std::vector<char*> argv;
    argv.reserve(args.size() + 1);
    for (const auto& arg : args)
      argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    auto rc = posix_spawn(&pid_, path.c_str(), &actions, &attr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0)
      fail("posix_spawn " + path + ": " + std::strerror(rc));
  }

  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  ~child_process() {
    if (!reaped_) {
      kill(own_group_ ? -pid_ : pid_, SIGKILL);
      int status = 0;
      while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
    }
  }

  /// False once it has exited (and then it has been reaped).
  bool running() {
    if (reaped_)
      return false;
    int status = 0;
    auto r = waitpid(pid_, &status, WNOHANG);
    if (r == 0 || (r < 0 && errno == EINTR))
      return true;
    reaped_ = true;
    status_ = r == pid_ ? status : -1;
    return false;
  }

  void close_stdin() {
    in_.reset();
  }

  /// The next line of its output, without the newline.
  std::string read_line(milliseconds timeout) {
    auto deadline = clock_type::now() + timeout;
    for (;;) {
      auto nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        auto line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      auto left = std::chrono::duration_cast<milliseconds>(deadline - clock_type::now());
      if (left.count() <= 0)
        fail("no output from the child process in time");
      pollfd p{out_.get(), POLLIN, 0};
      auto ready = poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
      if (ready < 0 && errno != EINTR)
        fail_errno("poll");
      if (ready <= 0)
        continue;
      char chunk[256];
      auto n = read(out_.get(), chunk, sizeof(chunk));
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        fail_errno("read");
      if (n == 0)
        fail("the child process closed its output early" + exit_text());
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }

  /// Waits for it to exit on its own; throws unless it exits with status 0.
  void finish(milliseconds timeout) {
    auto deadline = clock_type::now() + timeout;
    while (running()) {
      if (clock_type::now() > deadline)
        fail("the child process did not exit in time");
      std::this_thread::sleep_for(milliseconds{1});
    }
    if (!WIFEXITED(status_) || WEXITSTATUS(status_) != 0) {
      if (own_group_)
        kill(-pid_, SIGKILL); // whatever it started and left behind
      fail("the child process failed" + exit_text());
    }
  }

private:
  std::string exit_text() {
    if (running())
      return {};
    if (WIFEXITED(status_))
      return " (exit status " + std::to_string(WEXITSTATUS(status_)) + ")";
    if (WIFSIGNALED(status_))
      return " (signal " + std::to_string(WTERMSIG(status_)) + ")";
    return {};
  }

  pid_t pid_ = -1;
  bool own_group_ = false;
  bool reaped_ = false;
  int status_ = 0;
  unique_fd in_;
  unique_fd out_;
  std::string buffer_;
};

/// Arguments that run this program as `anchor-child KIND NAME PARENT_PID`.
std::vector<std::string> child_args(const char* kind, const std::string& name) {
  return {"troupe-bench", "anchor-child", kind, name, std::to_string(getpid())};
}

// -- futex -----------------------------------------------------------------

/// A POSIX shared memory segment, mapped. The creator unlinks the name on
/// destruction at the latest.
class shm_segment {
public:
  shm_segment(const std::string& name, std::size_t size, bool create)
    : name_("/" + name), size_(size), owner_(create) {
    unique_fd fd{create ? shm_open(name_.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600)
                        : shm_open(name_.c_str(), O_RDWR, 0)};
    if (fd.get() < 0)
      fail_errno("shm_open " + name_);
    if (create && ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
      unlink();
      fail_errno("ftruncate " + name_);
    }
    data_ = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (data_ == MAP_FAILED) {
      unlink();
      fail_errno("mmap " + name_);
    }
  }
  shm_segment(const shm_segment&) = delete;
  shm_segment& operator=(const shm_segment&) = delete;
  ~shm_segment() {
    munmap(data_, size_);
    unlink();
  }
  void* data() const {
    return data_;
  }
  /// Removes the name; the mappings stay valid.
  void unlink() {
    if (owner_) {
      shm_unlink(name_.c_str());
      owner_ = false;
    }
  }

private:
  std::string name_;
  std::size_t size_;
  bool owner_;
  void* data_ = nullptr;
};

using futex_word = std::atomic<uint32_t>;
static_assert(sizeof(futex_word) == sizeof(uint32_t) && futex_word::is_always_lock_free);

// The word's states: the child sets `pong` when ready and after each `ping`.
constexpr uint32_t f_ping = 1;
constexpr uint32_t f_pong = 2;
constexpr uint32_t f_stop = 3;

long futex_call(futex_word& w, int op, uint32_t val, const timespec* timeout) {
  // Not FUTEX_PRIVATE_FLAG: the word is shared between processes.
  return syscall(SYS_futex, reinterpret_cast<uint32_t*>(&w), op, val, timeout, nullptr, 0);
}

void futex_store_wake(futex_word& w, uint32_t value) {
  w.store(value, std::memory_order_release);
  futex_call(w, FUTEX_WAKE, 1, nullptr);
}

/// Sleeps in the kernel while `w` holds `value`; returns the new value. Every
/// 200 ms without a change it checks that the other process is still there.
template <class PeerAlive>
uint32_t futex_wait_while(futex_word& w, uint32_t value, PeerAlive&& peer_alive) {
  for (;;) {
    auto now = w.load(std::memory_order_acquire);
    if (now != value)
      return now;
    timespec timeout{0, 200'000'000};
    if (futex_call(w, FUTEX_WAIT, value, &timeout) != 0 && errno == ETIMEDOUT && !peer_alive())
      fail("the other process is gone");
  }
}

int futex_child(const std::string& name, pid_t parent) {
  shm_segment shm{name, sizeof(futex_word), false};
  auto& word = *static_cast<futex_word*>(shm.data());
  auto parent_alive = [parent] { return getppid() == parent; };
  futex_store_wake(word, f_pong);
  while (futex_wait_while(word, f_pong, parent_alive) != f_stop)
    futex_store_wake(word, f_pong);
  return 0;
}

// -- one cache line between two cores ---------------------------------------

using hop_word = std::atomic<uint64_t>;
static_assert(hop_word::is_always_lock_free);
/// The child stops when the word holds this.
constexpr uint64_t hop_stop = ~uint64_t{0};

/// Spins until `w` holds something other than `value` and returns it; every
/// 2^20 looks it checks that the other process is still there.
template <class PeerAlive>
uint64_t spin_while(const hop_word& w, uint64_t value, PeerAlive&& peer_alive) {
  for (uint64_t looks = 1;; ++looks) {
    auto now = w.load(std::memory_order_acquire);
    if (now != value)
      return now;
    if (looks % (uint64_t{1} << 20) == 0 && !peer_alive())
      fail("the other process is gone");
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
}

/// Answers each odd value of the word with the next (even) one.
int cacheline_child(const std::string& name, pid_t parent) {
  shm_segment shm{name, sizeof(hop_word), false};
  auto& word = *static_cast<hop_word*>(shm.data());
  auto parent_alive = [parent] { return getppid() == parent; };
  uint64_t seen = 0;
  for (;;) {
    seen = spin_while(word, seen, parent_alive);
    if (seen == hop_stop)
      return 0;
    if (seen % 2 == 1)
      word.store(++seen, std::memory_order_release);
  }
}

// -- Boost.Interprocess message_queue --------------------------------------

/// Removes a message queue's name on destruction at the latest.
class mq_name {
public:
  explicit mq_name(std::string name) : name_(std::move(name)) {}
  mq_name(const mq_name&) = delete;
  mq_name& operator=(const mq_name&) = delete;
  ~mq_name() {
    remove();
  }
  const char* c_str() const {
    return name_.c_str();
  }
  void remove() {
    if (!removed_)
      bip::message_queue::remove(name_.c_str());
    removed_ = true;
  }

private:
  std::string name_;
  bool removed_ = false;
};

// Data messages are 64 bytes; control messages are one uint64_t.
constexpr uint64_t mq_ready = 1;  // child -> parent: both queues are open
constexpr uint64_t mq_report = 2; // parent -> sink: reply with the count so far
constexpr uint64_t mq_stop = 3;   // parent -> child: exit

/// Timed message_queue calls that notice when the other process is gone. The
/// deadline is read from the clock only after a call timed out, so a call that
/// need not wait costs what an untimed one does; a stale deadline only makes a
/// waiting call return early once, and then it waits 200 ms at most.
template <class PeerAlive>
class mq_caller {
public:
  explicit mq_caller(PeerAlive peer_alive)
    : peer_alive_(std::move(peer_alive)), deadline_(in_200ms()) {}

  void send(bip::message_queue& q, const void* data, std::size_t size) {
    while (!q.timed_send(data, size, 0, deadline_))
      timed_out();
  }

  /// Receives into `buf` (at least the queue's message size); returns the size.
  std::size_t receive(bip::message_queue& q, void* buf, std::size_t capacity) {
    bip::message_queue::size_type size = 0;
    unsigned priority = 0;
    while (!q.timed_receive(buf, capacity, size, priority, deadline_))
      timed_out();
    return size;
  }

private:
  static boost::posix_time::ptime in_200ms() {
    return boost::posix_time::microsec_clock::universal_time()
           + boost::posix_time::milliseconds(200);
  }

  void timed_out() {
    if (!peer_alive_())
      fail("the other process is gone");
    deadline_ = in_200ms();
  }

  PeerAlive peer_alive_;
  boost::posix_time::ptime deadline_;
};

/// The parent's side: a request queue and a reply queue, and a child of kind
/// `mq-echo` or `mq-sink` that has opened both (their names are gone by then).
class mq_session {
public:
  explicit mq_session(const char* kind)
    : base_(unique_name("mq")), req_name_(base_ + "-req"), rep_name_(base_ + "-rep"),
      req_(bip::create_only, req_name_.c_str(), 256, payload_size),
      rep_(bip::create_only, rep_name_.c_str(), 16, payload_size),
      child_(self_exe, child_args(kind, base_), {}) {
    char buf[payload_size];
    auto size = receive(buf);
    uint64_t code = 0;
    if (size == sizeof(code))
      std::memcpy(&code, buf, sizeof(code));
    if (code != mq_ready)
      fail("unexpected first message from the message_queue child");
    req_name_.remove();
    rep_name_.remove();
  }

  void send(const void* data, std::size_t size) {
    caller_.send(req_, data, size);
  }

  void send_code(uint64_t code) {
    send(&code, sizeof(code));
  }

  std::size_t receive(char (&buf)[payload_size]) {
    return caller_.receive(rep_, buf, sizeof(buf));
  }

  void stop() {
    send_code(mq_stop);
    child_.finish(milliseconds{10'000});
  }

private:
  std::string base_;
  mq_name req_name_;
  mq_name rep_name_;
  bip::message_queue req_;
  bip::message_queue rep_;
  child_process child_;
  mq_caller<std::function<bool()>> caller_{[this] { return child_.running(); }};
};

int mq_child(bool echo, const std::string& base, pid_t parent) {
  bip::message_queue req{bip::open_only, (base + "-req").c_str()};
  bip::message_queue rep{bip::open_only, (base + "-rep").c_str()};
  auto parent_alive = [parent] { return getppid() == parent; };
  mq_caller<decltype(parent_alive)> caller{parent_alive};
  caller.send(rep, &mq_ready, sizeof(mq_ready));
  char buf[payload_size];
  uint64_t count = 0;
  for (;;) {
    auto size = caller.receive(req, buf, sizeof(buf));
    if (size == payload_size) {
      if (echo)
        caller.send(rep, buf, size);
      else
        ++count;
      continue;
    }
    uint64_t code = 0;
    if (size != sizeof(code))
      fail("unexpected message size " + std::to_string(size));
    std::memcpy(&code, buf, sizeof(code));
    if (code == mq_stop)
      return 0;
    if (code != mq_report)
      fail("unexpected control message " + std::to_string(code));
    caller.send(rep, &count, sizeof(count));
    count = 0;
  }
}

// -- ZeroMQ ----------------------------------------------------------------

[[noreturn]] void fail_zmq(const std::string& what) {
  fail(what + ": " + zmq_strerror(zmq_errno()));
}

/// A ZeroMQ context, terminated on destruction (its sockets must be closed
/// by then: declare it before them).
class zmq_context {
public:
  zmq_context() : ctx_(zmq_ctx_new()) {
    if (ctx_ == nullptr)
      fail_zmq("zmq_ctx_new");
  }
  zmq_context(const zmq_context&) = delete;
  zmq_context& operator=(const zmq_context&) = delete;
  ~zmq_context() {
    while (zmq_ctx_term(ctx_) != 0 && zmq_errno() == EINTR) {
    }
  }
  void* get() const {
    return ctx_;
  }

private:
  void* ctx_;
};

/// A ZeroMQ socket that drops unsent messages when closed (linger 0). Its
/// send and receive calls wait at most 200 ms at a time, then check that the
/// other process is still there (like mq_caller; libzmq reads the clock only
/// when a call has to wait).
class zmq_sock {
public:
  zmq_sock(zmq_context& ctx, int type, std::function<bool()> peer_alive)
    : sock_(zmq_socket(ctx.get(), type)), peer_alive_(std::move(peer_alive)) {
    if (sock_ == nullptr)
      fail_zmq("zmq_socket");
    int linger = 0;
    int timeout_ms = 200;
    if (zmq_setsockopt(sock_, ZMQ_LINGER, &linger, sizeof(linger)) != 0
        || zmq_setsockopt(sock_, ZMQ_SNDTIMEO, &timeout_ms, sizeof(timeout_ms)) != 0
        || zmq_setsockopt(sock_, ZMQ_RCVTIMEO, &timeout_ms, sizeof(timeout_ms)) != 0) {
      auto err = zmq_errno();
      zmq_close(sock_);
      fail(std::string{"zmq_setsockopt: "} + zmq_strerror(err));
    }
  }
  zmq_sock(const zmq_sock&) = delete;
  zmq_sock& operator=(const zmq_sock&) = delete;
  ~zmq_sock() {
    zmq_close(sock_);
  }

  void bind(const std::string& endpoint) {
    if (zmq_bind(sock_, endpoint.c_str()) != 0)
      fail_zmq("zmq_bind " + endpoint);
  }

  void connect(const std::string& endpoint) {
    if (zmq_connect(sock_, endpoint.c_str()) != 0)
      fail_zmq("zmq_connect " + endpoint);
  }

  void send(const void* data, std::size_t size) {
    while (zmq_send(sock_, data, size, 0) < 0)
      timed_out("zmq_send");
  }

  void send_code(uint64_t code) {
    send(&code, sizeof(code));
  }

  /// Receives into `buf` (at least the message's size); returns the size.
  std::size_t receive(void* buf, std::size_t capacity) {
    for (;;) {
      auto n = zmq_recv(sock_, buf, capacity, 0);
      if (n >= 0) {
        if (static_cast<std::size_t>(n) > capacity)
          fail("a ZeroMQ message of " + std::to_string(n) + " bytes was truncated");
        return static_cast<std::size_t>(n);
      }
      timed_out("zmq_recv");
    }
  }

private:
  void timed_out(const char* call) {
    auto err = zmq_errno();
    if (err == EINTR)
      return;
    if (err != EAGAIN)
      fail_zmq(call);
    if (!peer_alive_())
      fail("the other process is gone");
  }

  void* sock_;
  std::function<bool()> peer_alive_;
};

/// A Unix socket file under /tmp that ZeroMQ binds to; removed on
/// destruction at the latest, whatever libzmq leaves behind.
class zmq_socket_file {
public:
  explicit zmq_socket_file(const std::string& path) : path_(path) {}
  zmq_socket_file(const zmq_socket_file&) = delete;
  zmq_socket_file& operator=(const zmq_socket_file&) = delete;
  ~zmq_socket_file() {
    remove();
  }
  std::string endpoint() const {
    return "ipc://" + path_;
  }
  /// Removes the file; connected sockets stay connected.
  void remove() {
    if (!removed_)
      ::unlink(path_.c_str());
    removed_ = true;
  }

private:
  std::string path_;
  bool removed_ = false;
};

/// The socket files of the ZeroMQ anchor named `base`.
std::string zmq_path(const std::string& base, const char* which) {
  return "/tmp/" + base + "-" + which;
}

// Data messages are 64 bytes; control messages are one uint64_t (mq_report,
// mq_stop, as for the message_queue anchor).

/// The parent's side of the ZeroMQ one-way figure: a PUSH socket for the data
/// and a PULL socket for the answers, bound here, and a child of kind
/// `zmq-sink` that has connected to both (their files are gone by then).
class zmq_sink_session {
public:
  zmq_sink_session()
    : base_(unique_name("zmq")), data_file_(zmq_path(base_, "data")),
      ctl_file_(zmq_path(base_, "ctl")), data_(ctx_, ZMQ_PUSH, child_alive()),
      ctl_(ctx_, ZMQ_PULL, child_alive()) {
    data_.bind(data_file_.endpoint());
    ctl_.bind(ctl_file_.endpoint());
    child_.emplace(self_exe, child_args("zmq-sink", base_), child_process::setup{});
    // A bound PUSH socket's send waits for a peer to connect; the child's
    // answer, through the other pair, means both connections are up.
    if (report() != 0)
      fail("unexpected first answer from the ZeroMQ child");
    data_file_.remove();
    ctl_file_.remove();
  }

  void send(const void* data, std::size_t size) {
    data_.send(data, size);
  }

  /// What the sink counted since the last report.
  uint64_t report() {
    data_.send_code(mq_report);
    uint64_t count = 0;
    if (ctl_.receive(&count, sizeof(count)) != sizeof(count))
      fail("unexpected answer size from the ZeroMQ child");
    return count;
  }

  void stop() {
    data_.send_code(mq_stop);
    child_->finish(milliseconds{10'000});
  }

private:
  std::function<bool()> child_alive() {
    return [this] { return !child_ || child_->running(); };
  }

  std::string base_;
  zmq_socket_file data_file_;
  zmq_socket_file ctl_file_;
  zmq_context ctx_;
  zmq_sock data_;
  zmq_sock ctl_;
  std::optional<child_process> child_; // last: killed before the sockets close
};

/// The parent's side of the ZeroMQ round trip: a REQ socket bound here and a
/// child of kind `zmq-echo` (REP) that has connected to it.
class zmq_echo_session {
public:
  zmq_echo_session()
    : base_(unique_name("zmq")), file_(zmq_path(base_, "req")), req_(ctx_, ZMQ_REQ, child_alive()) {
    req_.bind(file_.endpoint());
    child_.emplace(self_exe, child_args("zmq-echo", base_), child_process::setup{});
    char buf[payload_size];
    std::memset(buf, 'x', sizeof(buf));
    if (round_trip(buf) != payload_size) // blocks until the child is connected
      fail("unexpected first answer from the ZeroMQ child");
    file_.remove();
  }

  /// Sends `buf` and receives the reply into it; returns the reply's size.
  std::size_t round_trip(char (&buf)[payload_size]) {
    req_.send(buf, sizeof(buf));
    return req_.receive(buf, sizeof(buf));
  }

  void stop() {
    req_.send_code(mq_stop);
    child_->finish(milliseconds{10'000});
  }

private:
  std::function<bool()> child_alive() {
    return [this] { return !child_ || child_->running(); };
  }

  std::string base_;
  zmq_socket_file file_;
  zmq_context ctx_;
  zmq_sock req_;
  std::optional<child_process> child_;
};

int zmq_child(bool echo, const std::string& base, pid_t parent) {
  std::function<bool()> parent_alive = [parent] { return getppid() == parent; };
  zmq_context ctx;
  char buf[payload_size];
  if (echo) {
    zmq_sock rep{ctx, ZMQ_REP, parent_alive};
    rep.connect("ipc://" + zmq_path(base, "req"));
    for (;;) {
      auto size = rep.receive(buf, sizeof(buf));
      if (size == payload_size) {
        rep.send(buf, size);
        continue;
      }
      uint64_t code = 0;
      if (size == sizeof(code))
        std::memcpy(&code, buf, sizeof(code));
      if (code != mq_stop)
        fail("unexpected message size " + std::to_string(size));
      return 0; // the parent reads no reply to mq_stop
    }
  }
  zmq_sock data{ctx, ZMQ_PULL, parent_alive};
  zmq_sock ctl{ctx, ZMQ_PUSH, parent_alive};
  data.connect("ipc://" + zmq_path(base, "data"));
  ctl.connect("ipc://" + zmq_path(base, "ctl"));
  uint64_t count = 0;
  for (;;) {
    auto size = data.receive(buf, sizeof(buf));
    if (size == payload_size) {
      ++count;
      continue;
    }
    uint64_t code = 0;
    if (size != sizeof(code))
      fail("unexpected message size " + std::to_string(size));
    std::memcpy(&code, buf, sizeof(code));
    if (code == mq_stop)
      return 0;
    if (code != mq_report)
      fail("unexpected control message " + std::to_string(code));
    ctl.send(&count, sizeof(count));
    count = 0;
  }
}

// -- CAF -------------------------------------------------------------------

caf::behavior int_echo() {
  return {[](int x) { return x; }};
}

struct count_state {
  int64_t count = 0;
};

caf::behavior counting_actor(caf::stateful_actor<count_state>* self) {
  return {
    [self](const std::string&) { ++self->state.count; },
    [self](caf::get_atom) { return self->state.count; },
  };
}

/// CAF never answers a request lost with its connection, so a blocking request
/// (without a timeout) to a process that dies would wait forever. While this
/// lives, it checks the child every 100 ms; once the child is gone, it answers
/// the request in flight (whose response id the caller keeps in `in_flight`) with
/// sec::request_receiver_down. A timeout would do too, but every request with
/// one also wakes CAF's clock thread, which would inflate the figure.
class request_watchdog {
public:
  request_watchdog(child_process& child, const caf::scoped_actor& self)
    : child_(child), self_(caf::actor_cast<caf::actor>(self.ptr())), thread_([this] { run(); }) {}
  request_watchdog(const request_watchdog&) = delete;
  request_watchdog& operator=(const request_watchdog&) = delete;
  ~request_watchdog() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  std::atomic<uint64_t> in_flight{0};

private:
  void run() {
    std::unique_lock<std::mutex> lock{mtx_};
    uint64_t answered = 0;
    while (!cv_.wait_for(lock, milliseconds{100}, [this] { return stop_; })) {
      auto id = in_flight.load();
      if (id == 0 || id == answered || child_.running())
        continue;
      answered = id;
      self_->enqueue(nullptr, caf::message_id{id},
                     caf::make_message(caf::make_error(caf::sec::request_receiver_down)), nullptr);
    }
  }

  child_process& child_;
  caf::actor self_;
  std::mutex mtx_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

/// `samples` blocking requests from `self` to `server`; the median in µs.
/// The samples are kept under `name` for its distribution.
double request_rtt_run(const char* name, caf::scoped_actor& self, const caf::actor& server,
                       int samples, request_watchdog* watchdog = nullptr) {
  std::vector<double> rtts;
  rtts.reserve(static_cast<std::size_t>(samples));
  caf::error failure;
  for (int i = 0; i < samples && !failure; ++i) {
    auto start = clock_type::now();
    auto pending = self->request(server, caf::infinite, i);
    if (watchdog != nullptr)
      watchdog->in_flight.store(pending.id().integer_value(), std::memory_order_relaxed);
    pending.receive([](int) {}, [&](caf::error& err) { failure = std::move(err); });
    rtts.push_back(us_since(start));
  }
  if (failure)
    fail("request failed: " + self->system().render(failure));
  keep_samples(name, rtts);
  return median(std::move(rtts));
}

/// The scheduler setting of troupe::ipc::configure, for the CAF anchors that
/// are to be compared like for like.
void apply_scheduler(caf::actor_system_config& cfg, bool latency_scheduler) {
  if (latency_scheduler)
    cfg.set("work-stealing.moderate-poll-attempts", size_t{0});
}

int caf_tcp_child(bool latency_scheduler) {
  caf::actor_system_config cfg;
  apply_scheduler(cfg, latency_scheduler);
  cfg.add_actor_type("int_echo", int_echo); // for caf_remote_spawn_us
  cfg.load<caf::io::middleman>();
  caf::actor_system sys{cfg};
  auto server = sys.spawn(int_echo);
  auto port = caf::io::publish(server, 0, "127.0.0.1");
  if (!port) {
    std::cerr << "anchor-child caf-tcp: publish failed: " << sys.render(port.error()) << '\n';
    caf::anon_send_exit(server, caf::exit_reason::user_shutdown);
    return 1;
  }
  std::cout << *port << std::endl;
  // Serve until the parent closes our stdin (or is gone).
  char c = 0;
  for (;;) {
    auto n = read(0, &c, 1);
    if (n > 0 || (n < 0 && errno == EINTR))
      continue;
    break;
  }
  sys.middleman().unpublish(server, *port);
  caf::anon_send_exit(server, caf::exit_reason::user_shutdown);
  return 0;
}

// -- python3 ---------------------------------------------------------------

/// The full path of `program` in PATH, or empty.
std::string find_on_path(const char* program) {
  const char* path = std::getenv("PATH");
  if (path == nullptr)
    return {};
  std::string dirs = path;
  std::size_t start = 0;
  for (;;) {
    auto end = dirs.find(':', start);
    auto dir = dirs.substr(start, end == std::string::npos ? std::string::npos : end - start);
    auto candidate = (dir.empty() ? std::string{"."} : dir) + "/" + program;
    struct stat st {};
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode)
        && access(candidate.c_str(), X_OK) == 0)
      return candidate;
    if (end == std::string::npos)
      return {};
    start = end + 1;
  }
}

// argv: KIND COUNT REPEAT. Prints one figure per run: the median set() round
// trip in µs (manager), or messages per second (queue). The fork context keeps
// the -c script usable whatever the default start method is. Its stdin is a
// pipe from troupe-bench: at EOF (troupe-bench is gone, even if killed) it
// kills its process group, the manager or consumer included. The watcher
// thread starts after the fork, so that no thread is forked.
constexpr const char* py_script = R"(
import multiprocessing as mp
import os
import signal
import statistics
import sys
import threading
import time


def die_with_troupe_bench():
    fd = os.dup(0)  # unbuffered, and untouched when sys.stdin is closed

    def watch():
        while os.read(fd, 4096):
            pass
        os.killpg(os.getpgrp(), signal.SIGKILL)
    threading.Thread(target=watch, daemon=True).start()


def sink(q, done, count, repeat):
    done.put(0)
    for _ in range(repeat):
        for _ in range(count):
            q.get()
        done.put(count)


def echo_once(conn):
    conn.send(conn.recv())


def main():
    kind, count, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ctx = mp.get_context('fork')
    if kind == 'process':
        die_with_troupe_bench()
        for _ in range(repeat):
            starts = []
            for i in range(count):
                start = time.perf_counter()
                here, there = mp.Pipe()
                p = mp.Process(target=echo_once, args=(there,))
                p.start()
                here.send(i)
                if here.recv() != i:
                    sys.exit('the process answered wrong')
                starts.append(time.perf_counter() - start)
                p.join()
            print(statistics.median(starts) * 1e3, flush=True)
    elif kind == 'manager':
        with ctx.Manager() as manager:
            die_with_troupe_bench()
            d = manager.dict()
            d['k'] = -1
            for _ in range(repeat):
                rtts = []
                for i in range(count):
                    start = time.perf_counter()
                    d['k'] = i
                    rtts.append(time.perf_counter() - start)
                print(statistics.median(rtts) * 1e6, flush=True)
    else:
        q, done = ctx.Queue(), ctx.Queue()
        payload = b'x' * 64
        p = ctx.Process(target=sink, args=(q, done, count, repeat))
        p.start()
        die_with_troupe_bench()
        done.get()
        for _ in range(repeat):
            start = time.perf_counter()
            for _ in range(count):
                q.put(payload)
            if done.get() != count:
                sys.exit('the consumer lost messages')
            print(count / (time.perf_counter() - start), flush=True)
        p.join()
        if p.exitcode != 0:
            sys.exit('the consumer failed')


main()
)";

std::optional<double> run_python(const char* kind, int count, int repeat) {
  auto python = find_on_path("python3");
  if (python.empty())
    return std::nullopt;
  child_process py{
    python,
    {"python3", "-c", py_script, kind, std::to_string(count), std::to_string(repeat)},
    {true, true, true}};
  std::vector<double> runs;
  for (int r = 0; r < repeat; ++r) {
    auto line = py.read_line(milliseconds{300'000});
    char* end = nullptr;
    auto value = std::strtod(line.c_str(), &end);
    if (end == line.c_str() || *end != '\0' || !std::isfinite(value) || value <= 0)
      fail("unexpected output from python3: '" + line + "'");
    runs.push_back(value);
  }
  py.finish(milliseconds{30'000});
  return median(std::move(runs));
}

void print(const char* name, double value, const char* unit) {
  report(name, value, unit);
}

} // namespace

// -- figures ---------------------------------------------------------------

double futex_rtt_us(const anchor_options& opt) {
  auto name = unique_name("futex");
  shm_segment shm{name, sizeof(futex_word), true};
  auto& word = *new (shm.data()) futex_word{0};
  child_process child{self_exe, child_args("futex", name), {}};
  auto child_alive = [&child] { return child.running(); };
  futex_wait_while(word, 0, child_alive); // the child has mapped the segment
  shm.unlink();
  std::vector<double> runs;
  std::vector<double> rtts;
  rtts.reserve(static_cast<std::size_t>(opt.samples));
  for (int r = 0; r < opt.repeat; ++r) {
    rtts.clear();
    for (int i = 0; i < opt.samples; ++i) {
      auto start = clock_type::now();
      futex_store_wake(word, f_ping);
      futex_wait_while(word, f_ping, child_alive);
      rtts.push_back(us_since(start));
    }
    runs.push_back(median(rtts));
  }
  futex_store_wake(word, f_stop);
  child.finish(milliseconds{10'000});
  return median(std::move(runs));
}

double cacheline_hop_ns(const anchor_options& opt) {
  auto name = unique_name("hop");
  shm_segment shm{name, sizeof(hop_word), true};
  auto& word = *new (shm.data()) hop_word{0};
  child_process child{self_exe, child_args("cacheline", name), {}};
  auto child_alive = [&child] { return child.running(); };
  // The child answers 1 with 2 once it has mapped the segment.
  word.store(1, std::memory_order_release);
  auto value = spin_while(word, 1, child_alive);
  shm.unlink();
  const int rounds = opt.samples * 10;
  std::vector<double> runs;
  for (int r = 0; r < opt.repeat; ++r) {
    auto start = clock_type::now();
    for (int i = 0; i < rounds; ++i) {
      word.store(value + 1, std::memory_order_release);
      value = spin_while(word, value + 1, child_alive);
    }
    runs.push_back(seconds_since(start) * 1e9 / (2.0 * rounds));
  }
  word.store(hop_stop, std::memory_order_release);
  child.finish(milliseconds{10'000});
  return median(std::move(runs));
}

double bip_mq_rtt_us(const anchor_options& opt) {
  mq_session mq{"mq-echo"};
  char out[payload_size];
  char in[payload_size];
  std::memset(out, 'x', sizeof(out));
  std::vector<double> runs;
  std::vector<double> rtts;
  rtts.reserve(static_cast<std::size_t>(opt.samples));
  for (int r = 0; r < opt.repeat; ++r) {
    rtts.clear();
    for (int i = 0; i < opt.samples; ++i) {
      auto start = clock_type::now();
      mq.send(out, sizeof(out));
      auto size = mq.receive(in);
      rtts.push_back(us_since(start));
      if (size != payload_size)
        fail("unexpected reply size " + std::to_string(size));
    }
    runs.push_back(median(rtts));
  }
  mq.stop();
  return median(std::move(runs));
}

double bip_mq_msgs_per_s(const anchor_options& opt) {
  mq_session mq{"mq-sink"};
  char out[payload_size];
  char in[payload_size];
  std::memset(out, 'x', sizeof(out));
  std::vector<double> runs;
  for (int r = 0; r < opt.repeat; ++r) {
    auto start = clock_type::now();
    for (int i = 0; i < opt.messages; ++i)
      mq.send(out, sizeof(out));
    mq.send_code(mq_report);
    auto size = mq.receive(in);
    auto elapsed = seconds_since(start);
    uint64_t count = 0;
    if (size == sizeof(count))
      std::memcpy(&count, in, sizeof(count));
    if (count != static_cast<uint64_t>(opt.messages))
      fail("the message_queue sink counted " + std::to_string(count) + " messages");
    runs.push_back(opt.messages / elapsed);
  }
  mq.stop();
  return median(std::move(runs));
}

double zmq_rtt_us(const anchor_options& opt) {
  zmq_echo_session zmq;
  char buf[payload_size];
  std::vector<double> runs;
  std::vector<double> rtts;
  rtts.reserve(static_cast<std::size_t>(opt.samples));
  for (int r = 0; r < opt.repeat; ++r) {
    rtts.clear();
    for (int i = 0; i < opt.samples; ++i) {
      std::memset(buf, 'a' + i % 26, sizeof(buf));
      auto start = clock_type::now();
      auto size = zmq.round_trip(buf);
      rtts.push_back(us_since(start));
      if (size != payload_size || buf[payload_size - 1] != 'a' + i % 26)
        fail("unexpected reply from the ZeroMQ child");
    }
    keep_samples("zmq_rtt_us", rtts);
    runs.push_back(median(rtts));
  }
  zmq.stop();
  return median(std::move(runs));
}

double zmq_msgs_per_s(const anchor_options& opt) {
  zmq_sink_session zmq;
  char out[payload_size];
  std::memset(out, 'x', sizeof(out));
  std::vector<double> runs;
  for (int r = 0; r < opt.repeat; ++r) {
    auto start = clock_type::now();
    for (int i = 0; i < opt.messages; ++i)
      zmq.send(out, sizeof(out));
    // One socket pair, so in order: the answer comes after the last message.
    auto count = zmq.report();
    auto elapsed = seconds_since(start);
    if (count != static_cast<uint64_t>(opt.messages))
      fail("the ZeroMQ sink counted " + std::to_string(count) + " messages of "
           + std::to_string(opt.messages));
    runs.push_back(opt.messages / elapsed);
  }
  zmq.stop();
  return median(std::move(runs));
}

/// Starts the CAF child (an `int_echo` published on loopback TCP, and the
/// `int_echo` type registered for `remote_spawn`), connects an actor system
/// of this process to it, returns `run(sys, server, child)` and lets the
/// child go.
template <class Run>
double with_caf_tcp_child(const anchor_options& opt, Run run) {
  // Started before this process's actor system (and its threads) exists.
  child_process child{
    self_exe, child_args("caf-tcp", opt.latency_scheduler ? "tuned" : "-"), {true, true, false}};
  auto line = child.read_line(milliseconds{30'000});
  auto port = std::strtol(line.c_str(), nullptr, 10);
  if (port <= 0 || port > 65535)
    fail("unexpected port from the CAF child: '" + line + "'");
  double res = 0;
  {
    caf::actor_system_config cfg;
    apply_scheduler(cfg, opt.latency_scheduler);
    cfg.load<caf::io::middleman>();
    caf::actor_system sys{cfg};
    auto server = caf::io::remote_actor(sys, "127.0.0.1", static_cast<uint16_t>(port));
    if (!server)
      fail("remote_actor failed: " + sys.render(server.error()));
    res = run(sys, *server, child);
  }
  child.close_stdin();
  child.finish(milliseconds{10'000});
  return res;
}

double caf_tcp_rtt_us(const anchor_options& opt) {
  return with_caf_tcp_child(
    opt, [&](caf::actor_system& sys, const caf::actor& server, child_process& child) {
      std::vector<double> runs;
      caf::scoped_actor self{sys};
      request_watchdog watchdog{child, self};
      for (int r = 0; r < opt.repeat; ++r)
        runs.push_back(
          request_rtt_run(opt.latency_scheduler ? "caf_tcp_same_sched_rtt_us" : "caf_tcp_rtt_us",
                          self, server, opt.samples, &watchdog));
      return median(std::move(runs));
    });
}

double caf_remote_spawn_us(const anchor_options& opt) {
  return with_caf_tcp_child(opt, [&](caf::actor_system& sys, const caf::actor& server,
                                     child_process&) {
    std::vector<double> runs;
    auto where = server.node();
    caf::scoped_actor self{sys};
    auto spawns = std::min(opt.samples, 1000);
    std::vector<caf::actor> spawned_all; // stopped after each round
    for (int r = 0; r < opt.repeat; ++r) {
      std::vector<double> xs;
      for (int i = 0; i < spawns; ++i) {
        auto start = clock_type::now();
        auto spawned = sys.middleman().remote_spawn<caf::actor>(
          where, "int_echo", caf::make_message(), std::chrono::seconds{10});
        if (!spawned)
          fail("remote_spawn failed: " + sys.render(spawned.error()));
        caf::error failure;
        self->request(*spawned, std::chrono::seconds{10}, i)
          .receive([](int) {}, [&](caf::error& err) { failure = std::move(err); });
        if (failure)
          fail("the spawned actor failed: " + sys.render(failure));
        xs.push_back(us_since(start));
        spawned_all.push_back(std::move(*spawned));
      }
      // Stopped and gone before the next round, or the child could not exit.
      for (auto& x : spawned_all) {
        self->monitor(x);
        caf::anon_send_exit(x, caf::exit_reason::user_shutdown);
      }
      for (size_t i = 0; i < spawned_all.size(); ++i)
        self->receive([](caf::down_msg&) {}, caf::after(std::chrono::seconds{10}) >>
                                               [] { fail("a remote-spawned actor did not stop"); });
      spawned_all.clear();
      runs.push_back(median(std::move(xs)));
    }
    return median(std::move(runs));
  });
}

double caf_local_rtt_us(const anchor_options& opt) {
  caf::actor_system_config cfg;
  apply_scheduler(cfg, opt.latency_scheduler);
  caf::actor_system sys{cfg};
  auto server = sys.spawn(int_echo);
  std::vector<double> runs;
  {
    caf::scoped_actor self{sys};
    for (int r = 0; r < opt.repeat; ++r)
      runs.push_back(
        request_rtt_run(opt.latency_scheduler ? "caf_local_same_sched_rtt_us" : "caf_local_rtt_us",
                        self, server, opt.samples));
  }
  caf::anon_send_exit(server, caf::exit_reason::user_shutdown);
  return median(std::move(runs));
}

double caf_local_msgs_per_s(const anchor_options& opt) {
  caf::actor_system_config cfg;
  apply_scheduler(cfg, opt.latency_scheduler);
  caf::actor_system sys{cfg};
  const std::string payload(payload_size, 'x');
  std::vector<double> runs;
  caf::scoped_actor self{sys};
  for (int r = 0; r < opt.repeat; ++r) {
    auto counter = sys.spawn(counting_actor);
    auto start = clock_type::now();
    for (int i = 0; i < opt.messages; ++i)
      self->send(counter, payload);
    // Answered after every message before it (one sender, so in order).
    int64_t count = -1;
    caf::error failure;
    self->request(counter, caf::infinite, caf::get_atom::value)
      .receive([&](int64_t n) { count = n; }, [&](caf::error& err) { failure = std::move(err); });
    auto elapsed = seconds_since(start);
    caf::anon_send_exit(counter, caf::exit_reason::user_shutdown);
    if (failure)
      fail("request failed: " + sys.render(failure));
    if (count != opt.messages)
      fail("the counting actor counted " + std::to_string(count) + " messages");
    runs.push_back(opt.messages / elapsed);
  }
  return median(std::move(runs));
}

std::optional<double> py_manager_rtt_us(const anchor_options& opt) {
  return run_python("manager", opt.samples, opt.repeat);
}

std::optional<double> py_queue_msgs_per_s(const anchor_options& opt) {
  return run_python("queue", opt.messages, opt.repeat);
}

std::optional<double> py_process_start_ms(const anchor_options& opt) {
  return run_python("process", 10, opt.repeat);
}

// -- suite and child mode --------------------------------------------------

std::optional<double> measure_figure(const char* name, const char* unit,
                                     double (*figure)(const anchor_options&),
                                     const anchor_options& opt, int& rc) {
  try {
    auto value = figure(opt);
    print(name, value, unit);
    return value;
  } catch (const std::exception& e) {
    std::cerr << name << " failed: " << e.what() << '\n';
    report_na(name);
    rc = 1;
    return std::nullopt;
  }
}

std::optional<double> measure_python_figure(const char* name, const char* unit,
                                            std::optional<double> (*figure)(const anchor_options&),
                                            const anchor_options& opt) {
  std::optional<double> value;
  try {
    value = figure(opt);
    if (!value)
      std::cerr << name << ": python3 is not on PATH\n";
  } catch (const std::exception& e) {
    std::cerr << name << ": python3 failed: " << e.what() << '\n';
  }
  if (value)
    print(name, *value, unit);
  else
    report_na(name);
  return value;
}

int run_anchors(const anchor_options& opt) {
  int rc = 0;
  auto measure = [&](const char* name, const char* unit, double (*figure)(const anchor_options&)) {
    measure_figure(name, unit, figure, opt, rc);
  };
  auto measure_py = [&](const char* name, const char* unit,
                        std::optional<double> (*figure)(const anchor_options&)) {
    measure_python_figure(name, unit, figure, opt);
  };
  measure("futex_rtt_us", "us", futex_rtt_us);
  measure("cacheline_hop_ns", "ns", cacheline_hop_ns);
  measure("bip_mq_rtt_us", "us", bip_mq_rtt_us);
  measure("bip_mq_msgs_per_s", "msgs/s", bip_mq_msgs_per_s);
  measure("zmq_rtt_us", "us", zmq_rtt_us);
  measure("zmq_msgs_per_s", "msgs/s", zmq_msgs_per_s);
  measure("caf_tcp_rtt_us", "us", caf_tcp_rtt_us);
  measure("caf_local_rtt_us", "us", caf_local_rtt_us);
  measure("caf_local_msgs_per_s", "msgs/s", caf_local_msgs_per_s);
  measure_py("py_manager_rtt_us", "us", py_manager_rtt_us);
  measure_py("py_queue_msgs_per_s", "msgs/s", py_queue_msgs_per_s);
  measure_py("py_process_start_ms", "ms", py_process_start_ms);
  return rc;
}

int run_anchor_child(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: troupe-bench anchor-child KIND NAME PARENT_PID (internal)\n";
    return 2;
  }
  std::string kind = argv[0];
  std::string name = argv[1];
  auto parent = static_cast<pid_t>(std::strtol(argv[2], nullptr, 10));
  // Never outlive the parent, even when it is killed.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent)
    return 1;
  try {
    if (kind == "futex")
      return futex_child(name, parent);
    if (kind == "cacheline")
      return cacheline_child(name, parent);
    if (kind == "mq-echo" || kind == "mq-sink")
      return mq_child(kind == "mq-echo", name, parent);
    if (kind == "zmq-echo" || kind == "zmq-sink")
      return zmq_child(kind == "zmq-echo", name, parent);
    if (kind == "caf-tcp")
      return caf_tcp_child(name == "tuned");
  } catch (const std::exception& e) {
    std::cerr << "anchor-child " << kind << ": " << e.what() << '\n';
    return 1;
  }
  std::cerr << "anchor-child: unknown kind '" << kind << "'\n";
  return 2;
}

} // namespace troupe_bench
