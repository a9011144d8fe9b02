#include "aipe/kernels/scheduler.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

namespace aipe::kernels {

SplitTailPlan plan_split_tail(int units, int workers, int ktiles, int max_splits, int min_kt) {
  if (units < 0 || workers < 1 || ktiles < 0 || min_kt < 1)
    throw std::invalid_argument("plan_split_tail: units " + std::to_string(units) + ", workers " +
                                std::to_string(workers) + ", ktiles " + std::to_string(ktiles));
  const int full = (units / workers) * workers, tail = units - full;
  int best = 1;
  double best_cost = 1.0;  // fraction of a wave the tail takes unsplit
  for (int sp = 2; tail > 0 && sp <= max_splits && sp <= ktiles / min_kt; ++sp) {  // no tail: nothing to cut
    const double cost = std::ceil(double(tail) * sp / workers) / sp;
    if (cost < best_cost - 1e-9) {
      best_cost = cost;
      best = sp;
    }
  }
  SplitTailPlan p;
  p.units = units;
  p.kt_per_split = best > 1 ? (ktiles + best - 1) / best : ktiles;
  if (best > 1) {
    p.full_units = full;
    p.splits = best;
    p.items = full + tail * best;
  } else {  // nothing worth splitting: the plain persistent schedule
    p.full_units = units;
    p.splits = 1;
    p.items = units;
  }
  return p;
}

std::vector<int> grouped_tile_begin(const std::vector<int>& ms, int n, int bm, int bn) {
  if (bm < 1 || bn < 1 || n < 0) throw std::invalid_argument("grouped_tile_begin: tile and N sizes must be positive");
  const long long tiles_n = (static_cast<long long>(n) + bn - 1) / bn;
  std::vector<int> begin(ms.size() + 1, 0);
  long long total = 0;
  for (std::size_t p = 0; p < ms.size(); ++p) {
    if (ms[p] < 0) throw std::invalid_argument("grouped_tile_begin: problem " + std::to_string(p) + " has M < 0");
    total += ((static_cast<long long>(ms[p]) + bm - 1) / bm) * tiles_n;
    if (total > 0x7fffffffll) throw std::invalid_argument("grouped_tile_begin: more tiles than an int indexes");
    begin[p + 1] = static_cast<int>(total);
  }
  return begin;
}

}  // namespace aipe::kernels
