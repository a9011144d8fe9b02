// ch11/cross_stream_events: expressing a dependency between streams with events, not a device-wide sync.
//
// Problem: `rounds` rounds of a diamond. Each round, two independent branches read x:
//   a = F(x) (iterate v <- fmaf(v, 0.75, 0.25 + x/8) `iters` times),  b = G(x) (v <- fmaf(v, 0.5, x/4)),
// and a join writes x' = (a + b) / 2, which the next round reads. Each branch is a small kernel (a few
// dozen blocks: a small-batch layer) that fills only part of the GPU, so the two branches gain by running
// side by side. Output: x after the last round (x0 is the input, re-read every run).
//
// Ladder (same kernels, same order of arithmetic):
//   1 serial       one stream: F, G, join in turn. No concurrency, no synchronization.
//   2 device_sync  F and G on two streams, then cudaDeviceSynchronize() before the join: correct, the
//                  branches overlap, but the host waits for the device and the queue drains every round.
//   3 events       F on stream 1, G on stream 2; G records an event that stream 1 waits on before the
//                  join; the next round's G waits on the join's event. The host never waits: the whole
//                  DAG is queued at once and the GPU resolves the dependencies.
// device_sync synchronizes the host, so it is timed from an idle stream (blocking = false); for a fair
// comparison the other two rungs are timed the same way. Metric: `us_per_round`.
//
// Reference: the same float operations in the same order on the CPU (fmaf <-> std::fma, explicit
// round-to-nearest adds and multiplies; aipe::iterate_exact stops once the float sequence is periodic): exact
// match expected. Both branches converge to fixed points that depend on x (1 + x/2 and x/2). The intermediate buffers a and b are
// poisoned before each verification too, so a join that runs before its branch finished reads NaN.
// Napkin math: minimum DRAM traffic 8n bytes (x0 read, x written); flops = rounds * n * (4 iters + 2).
// At the defaults a branch is 64 blocks of 4 warps (one warp per scheduler on 64 SMs), so each step waits
// out the FMA latency: 8192 steps x 4 cycles ~ 17 us per branch at 1.98 GHz, long enough that the GPU,
// not the host's enqueue, sets the pace, and two branches side by side use 128 of the 132 SMs.
// Serial ~ 2 x 17 us per round; with events ~ 17 us; device_sync adds a host round trip per round.
#include <cuda_runtime.h>

#include <cmath>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"
#include "aipe/verify.hpp"

namespace {

constexpr int kThreads = 128;

// Branch F: v <- 0.75 v + (0.25 + x/8); branch G: v <- 0.5 v + x/4. Both are contractions: bounded.
__host__ __device__ inline float branch_step(float v, float x, bool f) {
#if defined(__CUDA_ARCH__)
  return f ? fmaf(v, 0.75f, __fadd_rn(0.25f, __fmul_rn(x, 0.125f))) : fmaf(v, 0.5f, __fmul_rn(x, 0.25f));
#else
  return f ? std::fma(v, 0.75f, 0.25f + x * 0.125f) : std::fma(v, 0.5f, x * 0.25f);
#endif
}

__global__ void branch_kernel(const float* __restrict__ x, float* __restrict__ out, int n, int iters, bool f) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float xi = x[i];
  float v = xi;
  for (int k = 0; k < iters; ++k) v = branch_step(v, xi, f);
  out[i] = v;
}

__global__ void join_kernel(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ x, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] = __fmul_rn(__fadd_rn(a[i], b[i]), 0.5f);
}

