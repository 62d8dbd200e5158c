#include "fork_server.hpp"

#include "roles.hpp"
#include "troupe/ipc/error.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>

namespace troupe::ipc::detail {

namespace {

/// Names the fork server's end of the socket in its environment.
constexpr const char* socket_fd_env = "TROUPE_FORK_SERVER_FD";

/// Makes the dynamic loader bind all symbols at start.
constexpr const char* bind_now_env = "LD_BIND_NOW";

/// The server's process name (at most 15 characters).
constexpr const char* fork_server_name = "troupe.forks";

/// The largest request (arguments and environment, encoded): larger ones
/// start the program anew. Well below a socket's default buffer.
constexpr size_t max_request = 64 * 1024;

/// What the server sends once it serves.
constexpr char ready_byte = 'R';

/// How long the server may take to come up, and to answer a request (a
/// fork takes about a millisecond; sanitizers and loaded machines are slow).
constexpr int patience_ms = 10'000;

/// The server's answer to a request: the host's pid, or why there is none.
struct fork_reply {
  int32_t pid = 0;
  int32_t error = 0;
};

// A request is two lists of strings (arguments, environment), each a
// 32-bit count and then each string as a 32-bit length and its bytes.

void put_strings(std::string& out, const std::vector<std::string>& xs) {
  auto put = [&out](uint32_t x) { out.append(reinterpret_cast<const char*>(&x), sizeof(x)); };
  put(static_cast<uint32_t>(xs.size()));
  for (auto& x : xs) {
    put(static_cast<uint32_t>(x.size()));
    out += x;
  }
}

bool get_strings(const char*& pos, const char* end, std::vector<std::string>& out) {
  auto get = [&](uint32_t& x) {
    if (static_cast<size_t>(end - pos) < sizeof(x))
      return false;
    std::memcpy(&x, pos, sizeof(x));
    pos += sizeof(x);
    return true;
  };
  uint32_t count = 0;
  if (!get(count))
    return false;
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t len = 0;
    if (!get(len) || static_cast<size_t>(end - pos) < len)
      return false;
    out.emplace_back(pos, len);
    pos += len;
  }
  return true;
}

bool readable_in_time(int fd) {
  pollfd p{fd, POLLIN, 0};
  for (;;) {
    auto rc = ::poll(&p, 1, patience_ms);
    if (rc >= 0 || errno != EINTR)
      return rc == 1;
  }
}

caf::error fork_error(const std::string& what) {
  return make_error(errc::spawn_failed, "fork server: " + what);
}

/// This process's end of its fork server, started on first use. One
/// request at a time: a fork is quick, and hosts start one by one anyway.
class fork_client {
public:
  ~fork_client() {
    stop();
  }

  caf::expected<child_process> fork(const std::string& request) {
    std::lock_guard<std::mutex> guard{mtx_};
    if (unusable_)
      return fork_error("this program does not serve as one");
    // A server that died (or was killed) is replaced once per request.
    for (int attempt = 0;; ++attempt) {
      if (fd_ < 0)
        if (auto err = start())
          return err;
      bool lost = false;
      auto res = ask(request, lost);
      if (res || !lost || attempt == 1)
        return res;
      stop();
    }
  }

  /// Makes this process a child subreaper while it lives: the host of a
  /// request is reparented here when its intermediate exits, before the
  /// server answers. Other orphans of the process's descendants go to init
  /// as before, but for those orphaned in this short window.
  class subreaper_scope {
  public:
    subreaper_scope() {
      ::prctl(PR_GET_CHILD_SUBREAPER, &was_);
      if (was_ == 0)
        ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    }
    ~subreaper_scope() {
      if (was_ == 0)
        ::prctl(PR_SET_CHILD_SUBREAPER, 0);
    }
    subreaper_scope(const subreaper_scope&) = delete;
    subreaper_scope& operator=(const subreaper_scope&) = delete;

