#include "aipe/stats.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace aipe {

double percentile_sorted(const std::vector<double>& s, double q) {
  if (s.empty()) throw std::invalid_argument("percentile of no samples");
  if (s.size() == 1) return s[0];
  const double pos = q * static_cast<double>(s.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, s.size() - 1);
  const double f = pos - static_cast<double>(lo);
  return s[lo] + (s[hi] - s[lo]) * f;
}

Summary summarize(std::vector<double> v) {
  if (v.empty()) throw std::invalid_argument("summarize: no samples");
  std::sort(v.begin(), v.end());
  Summary s;
  s.n = v.size();
  s.min = v.front();
  s.max = v.back();
  s.median = percentile_sorted(v, 0.5);
  s.p10 = percentile_sorted(v, 0.1);
  s.p90 = percentile_sorted(v, 0.9);
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  if (v.size() > 1) {
    double ss = 0;
    for (double x : v) ss += (x - s.mean) * (x - s.mean);
    s.stdev = std::sqrt(ss / static_cast<double>(v.size() - 1));
    s.noise = s.mean > 0 ? s.stdev / s.mean : 0;
  }
  return s;
}

void StoppingRule::add(double sample, double elapsed_s) {
  samples_.push_back(sample);
  sum_ += sample;
  sum_sq_ += sample * sample;
  elapsed_s_ = elapsed_s;
}

double StoppingRule::current_noise() const {
  const auto n = static_cast<double>(samples_.size());
  if (samples_.size() < 2) return INFINITY;
  const double mean = sum_ / n;
  const double var = std::max(0.0, (sum_sq_ - n * mean * mean) / (n - 1));
  return mean > 0 ? std::sqrt(var) / mean : INFINITY;
}

std::string StoppingRule::reason() const {
  const std::size_t n = samples_.size();
  if (n == 0) return "";
  if (n >= c_.max_samples) return "max_samples";
  if (n >= c_.min_samples && elapsed_s_ >= c_.min_time_s && current_noise() <= c_.max_noise) return "converged";
  if (elapsed_s_ >= c_.budget_s) return "budget";
  return "";
}

bool StoppingRule::done() const { return !reason().empty(); }

}  // namespace aipe
