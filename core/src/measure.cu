#include <chrono>
#include <cmath>

#include "aipe/measure.hpp"

namespace aipe {

namespace {

// Spins until the host sets flags[0], or until timeout_ns of device global time pass (then sets
// flags[1] so the host knows the sample is not trustworthy). One thread: occupies one SM slot only.
__global__ void spin_until_released(volatile int* flags, unsigned long long timeout_ns) {
  unsigned long long start;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
  while (flags[0] == 0) {
    unsigned long long now;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    if (now - start > timeout_ns) {
      flags[1] = 1;
      break;
    }
    __nanosleep(200);
  }
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

L2Flush::L2Flush(std::uint64_t l2_bytes) : buf_(std::max<std::uint64_t>(2 * l2_bytes, 1 << 20)) {}

void L2Flush::flush(cudaStream_t s) { AIPE_CUDA(cudaMemsetAsync(buf_.get(), 0, buf_.bytes(), s)); }

BlockingKernel::BlockingKernel() : flags_(2, cudaHostAllocMapped) {
  flags_[0] = 0;
  flags_[1] = 0;
  AIPE_CUDA(cudaHostGetDevicePointer(reinterpret_cast<void**>(&dflags_), flags_.get(), 0));
}

void BlockingKernel::block(cudaStream_t s, double timeout_s) {
  flags_[0] = 0;
  flags_[1] = 0;
  spin_until_released<<<1, 1, 0, s>>>(dflags_, static_cast<unsigned long long>(timeout_s * 1e9));
  AIPE_CHECK_LAUNCH();
}

void BlockingKernel::release() {
  reinterpret_cast<volatile int*>(flags_.get())[0] = 1;
}

bool BlockingKernel::timed_out() const { return reinterpret_cast<volatile int*>(flags_.get())[1] != 0; }

Timer::Timer(const DeviceInfo& dev, cudaStream_t stream) : stream_(stream), flush_(dev.l2_bytes) {}

double Timer::host_time_ms(const std::function<void(cudaStream_t)>& launch, cudaStream_t s) {
  const auto t0 = std::chrono::steady_clock::now();
  launch(s);
  AIPE_CUDA(cudaStreamSynchronize(s));
  return seconds_since(t0) * 1e3;
}

Measurement Timer::measure(const std::function<void(cudaStream_t)>& launch, Timing timing, bool blocking,
                           const StopCriteria& crit, bool flush_l2,
                           const std::function<void(cudaStream_t)>& prepare) {
  Measurement m;
  auto prepare_launch = [&] {
    if (prepare) prepare(stream_);
  };
  // Warm-up: one launch, then as many more as fit in ~20 ms (at most 10), so clocks ramp, caches and
  // TLBs fill and lazily loaded modules are resident before the first sample.
  {
    if (prepare) {
      prepare(stream_);
      AIPE_CUDA(cudaStreamSynchronize(stream_));  // the first launch's host time must not include prepare's work
    }
    const double t1 = host_time_ms(launch, stream_);
    m.warmup_launches = 1;
    const int more = t1 > 0 ? static_cast<int>(std::min(9.0, std::floor(20.0 / t1))) : 9;
    for (int i = 0; i < more; ++i) {
      prepare_launch();
      launch(stream_);
    }
    AIPE_CUDA(cudaStreamSynchronize(stream_));
    m.warmup_launches += static_cast<std::size_t>(more);
  }

  StoppingRule rule(crit);
  const auto t0 = std::chrono::steady_clock::now();
  while (!rule.done()) {
    double ms = 0;
    // Stream order of one sample: prepare, blocking kernel, L2 flush, start, launch, stop. Prepare is
    // first so it may synchronize the host (a blocked stream would stall it) and so the flush evicts
    // whatever it left in the L2.
    prepare_launch();
    if (timing == Timing::host_clock_no_sync) {
      if (prepare) AIPE_CUDA(cudaStreamSynchronize(stream_));  // the host clock must not see prepare's work
      // The classic mistake: the launch returns as soon as the work is queued.
      const auto a = std::chrono::steady_clock::now();
      launch(stream_);
      ms = seconds_since(a) * 1e3;
      AIPE_CUDA(cudaStreamSynchronize(stream_));
    } else {
      if (blocking) blocker_.block(stream_);
      if (timing != Timing::hot_l2 && flush_l2) flush_.flush(stream_);
      AIPE_CUDA(cudaEventRecord(start_, stream_));
      launch(stream_);
      AIPE_CUDA(cudaEventRecord(stop_, stream_));
      if (blocking) blocker_.release();
      AIPE_CUDA(cudaEventSynchronize(stop_));
      if (blocking && blocker_.timed_out()) {
        m.warning = "the blocking kernel timed out: this variant's launch synchronizes or fills the launch queue "
                    "(mark it blocking = false); its samples include host enqueue time";
      }
      float f = 0;
      AIPE_CUDA(cudaEventElapsedTime(&f, start_, stop_));
      ms = f;
    }
    AIPE_CHECK_LAUNCH();
    rule.add(ms, seconds_since(t0));
  }
  m.samples_ms = rule.samples();
  m.time_ms = summarize(m.samples_ms);
  m.stop_reason = rule.reason();
  return m;
}

}  // namespace aipe
