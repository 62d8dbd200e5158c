#pragma once

/// @file
/// `troupe::ipc::node`: a process's membership in a group of processes that share a segment, and
/// the group's settings.

#include "troupe/full_policy.hpp"
#include "troupe/ipc/error.hpp"
#include "troupe/ipc/process.hpp"
#include "troupe/timeout.hpp"

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/make_message.hpp>
#include <caf/timespan.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

namespace troupe::ipc {

namespace detail {
class core;
} // namespace detail

namespace testing {
struct node_access;
} // namespace testing

/// What a node's spawn server answers (see `node::spawn_in`).
using spawn_in_atom = caf::atom_constant<caf::atom("spawn_in")>;

/// What a sender does when the ring to another node is full (one enum for
/// both layers: `bounded_queue` takes it too).
using troupe::full_policy;

/// Settings of a group and of one node in it. The creator's geometry
/// (`max_nodes`, `ring_bytes`, `max_names`) is the group's; a joining node
/// reads it from the segment and ignores its own.
struct group_options {
  /// How many processes can be in the group at once (2 to 64).
  uint32_t max_nodes = 8;
  /// Bytes of each one-way ring between two nodes: a power of two from
  /// 64 KiB to 256 MiB. The two rings between a pair of nodes are reserved
  /// in /dev/shm by the first message between them (`errc::no_shared_memory`
  /// if there is no room) and given back when one of the two is lost.
  uint64_t ring_bytes = uint64_t{1} << 20;
  /// How many names can be published in the group at once.
  uint32_t max_names = 256;
  /// Largest message (serialized) a node sends; larger ones are split into
  /// ring-sized pieces. Above this limit the sender gets
  /// `errc::message_too_large`. At most 1 GiB.
  uint64_t max_message_bytes = uint64_t{16} << 20;
  /// What a sender does when a ring is full.
  full_policy on_full = full_policy::wait;
  /// With `full_policy::wait`: how long a sender waits for space before it
  /// fails with `troupe::errc::full`.
  caf::timespan full_timeout = forever;
  /// How long the reader spins on empty rings after its last input before
  /// it parks; a parked reader costs a wake-up (tens of microseconds on a
  /// VM) to restart. Long enough that a blocking caller's next call to an
  /// owner in another process often finds both readers still spinning;
  /// an idle node spends at most this much CPU per input. Also how long a
  /// blocking call of a managed container or primitive (`managed_dict`,
  /// `lock`...) on an owner in another process reads the rings on its own
  /// thread for its answer, while the reader thread sleeps, before it
  /// waits to be woken like any blocking receive (one such caller per node
  /// at a time; the others wait at once).
  caf::timespan spin = std::chrono::microseconds(200);
  /// How long `join` waits for a segment that its creator is still setting
  /// up, and for a node slot when every slot is taken or resting (see
  /// `slot_grace`); then it fails with `troupe::errc::group_full`.
  caf::timespan join_timeout = std::chrono::seconds(5);
  /// How long the slot of a node that left or died rests before a new node
  /// may reuse it, so that its peers have seen it go by then (one that has
  /// not still tells the two nodes apart: every frame names them). A node that joins
  /// while every free slot rests waits for the first to have rested.
  caf::timespan slot_grace = std::chrono::seconds(1);
  /// No `[troupe] ...` notices on stderr (sweeps, rejected frames).
  bool quiet = false;
  /// For a node of a process started by `node::spawn` (joined with
  /// `join_from_env`): when the process that started it dies, even by
  /// SIGKILL, the node leaves the group and the process exits with status 1
  /// (with a notice on stderr), so that no child outlives its parent and no
  /// segment is left behind. `false` lets it run on.
  bool exit_with_parent = true;
};

/// The role this process was started in: what `node::spawn_role`, a
/// `process_spec::role` or a process pool gave it, or "" for a process that
/// troupe did not start in a role (the parent of a program). The one way,
/// for all of troupe, to tell the processes of a program apart;
/// `troupe::ipc::program` dispatches on it.
[[nodiscard]] std::string this_process_role();

/// Counters of this node. The frame counters are kept in the segment (so
/// `troupe ls` sees them); the last two only in this process.
struct node_stats {
  /// Frames this node wrote into rings to other nodes.
  uint64_t frames_sent = 0;
  /// Frames this node took from rings.
  uint64_t frames_received = 0;
  /// Frames this node rejected as malformed.
  uint64_t frames_rejected = 0;
  /// Of `frames_received`, those read by blocking callers of shared
  /// containers and primitives while they waited for their answer, rather
  /// than by the node's reader thread (see `group_options::spin`).
  uint64_t frames_read_by_callers = 0;
  /// Times the reader thread found input that no writer had announced, even
  /// 100 ms after its wait (of up to 250 ms) ended: lost wake-ups, each of
  /// which delayed a frame that long. Stays 0 unless something is wrong.
  uint64_t late_wakeups = 0;
  /// Other nodes this node met when its process had no file descriptor left
  /// (at its `ulimit -n`) for the pidfd it watches a node with: it notices
  /// their deaths by polling, within 250 ms, rather than at once. Stays 0
  /// unless the process runs out of descriptors after joining (joining
  /// itself checks that there are enough, `errc::resource_limit`).
  uint64_t peers_polled = 0;
};

/// A name a node published, and the actor behind it: `node::publish` returns
/// one. The publication owns both: when it goes out of scope (or `stop` is
/// called) the name is unpublished and the actor is sent
/// `exit_reason::user_shutdown`. `release` opts out: the name then stays
/// until the node leaves, and the actor ends then. Move-only; not
/// thread-safe (one thread owns it).
class publication {
public:
  /// An empty publication (nothing published).
  publication() noexcept = default;
  /// Takes over `other`'s name and actor; `other` is then empty.
  publication(publication&& other) noexcept;
  /// Stops what this publication holds, then takes over `other`'s.
  publication& operator=(publication&& other) noexcept;
  publication(const publication&) = delete;
  publication& operator=(const publication&) = delete;
  ~publication();

