#include "report.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>

namespace troupe_bench {

namespace {

struct csv_state {
  std::ofstream out;
  std::string path;
  std::string suite;
  std::map<std::string, std::vector<double>> samples;
};

std::unique_ptr<csv_state> csv;

/// The percentiles a distribution is written at: fine in the tail.
std::vector<double> percentiles() {
  std::vector<double> ps;
  for (int p = 1; p <= 99; ++p)
    ps.push_back(p);
  for (double p : {99.5, 99.9, 100.0})
    ps.push_back(p);
  return ps;
}

} // namespace

bool open_csv(const std::string& path, const std::string& suite) {
  auto st = std::make_unique<csv_state>();
  st->out.open(path, std::ios::trunc);
  if (!st->out)
    return false;
  st->path = path;
  st->suite = suite;
  st->out << "kind,name,value,unit\n";
  csv = std::move(st);
  return true;
}

void report(const std::string& name, double value, const std::string& unit) {
  std::cout << name << ' ' << value << ' ' << unit << std::endl;
  if (csv)
    csv->out << csv->suite << ',' << name << ',' << value << ',' << unit << '\n';
}

void report_na(const std::string& name) {
  std::cout << name << " n/a" << std::endl;
}

void keep_samples(const std::string& name, const std::vector<double>& us) {
  if (csv) {
    auto& all = csv->samples[name];
    all.insert(all.end(), us.begin(), us.end());
  }
}

bool close_csv() {
  if (!csv)
    return true;
  for (auto& [name, xs] : csv->samples) {
    if (xs.empty())
      continue;
    std::sort(xs.begin(), xs.end());
    for (auto p : percentiles()) {
      // Nearest rank.
      auto rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(xs.size())));
      auto x = xs[std::min(xs.size() - 1, rank == 0 ? 0 : rank - 1)];
      csv->out << "dist," << name << ',' << p << ',' << x << '\n';
    }
  }
  csv->out.flush();
  bool ok = static_cast<bool>(csv->out);
  if (!ok)
    std::cerr << "troupe-bench: cannot write " << csv->path << '\n';
  csv.reset();
  return ok;
}

} // namespace troupe_bench