class CrossStreamEvents final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch11/cross_stream_events",
            "Cross-stream dependencies: events instead of device-wide synchronization",
            "Two independent kernels on two streams can run at once, but the kernel that needs both results must "
            "wait for them. cudaDeviceSynchronize() gets that right by stopping the host until the whole GPU is "
            "idle: every round then pays a drain, a host wake-up and a fresh launch. An event recorded on one "
            "stream and waited on by another expresses exactly the one dependency that exists; the host queues "
            "the whole graph of work without waiting and the GPU starts each kernel as soon as its inputs are "
            "ready.",
            {{.name = "n",
              .def = 8192,
              .quick = 8192,
              .small = 3001,
              .help = "elements per branch kernel (a few dozen blocks: a partial wave)",
              .max = 1 << 26},
             {.name = "iters",
              .def = 8192,
              .quick = 8192,
              .small = 37,
              .help = "dependent steps per element in each branch",
              .max = 1 << 20},
             {.name = "rounds", .def = 16, .quick = 16, .small = 5, .help = "diamond rounds per run", .max = 100000}},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    auto per_round = [this](double median_ms, std::map<std::string, double>& out) {
      out["us_per_round"] = 1e3 * median_ms / rounds_;
    };
    return {{.name = "serial",
             .summary = "one stream: branch F, branch G, join, in turn",
             .launch = [this](cudaStream_t s) { serial(s); },
             .blocking = false,
             .metrics = per_round},
            {.name = "device_sync",
             .summary = "branches on two streams, cudaDeviceSynchronize before each join",
             .launch = [this](cudaStream_t s) { device_sync(s); },
             .blocking = false,
             .metrics = per_round},
            {.name = "events",
             .summary = "branches on two streams, the join waits on an event: the host never waits",
             .launch = [this](cudaStream_t s) { events(s); },
             .blocking = false,
             .metrics = per_round}};
  }

  void setup(aipe::Context& ctx) override {
    n_ = static_cast<int>(ctx.size("n"));
    iters_ = static_cast<int>(ctx.size("iters"));
    rounds_ = static_cast<int>(ctx.size("rounds"));
    const std::uint64_t sx = aipe::sub_seed(ctx.seed(), 1);
    x0_ = aipe::DeviceBuffer<float>(n_);
    x_ = aipe::DeviceBuffer<float>(n_);
    a_ = aipe::DeviceBuffer<float>(n_);
    b_ = aipe::DeviceBuffer<float>(n_);
    aipe::fill_uniform(x0_.get(), n_, sx, -1.f, 1.f, ctx.stream());
    s1_.clear();
    s1_.emplace_back();
    s1_.emplace_back();
    ev_.clear();
    for (int i = 0; i < 3; ++i) ev_.emplace_back(cudaEventDisableTiming);  // fork / branch G done / join done

    ref_.resize(n_);
    for (int i = 0; i < n_; ++i) {
      float x = aipe::uniform_at(sx, i, -1.f, 1.f);
      for (int r = 0; r < rounds_; ++r) {
        const float a = aipe::iterate_exact(x, iters_, [x](float v) { return branch_step(v, x, true); });
        const float b = aipe::iterate_exact(x, iters_, [x](float v) { return branch_step(v, x, false); });
        x = (a + b) * 0.5f;
      }
      ref_[i] = x;
    }
    ctx.output(x_.get(), x_.bytes());
    ctx.output(a_.get(), a_.bytes());
    ctx.output(b_.get(), b_.bytes());
  }

  aipe::Work work() const override {
    return {8.0 * n_, static_cast<double>(rounds_) * n_ * (4.0 * iters_ + 2.0), aipe::ComputeUnit::fp32};
  }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    std::vector<float> out = aipe::to_host(x_, ctx.stream());
    return aipe::compare(std::span<const float>(out), std::span<const float>(ref_), aipe::tolerance_for(aipe::DType::f32));
  }

 private:
  unsigned blocks() const { return static_cast<unsigned>((n_ + kThreads - 1) / kThreads); }
  // Round r reads x0 (r == 0) or x.
  const float* src(int r) const { return r == 0 ? x0_.get() : x_.get(); }

  void branch(cudaStream_t s, int r, bool f) {
    branch_kernel<<<blocks(), kThreads, 0, s>>>(src(r), f ? a_.get() : b_.get(), n_, iters_, f);
    AIPE_CHECK_LAUNCH();
  }
  void join(cudaStream_t s) {
    join_kernel<<<blocks(), kThreads, 0, s>>>(a_.get(), b_.get(), x_.get(), n_);
    AIPE_CHECK_LAUNCH();
  }

  void serial(cudaStream_t s) {
    for (int r = 0; r < rounds_; ++r) {
      branch(s, r, true);
      branch(s, r, false);
      join(s);
    }
  }

  void device_sync(cudaStream_t s) {
    AIPE_CUDA(cudaDeviceSynchronize());  // whatever was queued before (inputs, poison) is done
    for (int r = 0; r < rounds_; ++r) {
      branch(s1_[0], r, true);
      branch(s1_[1], r, false);
      AIPE_CUDA(cudaDeviceSynchronize());  // both branches done, and everything else on the device too
      join(s1_[0]);
    }
    AIPE_CUDA(cudaDeviceSynchronize());
  }

  void events(cudaStream_t s) {
    cudaStream_t f = s1_[0], g = s1_[1];
    AIPE_CUDA(cudaEventRecord(ev_[0], s));  // fork from the timed stream
    AIPE_CUDA(cudaStreamWaitEvent(f, ev_[0], 0));
    AIPE_CUDA(cudaStreamWaitEvent(g, ev_[0], 0));
    for (int r = 0; r < rounds_; ++r) {
      if (r > 0) AIPE_CUDA(cudaStreamWaitEvent(g, ev_[2], 0));  // G reads the previous join's x
      branch(f, r, true);
      branch(g, r, false);
      AIPE_CUDA(cudaEventRecord(ev_[1], g));
      AIPE_CUDA(cudaStreamWaitEvent(f, ev_[1], 0));  // the join needs b
      join(f);
      AIPE_CUDA(cudaEventRecord(ev_[2], f));
    }
    AIPE_CUDA(cudaStreamWaitEvent(s, ev_[2], 0));  // join back: the last join is after everything else
  }

  int n_ = 0, iters_ = 0, rounds_ = 0;
  aipe::DeviceBuffer<float> x0_, x_, a_, b_;
  std::vector<aipe::Stream> s1_;  // created in setup
  std::vector<aipe::Event> ev_;
  std::vector<float> ref_;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(CrossStreamEvents);