  /// The published name (empty once stopped or released).
  [[nodiscard]] const std::string& name() const noexcept {
    return name_;
  }

  /// The published actor (null once stopped or released).
  [[nodiscard]] const caf::actor& actor() const noexcept {
    return actor_;
  }

  /// Unpublishes the name (if the node is still in its group) and sends the
  /// actor `exit_reason::user_shutdown`. Does not wait for the actor to end.
  /// Idempotent.
  void stop();

  /// Leaves the name published and the actor running until the node leaves
  /// the group (`node::leave` ends it then); this object becomes empty.
  void release() noexcept;

private:
  friend class node;

  publication(std::weak_ptr<detail::core> core, std::string name, caf::actor actor)
    : core_(std::move(core)), name_(std::move(name)), actor_(std::move(actor)) {}

  std::weak_ptr<detail::core> core_;
  std::string name_;
  caf::actor actor_;
};

/// A node of a group: this process's membership in a set of processes on one
/// host that share one shared-memory segment, `/dev/shm/troupe.<group>`.
///
/// Actors published under a name by any node are found by `lookup` on every
/// node as a plain `caf::actor`: `send`, `request`, `monitor` and `link` work
/// across processes as with local actors, and replies, errors, `down_msg`
/// and `exit_msg` come back. Messages from one sender to one receiver keep
/// their order. When a node dies (even by SIGKILL), every monitor of its
/// actors gets a `down_msg` with `troupe::errc::peer_lost` and every request pending
/// on it fails with `troupe::errc::peer_lost`.
///
/// Who owns the segment: `create` makes it (mode 0600, refused while a group
/// of that name runs; a segment whose processes all died is swept and
/// reused); the last node to leave removes it. A node leaves when `leave` is
/// called or the `node` is destroyed; destroy it before its actor system.
///
/// Thread safety: all member functions may be called from any thread.
class node {
public:
  /// Creates the group `group` and joins it as its first node. Names are
  /// 1 to 48 characters of `[A-Za-z0-9_.-]`. Fails with
  /// `errc::group_running` if a live group of that name exists.
  [[nodiscard]] static caf::expected<node> create(caf::actor_system& sys, const std::string& group,
                                                  group_options opts = {});

  /// Joins the running group `group` with its `key` (see `key()`). Fails with
  /// `errc::bad_key` for a wrong key, `errc::no_such_group` if there is none,
  /// `errc::bad_segment` if the segment is not troupe's or not the caller's,
  /// `errc::group_full` if all slots are taken (or resting, see
  /// `group_options::slot_grace`), `errc::resource_limit` if this process
  /// has fewer file descriptors left than a node needs (one per other node
  /// of the group, and three more; `create` too).
  [[nodiscard]] static caf::expected<node> join(caf::actor_system& sys, const std::string& group,
                                                const std::string& key, group_options opts = {});

  /// Joins the group that `node::spawn` handed this process: its name in
  /// the environment variable `TROUPE_GROUP`, its key on the pipe that
  /// `TROUPE_GROUP_KEY_FD` names (read and closed here; a process may also
  /// be given the key in `TROUPE_GROUP_KEY`), and ends this process with the
  /// one that started it (see `group_options::exit_with_parent`). Takes them
  /// out of the environment, so that processes this one starts do not
  /// inherit them. Fails with `errc::no_such_group` in a process that
  /// `node::spawn` did not start, or `troupe::errc::peer_lost` if its parent
  /// is gone already.
  [[nodiscard]] static caf::expected<node> join_from_env(caf::actor_system& sys,
                                                         group_options opts = {});

