#pragma once

/// @file
/// `troupe::scoped_resource<T>`: a resource released on scope exit, on error, and when its owning
/// actor dies (Python's async context managers).

#include "troupe/error.hpp"

#include <caf/all.hpp>

#include <exception>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

namespace troupe {

/// A resource with a guaranteed release: an async context manager
/// (`async with`) for actors.
///
/// `acquire` makes the resource; `release` runs exactly once, whichever
/// comes first:
/// - `release()` is called (normal exit);
/// - the `scoped_resource` is destroyed (normal exit or an exception
///   unwinding the scope);
/// - the owning actor terminates (crash, kill, or quitting with the
///   resource still held), even if the `scoped_resource` object lives on in
///   the actor's state.
///
/// A `release` that throws is reported: `release()` returns
/// `errc::task_failed`; on destruction or the owner's death it is printed
/// on stderr, since nobody is there to receive it.
template <class T>
class scoped_resource {
public:
  /// Releases the resource (closes the connection, ...); called once.
  using release_fn = std::function<void(T&)>;

  /// Acquires the resource for `owner`; an `acquire` that throws yields
  /// `errc::start_failed` and nothing is held.
  template <class Acquire>
  [[nodiscard]] static caf::expected<scoped_resource> make(caf::local_actor* owner, Acquire acquire,
                                                           release_fn release) {
    auto st = std::make_shared<state>();
    try {
      st->resource.emplace(acquire());
    } catch (const std::exception& ex) {
      return make_error(errc::start_failed, ex.what());
    } catch (...) {
      return make_error(errc::start_failed, "non-standard exception");
    }
    st->release = std::move(release);
    if (owner != nullptr) {
      // Weak, and detached again on release: a long-lived owner does not
      // pile up the states of resources it released long ago.
      owner->attach(caf::attachable_ptr{new on_owner_exit(st)});
      st->owner = caf::actor_cast<caf::weak_actor_ptr>(owner);
    }
    return scoped_resource{std::move(st)};
  }

  /// Moves the resource; the moved-from object holds nothing.
  scoped_resource(scoped_resource&&) noexcept = default;
  /// Releases the resource this object holds (a throwing `release` is
  /// reported on stderr), then takes over `other`'s.
  scoped_resource& operator=(scoped_resource&& other) noexcept {
    if (this != &other) {
      if (st_)
        report(st_->release_once());
      st_ = std::move(other.st_);
    }
    return *this;
  }
  scoped_resource(const scoped_resource&) = delete;
  scoped_resource& operator=(const scoped_resource&) = delete;

  ~scoped_resource() {
    if (st_)
      report(st_->release_once());
  }

  /// The resource. Precondition: `held()`.
  T& get() {
    return *st_->resource;
  }

  /// Member access to the resource. Precondition: `held()`.
  T* operator->() {
    return &get();
  }

  /// Whether the resource is still held.
  [[nodiscard]] bool held() const {
    if (!st_)
      return false;
    std::lock_guard<std::mutex> guard{st_->mtx};
    return st_->resource.has_value();
  }

  /// Releases now; harmless if already released.
  caf::error release() {
    return st_ ? st_->release_once() : caf::error{};
  }

private:
  struct state {
    std::mutex mtx;
    std::optional<T> resource;
    release_fn release;
    caf::weak_actor_ptr owner;

    caf::error release_once() {
      std::optional<T> taken;
      {
        std::lock_guard<std::mutex> guard{mtx};
        if (!resource)
          return {};
        taken = std::move(resource);
        resource.reset();
      }
      if (auto strong = owner.lock())
        strong->get()->detach(caf::attachable::token{token_type, this});
      try {
        if (release)
          release(*taken);
      } catch (const std::exception& ex) {
        return make_error(errc::task_failed, std::string{"release failed: "} + ex.what());
      } catch (...) {
        return make_error(errc::task_failed, "release failed: non-standard exception");
      }
      return {};
    }
  };

  /// Runs the release when the owner terminates.
  class on_owner_exit final : public caf::attachable {
  public:
    explicit on_owner_exit(const std::shared_ptr<state>& st) : st_(st), key_(st.get()) {}

    void actor_exited(const caf::error&, caf::execution_unit*) override {
      if (auto st = st_.lock())
        report(st->release_once());
    }

    bool matches(const token& what) override {
      return what.subtype == token_type && what.ptr == key_;
    }

  private:
    std::weak_ptr<state> st_;
    const void* key_;
  };

  /// Tells our attachables from CAF's own kinds (0 to 3).
  static constexpr std::size_t token_type = 0x7472;

  static void report(const caf::error& err) {
    if (err)
      std::cerr << "[troupe] scoped_resource: " << describe(err) << '\n';
  }

  explicit scoped_resource(std::shared_ptr<state> st) : st_(std::move(st)) {}

  std::shared_ptr<state> st_;
};

} // namespace troupe