  private:
    int was_ = 0;
  };

private:
  caf::error start() {
    int ends[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ends) != 0)
      return fork_error(std::string{"socketpair: "} + std::strerror(errno));
    char path[4096];
    auto n = ::readlink("/proc/self/exe", path, sizeof(path) - 1);
    if (n <= 0) {
      ::close(ends[0]);
      ::close(ends[1]);
      return fork_error("cannot read /proc/self/exe");
    }
    path[n] = '\0';
    // LD_BIND_NOW: the dynamic loader binds every symbol once, in the
    // server, rather than each host binding the ones it calls on first use
    // (a tenth of a host's start otherwise).
    auto proc = spawn_process_keeping(path, {},
                                      {std::string{role_env} + "=" + fork_server_role,
                                       std::string{socket_fd_env} + "=" + std::to_string(ends[1]),
                                       std::string{bind_now_env} + "=1"},
                                      ends[1]);
    ::close(ends[1]);
    if (!proc) {
      ::close(ends[0]);
      return std::move(proc.error());
    }
    char hello = 0;
    if (!readable_in_time(ends[0])) {
      ::close(ends[0]); // and the server is killed with `proc`; next time, again
      return fork_error("the server did not come up in time");
    }
    if (::recv(ends[0], &hello, 1, 0) != 1 || hello != ready_byte) {
      // It ended without serving: its main did not reach program::run, or
      // it cannot fork safely. That will not change.
      ::close(ends[0]);
      unusable_ = true;
      return fork_error("the program started as one did not serve");
    }
    fd_ = ends[0];
    server_ = std::move(*proc);
    return caf::none;
  }

  caf::expected<child_process> ask(const std::string& request, bool& lost) {
    subreaper_scope adopting;
    if (::send(fd_, request.data(), request.size(), MSG_NOSIGNAL)
        != static_cast<ssize_t>(request.size())) {
      lost = true;
      return fork_error(std::string{"send: "} + std::strerror(errno));
    }
    fork_reply reply;
    if (!readable_in_time(fd_) || ::recv(fd_, &reply, sizeof(reply), 0) != sizeof(reply)) {
      lost = true;
      return fork_error("no answer");
    }
    if (reply.pid <= 0)
      return start_failed("fork server: fork", reply.error);
    return child_process{reply.pid};
  }

  void stop() {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = -1;
    server_ = child_process{}; // kills and reaps it if it still runs
  }

  std::mutex mtx_;
  int fd_ = -1;
  child_process server_;
  bool unusable_ = false;
};

/// Whether this process runs one thread: forking a threaded one copies
/// locks other threads may hold.
bool single_threaded() {
  auto* dir = ::opendir("/proc/self/task");
  if (dir == nullptr)
    return false;
  int threads = 0;
  while (auto* entry = ::readdir(dir))
    if (entry->d_name[0] != '.')
      ++threads;
  ::closedir(dir);
  return threads == 1;
}

/// In a host just forked: the pipe on which the server says "go" once the
/// host is the asker's child (until then its parent is the intermediate,
/// whose exit takes a while: the host builds its actor system meanwhile).
int adoption_fd = -1;