  /// Takes over `other`'s membership; `other` is then empty.
  node(node&&) noexcept;
  /// Leaves this node's group (see `leave`), then takes over `other`'s
  /// membership.
  node& operator=(node&&) noexcept;
  node(const node&) = delete;
  node& operator=(const node&) = delete;
  ~node();

  /// Publishes `x` (an actor of this process) under `name` (1 to 64
  /// printable characters), for as long as the returned publication lives:
  /// it unpublishes the name and stops the actor when it goes out of scope
  /// (see `publication`). Whatever the node still publishes when it leaves
  /// is unpublished and stopped then. Fails with `errc::name_taken` if a
  /// live node already published that name, `troupe::errc::invalid_argument` for an
  /// invalid name or handle, or an actor of another process.
  [[nodiscard]] caf::expected<publication> publish(const std::string& name, const caf::actor& x);

  /// `publish` for a typed actor handle.
  template <class Handle>
  [[nodiscard]] caf::expected<publication> publish(const std::string& name, const Handle& x) {
    return publish(name, caf::actor_cast<caf::actor>(x));
  }

  /// Removes a name this node published, without stopping its actor (which
  /// then no longer ends with the node). Fails with `errc::name_not_found`.
  [[nodiscard]] caf::error unpublish(const std::string& name);

  /// Finds the actor published as `name` by any node. Waits up to `wait`
  /// (forever by default, like every wait in troupe) for the name to
  /// appear; fails with `errc::name_not_found` after that. Pass
  /// `caf::timespan{0}` to look once without waiting.
  [[nodiscard]] caf::expected<caf::actor> lookup(const std::string& name,
                                                 caf::timespan wait = forever);

  /// `lookup`, but only the actor that process `pid` published as `name`
  /// (say, the new incarnation of a restarted process, not the old one).
  [[nodiscard]] caf::expected<caf::actor> lookup_in(pid_t pid, const std::string& name,
                                                    caf::timespan wait = forever);

  /// `lookup` for a typed handle (no type check happens across processes).
  template <class Handle>
  [[nodiscard]] caf::expected<Handle> lookup_as(const std::string& name,
                                                caf::timespan wait = forever) {
    auto x = lookup(name, wait);
    if (!x)
      return std::move(x.error());
    return caf::actor_cast<Handle>(std::move(*x));
  }

  /// Spawns an actor of the type registered as `type` in the process
  /// `where` of this group (its pid; this process's own works too), with
  /// `args`, and returns its handle, which works like any other. Types are
  /// registered the CAF way, in every process of the program:
  /// `cfg.add_actor_type("calculator", calculator)`, the registration CAF's
  /// `remote_spawn` uses across hosts. A typed `Handle` is checked against
  /// the registered type's interface.
  ///
  /// Fails with CAF's errors, naming the type and the process:
  /// `sec::unknown_type` (no such type there),
  /// `sec::cannot_spawn_actor_from_arguments` (`args` do not match),
  /// `sec::unexpected_actor_messaging_interface` (a typed `Handle` that the
  /// type does not implement); with `troupe::errc::peer_lost` when no live
  /// node of the group has that pid, or it dies before answering. A child
  /// this process started (`spawn`, `spawn_role`) that has not joined yet is
  /// waited for while it runs, up to `group_options::join_timeout`.
  ///
  /// The actor lives until it ends or its process leaves the group, which
  /// ends it (`exit_reason::user_shutdown`), as it ends what the process
  /// published. Blocks until the process has made the actor; call it from
  /// outside actors.
  template <class Handle = caf::actor, class... Ts>
  [[nodiscard]] caf::expected<Handle> spawn_in(pid_t where, const std::string& type, Ts&&... args) {
    return spawn_through<Handle>(spawn_server_in(where), type,
                                 caf::make_message(std::forward<Ts>(args)...));
  }

  /// `spawn_in` the process that published `where`, waiting for the name
  /// as `lookup` does (forever; look it up first to wait less).
  template <class Handle = caf::actor, class... Ts>
  [[nodiscard]] caf::expected<Handle> spawn_in(const std::string& where, const std::string& type,
                                               Ts&&... args) {
    return spawn_through<Handle>(spawn_server_in(where), type,
                                 caf::make_message(std::forward<Ts>(args)...));
  }

