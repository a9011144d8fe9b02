// Timing lives here, once. A sample is one launch of a variant between two CUDA events, queued
// behind a blocking kernel (so the host's enqueue latency is not timed) and after an L2 flush (so
// each sample starts with a cold cache, as a real pipeline stage would). Warm-up first; samples until
// the stopping rule is satisfied; the median is reported.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/example.hpp"
#include "aipe/stats.hpp"

namespace aipe {

// Evicts the L2 by writing a buffer twice its size (cudaMemsetAsync, so no kernel of ours is timed).
class L2Flush {
 public:
  explicit L2Flush(std::uint64_t l2_bytes);
  void flush(cudaStream_t s);

 private:
  DeviceBuffer<unsigned char> buf_;
};

// Holds a stream at a spin kernel until release() (or until a timeout, reported by timed_out()).
class BlockingKernel {
 public:
  BlockingKernel();
  void block(cudaStream_t s, double timeout_s = 2.0);
  void release();
  bool timed_out() const;

 private:
  PinnedBuffer<int> flags_;  // [0] release flag, [1] timed-out flag; host-mapped
  int* dflags_ = nullptr;
};

struct Measurement {
  Summary time_ms;                // per-launch time statistics (milliseconds)
  std::vector<double> samples_ms;
  std::size_t warmup_launches = 0;
  std::string stop_reason;        // converged / budget / max_samples / single
  std::string warning;            // e.g. the blocking kernel timed out
};

class Timer {
 public:
  Timer(const DeviceInfo& dev, cudaStream_t stream);
  // `prepare`, when given, runs untimed before every launch (warm-up and samples): before the
  // blocking kernel and the L2 flush, so it may synchronize and leaves nothing warm in the L2.
  Measurement measure(const std::function<void(cudaStream_t)>& launch, Timing timing, bool blocking,
                      const StopCriteria& crit, bool flush_l2 = true,
                      const std::function<void(cudaStream_t)>& prepare = {});
  // A variant as it declares itself: its launch, timing, blocking, flush and prepare.
  Measurement measure(const Variant& v, const StopCriteria& crit) {
    return measure(v.launch, v.timing, v.blocking, crit, v.flush_l2, v.prepare);
  }
  // Host-clock time of one launch + synchronize (used for Timing::first_launch on the verify run).
  static double host_time_ms(const std::function<void(cudaStream_t)>& launch, cudaStream_t s);

 private:
  cudaStream_t stream_;
  L2Flush flush_;
  BlockingKernel blocker_;
  Event start_, stop_;
};

}  // namespace aipe
