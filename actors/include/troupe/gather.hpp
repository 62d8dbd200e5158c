#pragma once

/// @file
/// `troupe::gather`: several requests at once, their answers in argument order (Python's
/// `asyncio.gather`).

#include "troupe/error.hpp"
#include "troupe/timeout.hpp"

#include <caf/all.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace troupe {

/// One request of a `gather`: a receiver and the message it gets.
struct call {
  /// The actor that gets the request.
  caf::actor to;
  /// The request's content.
  caf::message msg;
};

/// Makes the call `to(xs...)`.
template <class... Ts>
call ask(caf::actor to, Ts&&... xs) {
  return call{std::move(to), caf::make_message(std::forward<Ts>(xs)...)};
}

/// `asyncio.gather` for actors. Two modes: **collect all** (`gather`,
/// `gather_then`) gives every call its outcome, value or error, in argument
/// order; **first error** (`gather_values`, `gather_then_values`) gives the
/// values in argument order or the first error to happen, ignoring later
/// answers. All calls are sent at once, so they overlap, and share one
/// `timeout`: a call not answered by then yields `errc::timeout`. Answers
/// must be of type `T`.

/// Collect-all gather from event-based actor `self`: once every call
/// answered, calls `on_done(std::vector<caf::expected<T>>)` in `self`'s
/// context. (In CAF 0.17 a finite request timeout keeps `self` alive until
/// it fires, even after the answer.)
template <class T, class Self, class OnDone>
void gather_then(Self* self, std::vector<call> calls, OnDone on_done,
                 caf::timespan timeout = forever) {
  struct state {
    std::vector<std::optional<caf::expected<T>>> outcomes;
    std::size_t pending = 0;
    OnDone done;
  };
  auto st = std::make_shared<state>(state{{}, calls.size(), std::move(on_done)});
  st->outcomes.resize(calls.size());
  auto finish = [st] {
    std::vector<caf::expected<T>> results;
    results.reserve(st->outcomes.size());
    for (auto& x : st->outcomes)
      results.push_back(std::move(*x));
    st->done(std::move(results));
  };
  if (calls.empty()) {
    finish();
    return;
  }
  for (std::size_t i = 0; i < calls.size(); ++i) {
    auto record = [st, i, finish](caf::expected<T> outcome) mutable {
      st->outcomes[i] = std::move(outcome);
      if (--st->pending == 0)
        finish();
    };
    self->request(calls[i].to, detail::to_duration(timeout), std::move(calls[i].msg))
      .then([record](T& x) mutable { record(std::move(x)); },
            [record](caf::error& err) mutable {
              record(detail::normalize_request_error(std::move(err)));
            });
  }
}

/// `gather_then` in `first_error` mode: `on_values(std::vector<T>)` with the
/// values in argument order once all succeeded, or `on_error(caf::error)` as
/// soon as the first call fails (later answers are then ignored).
template <class T, class Self, class OnValues, class OnError>
void gather_then_values(Self* self, std::vector<call> calls, OnValues on_values, OnError on_error,
                        caf::timespan timeout = forever) {
  struct state {
    std::vector<std::optional<T>> values;
    std::size_t pending = 0;
    bool failed = false;
    OnValues values_done;
    OnError error_done;
  };
  auto st = std::make_shared<state>(
    state{{}, calls.size(), false, std::move(on_values), std::move(on_error)});
  st->values.resize(calls.size());
  auto finish = [st] {
    std::vector<T> results;
    results.reserve(st->values.size());
    for (auto& x : st->values)
      results.push_back(std::move(*x));
    st->values_done(std::move(results));
  };
  if (calls.empty()) {
    finish();
    return;
  }
  for (std::size_t i = 0; i < calls.size(); ++i) {
    self->request(calls[i].to, detail::to_duration(timeout), std::move(calls[i].msg))
      .then(
        [st, i, finish](T& x) mutable {
          if (st->failed)
            return;
          st->values[i] = std::move(x);
          if (--st->pending == 0)
            finish();
        },
        [st](caf::error& err) {
          if (std::exchange(st->failed, true))
            return;
          st->error_done(detail::normalize_request_error(std::move(err)));
        });
  }
}

namespace detail {

/// Runs `start(self, done)` in a short-lived event-based actor and blocks
/// until it calls `done()`; returns the error if that actor failed instead.
template <class Start>
caf::error run_in_actor(caf::actor_system& sys, Start start) {
  caf::scoped_actor self{sys};
  auto helper = sys.spawn([start](caf::event_based_actor* me) mutable -> caf::behavior {
    return {[me, start](caf::get_atom) mutable {
      auto rp = me->make_response_promise<caf::ok_atom>();
      start(me, [rp, me]() mutable {
        rp.deliver(caf::ok_atom::value);
        me->quit();
      });
      return rp;
    }};
  });
  caf::error result;
  self->request(helper, caf::infinite, caf::get_atom::value)
    .receive([](caf::ok_atom) {},
             [&](caf::error& err) { result = normalize_request_error(std::move(err)); });
  return result;
}

} // namespace detail

/// Blocking `gather` for threads outside actors: sends every call at once
/// and returns the outcomes in argument order (`collect_all`). Runs a
/// short-lived actor that does the gathering, so the calls overlap.
template <class T>
[[nodiscard]] std::vector<caf::expected<T>> gather(caf::actor_system& sys, std::vector<call> calls,
                                                   caf::timespan timeout = forever) {
  using outcomes = std::vector<caf::expected<T>>;
  auto result = std::make_shared<outcomes>();
  auto count = calls.size();
  auto err = detail::run_in_actor(sys, [calls = std::move(calls), timeout,
                                        result](caf::event_based_actor* me, auto done) mutable {
    gather_then<T>(
      me, std::move(calls),
      [result, done](outcomes xs) mutable {
        *result = std::move(xs);
        done();
      },
      timeout);
  });
  if (err) // the gathering actor failed: every call gets that error
    result->assign(count, caf::expected<T>{err});
  return std::move(*result);
}

/// Blocking `gather` in `first_error` mode: the values in argument order, or
/// the first error to happen.
template <class T>
[[nodiscard]] caf::expected<std::vector<T>>
gather_values(caf::actor_system& sys, std::vector<call> calls, caf::timespan timeout = forever) {
  auto result = std::make_shared<caf::expected<std::vector<T>>>(caf::error{});
  auto err = detail::run_in_actor(sys, [calls = std::move(calls), timeout,
                                        result](caf::event_based_actor* me, auto done) mutable {
    gather_then_values<T>(
      me, std::move(calls),
      [result, done](std::vector<T> xs) mutable {
        *result = std::move(xs);
        done();
      },
      [result, done](caf::error e) mutable {
        *result = std::move(e);
        done();
      },
      timeout);
  });
  if (err)
    return err;
  return std::move(*result);
}

} // namespace troupe