  /// Starts `program` as a child process that can join this group: its
  /// environment carries `TROUPE_GROUP` and `TROUPE_GROUP_KEY_FD`, a pipe
  /// open in the child that holds the key (read by `join_from_env`). The
  /// key is never in a child's environment, which /proc/PID/environ shows
  /// for the process's whole life.
  [[nodiscard]] caf::expected<child_process> spawn(const std::string& program,
                                                   const std::vector<std::string>& args = {},
                                                   std::vector<std::string> env = {});

  /// `spawn_self` in role `role`: the child's `this_process_role()`, on
  /// which `troupe::ipc::program` dispatches.
  [[nodiscard]] caf::expected<child_process> spawn_role(const std::string& role,
                                                        const std::vector<std::string>& args = {},
                                                        std::vector<std::string> env = {});

  /// `spawn` for this very program (/proc/self/exe, by its real path so `ps`
  /// shows its name): the usual way for one program to play parent and child.
  [[nodiscard]] caf::expected<child_process> spawn_self(const std::vector<std::string>& args = {},
                                                        std::vector<std::string> env = {});

  /// Makes `x` reachable through CAF's middleman on `port` (0 picks one):
  /// a plain CAF program reaches it with `io::remote_actor(host, port)`. `x`
  /// may live on any node of the group. Returns the port.
  ///
  /// Listens on `in`, the loopback address unless told otherwise: CAF's
  /// middleman neither authenticates nor encrypts, so listening on other
  /// hosts' networks must be asked for (`"0.0.0.0"` for every IPv4
  /// interface).
  ///
  /// A supervised child (an actor or a process) is published by its
  /// supervisor's stable handle (`supervisor::child`), which follows its
  /// restarts: clients keep their connection and reach each new
  /// incarnation. An actor found with `lookup` is the incarnation of the
  /// moment: after a restart the port leads to an actor that is gone, and
  /// clients get `down_msg`/errors for it.
  [[nodiscard]] caf::expected<uint16_t> publish_tcp(const caf::actor& x, uint16_t port,
                                                    const std::string& in = "127.0.0.1");

  /// Reaches an actor that another host published with CAF's middleman.
  [[nodiscard]] caf::expected<caf::actor> remote_tcp(const std::string& host, uint16_t port);

  /// The actor system this node serves.
  [[nodiscard]] caf::actor_system& system() const;

  /// The group's name.
  [[nodiscard]] const std::string& group() const;

  /// The key a process needs to join (32 hex digits).
  [[nodiscard]] std::string key() const;

  /// This node's slot in the segment.
  [[nodiscard]] uint32_t slot() const;

  /// This node's counters.
  [[nodiscard]] node_stats stats() const;

  /// Unpublishes this node's names, sends the actors it still publishes
  /// `exit_reason::user_shutdown`, and leaves the group; the last node out
  /// removes the segment. Proxies to other nodes' actors die with
  /// `troupe::errc::peer_lost`. When it returns, the node's threads have
  /// ended (called by an actor that the node's reader thread runs, that
  /// thread ends once the actor's handler returns) and its file descriptors
  /// are closed; a handle to another node's actor that lives on keeps only
  /// the segment mapped (its memory, once the last node is out) until it
  /// goes. A call while another thread is leaving returns at once. From
  /// then on, what needs the group (`publish`, `unpublish`, `lookup`,
  /// `spawn_in`, `spawn`) fails with `troupe::errc::peer_lost`. Idempotent;
  /// the destructor calls it.
  void leave();

private:
  // The hooks of troupe's own tests (a target that is not installed).
  friend struct testing::node_access;

  explicit node(std::shared_ptr<detail::core> core);

  /// The spawn server of the node with pid `where`, or of the node that
  /// published `where`.
  caf::expected<caf::actor> spawn_server_in(pid_t where);
  caf::expected<caf::actor> spawn_server_in(const std::string& where);

  /// Asks `server` for an actor of `type` made from `args`; `interface` is
  /// the handle's (checked when `check`).
  caf::expected<caf::actor> spawn_with(const caf::expected<caf::actor>& server,
                                       const std::string& type, caf::message args,
                                       std::set<std::string> interface, bool check);

  template <class Handle>
  caf::expected<Handle> spawn_through(const caf::expected<caf::actor>& server,
                                      const std::string& type, caf::message args) {
    constexpr bool dynamic = std::is_same<Handle, caf::actor>::value;
    std::set<std::string> interface;
    if (!dynamic && server)
      interface = server->home_system().message_types<Handle>();
    auto spawned = spawn_with(server, type, std::move(args), std::move(interface), !dynamic);
    if (!spawned)
      return std::move(spawned.error());
    return caf::actor_cast<Handle>(std::move(*spawned));
  }

  std::shared_ptr<detail::core> core_;
};

} // namespace troupe::ipc
