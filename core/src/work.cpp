#include "aipe/work.hpp"

#include <algorithm>

namespace aipe {

Rates rates_for(const Work& w, double seconds, double dram_gbps, double compute_tflops) {
  Rates r;
  if (seconds <= 0) return r;
  r.gbps = w.bytes / seconds / 1e9;
  r.tflops = w.flops / seconds / 1e12;
  if (w.flops > 0 && w.unit != ComputeUnit::none) {
    // Roofline: attainable = min(compute peak, intensity x bandwidth).
    const double mem_roof = w.bytes > 0 ? w.intensity() * dram_gbps / 1e3 : 0;  // TFLOP/s
    double roof = compute_tflops;
    r.bound = "compute";
    if (w.bytes > 0 && dram_gbps > 0 && (compute_tflops <= 0 || mem_roof < compute_tflops)) {
      roof = mem_roof;
      r.bound = "memory";
    }
    r.pct_of_roofline = roof > 0 ? 100.0 * r.tflops / roof : 0;
  } else if (w.bytes > 0) {
    r.bound = "memory";
    r.pct_of_roofline = dram_gbps > 0 ? 100.0 * r.gbps / dram_gbps : 0;
  }
  return r;
}

}  // namespace aipe
