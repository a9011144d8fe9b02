// `aipe compare OLD NEW`: per example x variant, how the median time changed, and whether the change
// is real. A change counts only when it is beyond both the threshold and the measured noise of the
// two runs (noise_factor x sqrt(noise_old^2 + noise_new^2), each noise being the relative standard
// deviation the harness recorded). A slower rung beyond both, or a rung that passed before and fails
// now, is a regression: the CI gate's exit code 1.
#pragma once
#include <ostream>
#include <string>
#include <vector>

#include "aipe/report.hpp"

namespace aipe::profile {

struct CompareOptions {
  double threshold_pct = 5.0;  // smallest change that counts, in percent of the old median
  double noise_factor = 2.0;   // how many combined noise standard deviations a change must exceed
};

enum class Verdict {
  unchanged,    // within threshold or noise
  faster,       // an improvement beyond both
  slower,       // a regression beyond both
  now_failing,  // passed before, fails now: a regression
  now_passing,  // failed before, passes now
  not_timed,    // either side has no honest timing (skipped, verify-only, a deliberately wrong timing)
  sizes_differ, // the problem sizes differ: not comparable
  only_old,     // rung missing from the new results
  only_new,
};
const char* to_string(Verdict v);

struct Change {
  std::string example, variant;
  double old_ms = 0, new_ms = 0;
  double change_pct = 0;      // (new - old) / old, percent: positive = slower
  double noise_pct = 0;       // combined noise bound that the change had to exceed, percent
  Verdict verdict = Verdict::unchanged;
  bool regression() const { return verdict == Verdict::slower || verdict == Verdict::now_failing; }
};

struct Comparison {
  std::vector<Change> changes;
  int regressions() const;
  int improvements() const;
  // Geometric mean of new/old over the rungs timed in both (1.0 when none).
  double geomean_ratio = 1.0;
  int n_timed = 0;
  std::string device_note;  // set when the two reports come from different GPUs
};

Comparison compare(const RunReport& old_run, const RunReport& new_run, const CompareOptions& o = {});
void write_comparison(std::ostream& os, const Comparison& c, const CompareOptions& o);

}  // namespace aipe::profile
