// Shared state of one `aipe peak` run, and the measurement groups (run.cpp, gemm.cpp). Internal.
#pragma once
#include <functional>
#include <string>

#include "aipe/buffer.hpp"
#include "aipe/measure.hpp"
#include "aipe/peak.hpp"
#include "aipe/power.hpp"
#include "aipe/sysinfo.hpp"

namespace aipe::peak {

struct Run {
  const Options& opt;
  Report& rep;
  const DeviceInfo& dev;
  const SpecPeaks& spec;
  GpuSystemInfo sys;
  Stream& stream;
  Timer& timer;
  StopCriteria crit;

  void progress(const std::string& what) const {
    if (opt.progress) opt.progress("aipe peak: " + what);
  }
  // Median milliseconds of one launch, through the core's Timer (warm-up, events, median;
  // standard = L2 flushed before each sample, hot_l2 = not flushed).
  double median_ms(const std::function<void(cudaStream_t)>& launch, Timing t = Timing::standard, bool blocking = true) {
    return timer.measure(launch, t, blocking, crit).time_ms.median;
  }
  void add(Row r) { rep.rows.push_back(std::move(r)); }
  Row skipped(const std::string& group, const std::string& name, const std::string& what, const std::string& unit,
              const std::string& why) const {
    Row r;
    r.group = group;
    r.name = name;
    r.what = what;
    r.unit = unit;
    r.skipped = true;
    r.reason = why;
    return r;
  }
};

void measure_tensor(Run& run);  // gemm.cpp

// A compute ceiling as the GPU sustains it (sustain.cpp): `launch` runs back to back while NVML is
// sampled until steady_state() says the clock and power have settled (or the cap), then the Timer
// measures it with the power sampler running. launch_ms: a burst timing of one launch, to size the
// batches. Where NVML is unavailable the warm-up is the criterion's min_s, and the note says so.
struct Sustained {
  double median_ms = 0;
  double sm_mhz = 0, power_w = 0;  // 0 = unknown
  double warmup_s = 0;
  Steadiness state = Steadiness::warming;
  std::string note;  // "steady after 2.5 s", "not steady after 10 s", "NVML unavailable: ..."
};
Sustained measure_sustained(Run& run, const std::function<void(cudaStream_t)>& launch, double launch_ms);
// Applies a Sustained to a compute row measured in `unit` from `work` (FLOPs or ops) per launch: value
// = sustained rate, burst = the rate at burst_ms, clock and power beside it.
void set_sustained(Row& r, const Sustained& s, double work, double burst_ms);

}  // namespace aipe::peak
