#pragma once

// Where troupe-bench's figures go: `name value unit` lines on stdout, and,
// with `--csv FILE`, the same as rows `suite,name,value,unit` plus the
// distribution of the round-trip samples kept with `keep_samples`, as rows
// `dist,name,percentile,us` (tools/bench-plots.sh draws them with gnuplot).

#include <string>
#include <vector>

namespace troupe_bench {

/// Sends the figures of `suite` to `path` too; false if it cannot be written.
bool open_csv(const std::string& path, const std::string& suite);

/// Prints a figure (and writes its row).
void report(const std::string& name, double value, const std::string& unit);

/// Prints a figure that could not be measured (`name n/a`).
void report_na(const std::string& name);

/// Keeps the samples (in µs) of a round-trip figure for its distribution;
/// the samples of several calls with one name add up.
void keep_samples(const std::string& name, const std::vector<double>& us);

/// Writes the distributions and closes the file; reports a write error.
bool close_csv();

} // namespace troupe_bench
