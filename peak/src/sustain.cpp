// Compute ceilings at the power/thermal steady state (see steady_state() in logic.cpp): the call runs
// back to back, two batches queued at all times so the GPU never idles, NVML sampled after each
// batch; then the core's Timer measures it while the power sampler runs.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "aipe/check.hpp"
#include "internal.hpp"

namespace aipe::peak {

Sustained measure_sustained(Run& run, const std::function<void(cudaStream_t)>& launch, double launch_ms) {
  SteadyCriterion crit;
  crit.max_s = run.opt.quick ? 4.0 : 10.0;
  Sustained out;
  std::string why;
  const PowerReader reader = nvml_power_reader(run.dev, &why);
  // ~50 ms per batch: short enough to sample the clock often, long enough that the launch queue
  // never drains between two host wake-ups.
  const int per_batch = std::max(1, static_cast<int>(50.0 / std::max(launch_ms, 1e-3)));
  Event done[2] = {Event(cudaEventDisableTiming), Event(cudaEventDisableTiming)};
  auto batch = [&](int i) {
    for (int k = 0; k < per_batch; ++k) launch(run.stream);
    AIPE_CUDA(cudaEventRecord(done[i % 2], run.stream));
  };
  std::vector<TimedSample> samples;
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  batch(0);
  for (int i = 1;; ++i) {
    batch(i);                                            // keep one batch queued behind the running one
    AIPE_CUDA(cudaEventSynchronize(done[(i - 1) % 2]));  // the previous batch has finished
    const double t = elapsed();
    if (!reader) {
      if (t >= crit.min_s) break;
      continue;
    }
    if (const auto s = reader()) samples.push_back({t, s->sm_mhz, s->power_w});
    out.state = steady_state(samples, crit);
    if (out.state != Steadiness::warming) break;
  }
  AIPE_CUDA(cudaStreamSynchronize(run.stream));
  out.warmup_s = elapsed();
  char b[160];
  if (!reader) {
    std::snprintf(b, sizeof b, "fixed %.1f s warm-up (NVML unavailable: %s)", out.warmup_s, why.c_str());
    out.state = Steadiness::timed_out;
  } else if (out.state == Steadiness::steady) {
    std::snprintf(b, sizeof b, "steady after %.1f s", out.warmup_s);
  } else {
    std::snprintf(b, sizeof b, "not steady after %.1f s (clock or power still moving)", out.warmup_s);
  }
  out.note = b;
  PowerSampler sampler(reader);
  sampler.start();
  out.median_ms = run.median_ms(launch);
  if (const auto p = sampler.stop()) out.sm_mhz = p->sm_mhz, out.power_w = p->power_w;
  return out;
}

void set_sustained(Row& r, const Sustained& s, double work, double burst_ms) {
  r.value = tflops(work, s.median_ms);
  r.burst = tflops(work, burst_ms);
  r.sm_mhz = std::round(s.sm_mhz);
  r.power_w = std::round(s.power_w * 10) / 10;
  r.config += "; sustained: " + s.note;
  r.extra["median_ms"] = s.median_ms;
  r.extra["burst_median_ms"] = burst_ms;
  r.extra["warmup_s"] = std::round(s.warmup_s * 100) / 100;
  r.extra["steady"] = s.state == Steadiness::steady ? 1 : 0;
}

}  // namespace aipe::peak
