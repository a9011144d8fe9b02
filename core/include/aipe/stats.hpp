// Sample statistics and the noise-based stopping rule used by every measurement.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace aipe {

struct Summary {
  std::size_t n = 0;
  double median = 0, min = 0, max = 0, mean = 0, p10 = 0, p90 = 0, stdev = 0;
  double noise = 0;  // relative standard deviation: stdev / mean (0 when fewer than 2 samples)
};

// Percentiles by linear interpolation between closest ranks. Throws on an empty input.
Summary summarize(std::vector<double> samples);
double percentile_sorted(const std::vector<double>& sorted, double q);

struct StopCriteria {
  std::size_t min_samples = 10;
  std::size_t max_samples = 5000;
  double min_time_s = 0.1;   // wall time spent sampling before the noise test may stop
  double max_noise = 0.01;   // relative stdev under which sampling stops
  double budget_s = 2.0;     // wall time after which sampling stops whatever the noise
};

// Decides when a measurement has enough samples. Deterministic: fed the same samples and
// elapsed times it stops at the same point (tested on synthetic samples).
class StoppingRule {
 public:
  explicit StoppingRule(StopCriteria c) : c_(c) {}
  void add(double sample, double elapsed_s);
  bool done() const;
  // "converged", "budget", "max_samples" or "" while not done.
  std::string reason() const;
  const std::vector<double>& samples() const { return samples_; }
  double current_noise() const;

 private:
  StopCriteria c_;
  std::vector<double> samples_;
  double sum_ = 0, sum_sq_ = 0;
  double elapsed_s_ = 0;
};

}  // namespace aipe
