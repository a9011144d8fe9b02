// The work model: the fewest bytes that must cross DRAM and the FLOPs one run performs. From these
// come GB/s, TFLOP/s, arithmetic intensity and the position under the roofline.
#pragma once
#include "aipe/device.hpp"

namespace aipe {

struct Work {
  double bytes = 0;   // bytes read + bytes written, each input read once, each output written once
  double flops = 0;   // floating-point (or integer, for int8) operations; an FMA counts 2
  ComputeUnit unit = ComputeUnit::none;  // which peak the FLOPs are judged against

  double intensity() const { return bytes > 0 ? flops / bytes : 0; }
};

struct Rates {
  double gbps = 0;     // 1e9 bytes / s
  double tflops = 0;   // 1e12 FLOP / s
  // Attained / roofline bound for this work: min(peak compute, intensity x peak bandwidth).
  // 0 when the ceiling is unknown.
  double pct_of_roofline = 0;
  const char* bound = "";  // "memory" or "compute": which roof sits above the point
};

// `dram_gbps` and `compute_tflops` are the ceilings to judge against (spec or measured).
Rates rates_for(const Work& w, double seconds, double dram_gbps, double compute_tflops);

}  // namespace aipe
