// What a long run watches: the resident memory, open file descriptors and
// threads of the processes it names, and what its group holds in /dev/shm,
// sampled over time; and whether any of them grew once warmed up.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

namespace troupe_soak {

/// One process's usage, from /proc; every field is -1 once it is gone.
struct process_usage {
  int64_t rss_kib = -1;
  int64_t fds = -1;
  int64_t threads = -1;
};

process_usage usage_of(pid_t pid);

/// What the kernel says `pid` is doing, for a process that should have ended
/// and did not: its state and each thread's (state, wait channel, kernel
/// stack where readable), on one line.
std::string process_condition(pid_t pid);

/// Every /dev/shm entry of `group`: its segment and its values and arrays.
std::vector<std::string> shm_leftovers(const std::string& group);

/// KiB allocated in /dev/shm for `troupe.<group>` and its values and arrays.
int64_t shm_usage_kib(const std::string& group);

/// How one series moved after the warm-up: the medians of its first and last
/// fifths, and its highest sample.
struct growth {
  std::string series;
  double baseline = 0;
  double final = 0;
  double highest = 0;

  /// `final / baseline - 1`: 0.1 is ten per cent of growth.
  double ratio() const {
    return baseline > 0 ? final / baseline - 1 : (final > 0 ? 1.0 : 0.0);
  }
};

/// Rows of samples of named processes and of one group's /dev/shm usage.
class usage_log {
public:
  usage_log(std::vector<std::pair<std::string, pid_t>> processes, std::string group);

  /// Takes one row, at `seconds` since the start of the run.
  void sample(double seconds);

  /// The rows as CSV: `seconds,shm_kib,<name>_rss_kib,<name>_fds,<name>_threads,...`.
  std::string csv() const;

  /// Writes `csv()` to `path` (nothing when it is empty); false when it cannot.
  bool write_csv(const std::string& path) const;

  /// Each series' growth, judged from the samples taken after `warm_up`
  /// seconds; empty when fewer than two samples were taken after it.
  std::vector<growth> growth_after(double warm_up) const;

  size_t rows() const {
    return times_.size();
  }

private:
  std::vector<std::pair<std::string, pid_t>> processes_;
  std::string group_;
  std::vector<std::string> names_;           // one per column after `seconds`
  std::vector<double> times_;                // one per row
  std::vector<std::vector<int64_t>> values_; // [row][column]
};

/// Prints each series' growth after `warm_up` seconds to `out`; returns a
/// problem for each that grew by more than 10%, or one when too few samples
/// were taken after the warm-up to judge.
std::vector<std::string> check_growth(const usage_log& log, double warm_up, std::ostream& out);

} // namespace troupe_soak