/// Forks a host for a request: twice, so that the host's parent exits at
/// once and the host becomes the child of the process that asked (a
/// subreaper), which can then wait for it. Returns true in the host;
/// elsewhere fills `reply`.
bool fork_host(fork_reply& reply) {
  std::cout.flush();
  std::fflush(nullptr); // nothing buffered is written twice
  // The intermediate says the host's pid on one pipe; the server says "go"
  // on the other once the host is the asker's child.
  int pid_pipe[2];
  int go_pipe[2];
  if (::pipe2(pid_pipe, O_CLOEXEC) != 0) {
    reply.error = errno;
    return false;
  }
  if (::pipe2(go_pipe, O_CLOEXEC) != 0) {
    reply.error = errno;
    ::close(pid_pipe[0]);
    ::close(pid_pipe[1]);
    return false;
  }
  auto middle = ::fork();
  if (middle == 0) {
    auto host = ::fork();
    if (host == 0) {
      ::close(pid_pipe[0]);
      ::close(pid_pipe[1]);
      ::close(go_pipe[1]);
      adoption_fd = go_pipe[0];
      return true;
    }
    int32_t said = host > 0 ? host : -errno;
    [[maybe_unused]] auto ignored = ::write(pid_pipe[1], &said, sizeof(said));
    ::_exit(0);
  }
  ::close(pid_pipe[1]);
  ::close(go_pipe[0]);
  int32_t said = 0;
  ssize_t got = 0;
  if (middle < 0) {
    said = -errno;
    got = sizeof(said);
  } else {
    while ((got = ::read(pid_pipe[0], &said, sizeof(said))) < 0 && errno == EINTR) {
    }
    // Once the intermediate is reaped, the host is the asker's child.
    while (::waitpid(middle, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  ::close(pid_pipe[0]);
  if (got != sizeof(said))
    reply.error = EIO;
  else if (said < 0)
    reply.error = -said;
  else
    reply.pid = said;
  if (reply.pid > 0) {
    [[maybe_unused]] auto ignored = ::write(go_pipe[1], &ready_byte, 1);
  }
  ::close(go_pipe[1]);
  return false;
}

/// In a host just forked: the environment its request asked for.
void apply_environment(const std::vector<std::string>& env) {
  for (auto& entry : env) {
    auto eq = entry.find('=');
    if (eq != std::string::npos)
      ::setenv(entry.substr(0, eq).c_str(), entry.c_str() + eq + 1, 1);
  }
  reread_process_role();
}

} // namespace

void await_adoption() {
  if (adoption_fd < 0)
    return;
  char go = 0;
  ssize_t got = 0;
  while ((got = ::read(adoption_fd, &go, 1)) < 0 && errno == EINTR) {
  }
  ::close(adoption_fd);
  adoption_fd = -1;
  if (got != 1)
    std::_Exit(1); // the server died before this host became the asker's child
}

bool forkable_role(const std::string& role) {
  return role == isolated_role || role == pool_host_role;
}

caf::expected<child_process> fork_self(const std::vector<std::string>& args,
                                       const std::vector<std::string>& env) {
  static fork_client client;
  std::string request;
  put_strings(request, args);
  put_strings(request, env);
  if (request.size() > max_request)
    return fork_error("the request is too large");
  return client.fork(request);
}

std::vector<std::string> serve_forks() {
  int fd = -1;
  if (auto* text = std::getenv(socket_fd_env))
    fd = std::atoi(text);
  ::unsetenv(socket_fd_env);
  ::unsetenv(bind_now_env); // read at start only; programs the hosts run bind lazily
  // Without a socket, or threaded, it says nothing: the asker stops using
  // fork servers and starts each host anew.
  if (fd <= 2 || !single_threaded() || ::send(fd, &ready_byte, 1, MSG_NOSIGNAL) != 1)
    std::_Exit(2);
  // Named for `ps` and `top`; each host takes the program's name back.
  char program_name[16] = {};
  ::prctl(PR_GET_NAME, program_name);
  ::prctl(PR_SET_NAME, fork_server_name);
  std::vector<char> buf(max_request + 1);
  for (;;) {
    auto n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n == 0)
      std::_Exit(0); // the asker is gone
    if (n < 0) {
      if (errno == EINTR)
        continue;
      std::_Exit(1);
    }
    std::vector<std::string> args;
    std::vector<std::string> env;
    const char* pos = buf.data();
    const char* end = buf.data() + n;
    fork_reply reply;
    if (!get_strings(pos, end, args) || !get_strings(pos, end, env)) {
      reply.error = EINVAL;
    } else if (fork_host(reply)) {
      ::close(fd);
      ::prctl(PR_SET_NAME, program_name);
      apply_environment(env);
      return args;
    }
    ::send(fd, &reply, sizeof(reply), MSG_NOSIGNAL);
  }
}

} // namespace troupe::ipc::detail
