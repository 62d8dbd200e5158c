#include "usage_log.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <iomanip>
#include <ostream>
#include <sstream>

namespace troupe_soak {

namespace {

/// Entries of a directory, without `.` and `..`; -1 when it cannot be read.
int64_t entries_of(const std::string& dir) {
  auto* d = ::opendir(dir.c_str());
  if (d == nullptr)
    return -1;
  int64_t n = 0;
  while (auto* e = ::readdir(d))
    n += e->d_name[0] != '.';
  ::closedir(d);
  return n;
}

double median(std::vector<double> xs) {
  if (xs.empty())
    return 0;
  auto mid = xs.begin() + static_cast<std::ptrdiff_t>(xs.size() / 2);
  std::nth_element(xs.begin(), mid, xs.end());
  if (xs.size() % 2 == 1)
    return *mid;
  auto lower = *std::max_element(xs.begin(), mid);
  return (lower + *mid) / 2;
}

} // namespace

std::string process_condition(pid_t pid) {
  auto dir = "/proc/" + std::to_string(pid);
  auto first_line = [](const std::string& path) {
    std::ifstream in{path};
    std::string line;
    std::getline(in, line);
    return line;
  };
  // /proc/PID/stat: "pid (comm) S ...", the state after the last ')'.
  auto state_of = [&](const std::string& task) {
    auto stat = first_line(task + "/stat");
    auto at = stat.rfind(')');
    return at == std::string::npos || at + 2 >= stat.size() ? std::string{"?"}
                                                            : stat.substr(at + 2, 1);
  };
  if (state_of(dir) == "?")
    return "gone from /proc";
  std::ostringstream out;
  out << "state " << state_of(dir);
  auto* d = ::opendir((dir + "/task").c_str());
  if (d == nullptr)
    return out.str();
  while (auto* e = ::readdir(d)) {
    if (e->d_name[0] == '.')
      continue;
    auto task = dir + "/task/" + e->d_name;
    out << "; thread " << e->d_name << " (" << first_line(task + "/comm") << ") " << state_of(task)
        << " in " << first_line(task + "/wchan");
    std::ifstream stack{task + "/stack"};
    std::string frame;
    for (int n = 0; n < 4 && std::getline(stack, frame); ++n)
      out << (n == 0 ? " [" : " < ") << frame.substr(frame.find(' ') + 1);
    if (!frame.empty())
      out << ']';
  }
  ::closedir(d);
  return out.str();
}

process_usage usage_of(pid_t pid) {
  process_usage res;
  auto dir = "/proc/" + std::to_string(pid);
  std::ifstream status{dir + "/status"};
  std::string line;
  int64_t rss = -1;
  int64_t threads = -1;
  while (std::getline(status, line)) {
    std::istringstream in{line};
    std::string key;
    in >> key;
    if (key == "VmRSS:")
      in >> rss;
    else if (key == "Threads:")
      in >> threads;
  }
  auto fds = entries_of(dir + "/fd");
  // A zombie has a status but no memory and no descriptors: count it as gone.
  if (rss < 0 || threads < 0 || fds < 0)
    return res;
  res.rss_kib = rss;
  res.fds = fds;
  res.threads = threads;
  return res;
}

std::vector<std::string> shm_leftovers(const std::string& group) {
  std::vector<std::string> res;
  auto segment = "troupe." + group;
  auto values = segment + ".v.";
  if (auto* d = ::opendir("/dev/shm")) {
    while (auto* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name == segment || name.rfind(values, 0) == 0)
        res.push_back(std::move(name));
    }
    ::closedir(d);
  }
  return res;
}

int64_t shm_usage_kib(const std::string& group) {
  int64_t bytes = 0;
  for (auto& name : shm_leftovers(group)) {
    struct stat st {};
    if (::stat(("/dev/shm/" + name).c_str(), &st) == 0)
      bytes += static_cast<int64_t>(st.st_blocks) * 512;
  }
  return bytes / 1024;
}

usage_log::usage_log(std::vector<std::pair<std::string, pid_t>> processes, std::string group)
  : processes_(std::move(processes)), group_(std::move(group)) {
  names_.push_back("shm_kib");
  for (auto& [name, pid] : processes_)
    for (auto what : {"_rss_kib", "_fds", "_threads"})
      names_.push_back(name + what);
}

void usage_log::sample(double seconds) {
  std::vector<int64_t> row;
  row.push_back(shm_usage_kib(group_));
  for (auto& [name, pid] : processes_) {
    auto u = usage_of(pid);
    row.insert(row.end(), {u.rss_kib, u.fds, u.threads});
  }
  times_.push_back(seconds);
  values_.push_back(std::move(row));
}

std::string usage_log::csv() const {
  std::ostringstream out;
  out << "seconds";
  for (auto& n : names_)
    out << ',' << n;
  out << '\n' << std::fixed << std::setprecision(1);
  for (size_t r = 0; r < times_.size(); ++r) {
    out << times_[r];
    for (auto x : values_[r])
      out << ',' << x;
    out << '\n';
  }
  return out.str();
}

bool usage_log::write_csv(const std::string& path) const {
  if (path.empty())
    return true;
  std::ofstream out{path};
  out << csv();
  return static_cast<bool>(out.flush());
}

std::vector<growth> usage_log::growth_after(double warm_up) const {
  std::vector<size_t> rows;
  for (size_t r = 0; r < times_.size(); ++r)
    if (times_[r] >= warm_up)
      rows.push_back(r);
  std::vector<growth> res;
  if (rows.size() < 2)
    return res;
  // A fifth of the samples at each end, so that one outlier (a sample taken
  // while a chaos victim's pidfd was open) moves neither median.
  auto fifth = std::max<size_t>(1, rows.size() / 5);
  for (size_t c = 0; c < names_.size(); ++c) {
    std::vector<double> first;
    std::vector<double> last;
    growth g;
    g.series = names_[c];
    for (size_t i = 0; i < rows.size(); ++i) {
      auto x = static_cast<double>(values_[rows[i]][c]);
      g.highest = std::max(g.highest, x);
      if (i < fifth)
        first.push_back(x);
      if (i >= rows.size() - fifth)
        last.push_back(x);
    }
    g.baseline = median(std::move(first));
    g.final = median(std::move(last));
    res.push_back(std::move(g));
  }
  return res;
}

std::vector<std::string> check_growth(const usage_log& log, double warm_up, std::ostream& out) {
  std::vector<std::string> problems;
  auto gs = log.growth_after(warm_up);
  if (gs.empty())
    problems.push_back("fewer than two samples after the warm-up: no growth to judge");
  out << std::fixed << std::setprecision(0) << "growth after " << warm_up
      << " s of warm-up (medians of the first and last fifths of the samples):\n";
  for (auto& g : gs) {
    auto pct = 100 * g.ratio();
    out << std::setprecision(0) << "  " << std::left << std::setw(24) << g.series << std::right
        << std::setw(10) << g.baseline << " -> " << std::setw(10) << g.final << " (highest "
        << g.highest << ")  " << std::showpos << std::setprecision(1) << pct << std::noshowpos
        << "%\n";
    if (g.ratio() > 0.10) {
      std::ostringstream what;
      what << std::fixed << std::setprecision(1) << g.series << " grew by " << pct
           << "% after the warm-up";
      problems.push_back(what.str());
    }
  }
  out.flush();
  return problems;
}

} // namespace troupe_soak
