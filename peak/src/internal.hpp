// Shared state of one `aipe peak` run, and the measurement groups (run.cpp, gemm.cpp). Internal.
#pragma once
#include <functional>
#include <string>

#include "aipe/buffer.hpp"
#include "aipe/measure.hpp"
#include "aipe/peak.hpp"
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

}  // namespace aipe::peak
