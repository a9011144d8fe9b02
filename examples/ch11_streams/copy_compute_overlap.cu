// ch11/copy_compute_overlap: hide PCIe transfers behind compute with chunks on several streams.
//
// Problem: y = f(x) for n floats that live in pinned host memory; the result must land back in pinned
// host memory. f iterates y <- a*y + b (fmaf) `iters` times per element, enough arithmetic that the
// kernel takes about as long as one direction of the PCIe transfer (the case where overlap pays most).
//
// Ladder (every rung produces the same y in host memory, except compute_only, see below):
//   1 serial       one stream: H2D all of x, one kernel, D2H all of y. Copy and compute take turns.
//   2 copy_only    the two transfers alone, H2D and D2H on two streams at once (PCIe is full duplex);
//                  the D2H reads a device copy of y computed in setup. The copy engines' floor.
//   3 compute_only the kernel alone on a device-resident x (verified on the device output). The SMs' floor.
//   4 overlap_2 .. overlap_16   x cut into C chunks; chunk k goes H2D -> kernel -> D2H on stream k % 4,
//                  so the H2D of chunk k+1, the kernel of chunk k and the D2H of chunk k-1 run at once.
//   5 overlap      the same with C from the `chunks` axis (default 32).
// The ideal of an overlapped pipeline is max(copy_only, compute_only) (plus one chunk of fill and
// drain): each overlap rung reports `ideal_ms`, `pct_of_ideal` = ideal / measured and `hidden_pct` =
// the part of the serial time above the ideal that the pipeline removed, (serial - t) / (serial - ideal).
// Multi-stream rungs fork from the timed stream with an event and join back with events, so the
// harness's events bracket the whole pipeline.
//
// Reference: the affine recurrence has the closed form y_K = c + a^K (x - c), c = b / (1 - a), evaluated
// in double. The float recurrence rounds once per step with the error damped by a <= 1, so it stays within
// K * 2^-24 * max|y| of the closed form: the tolerance is that bound (times 4), not the f32 default.
// Inputs x in [1, 2); a = 1 - 2^-12 so a^K stays far from 0 and y depends on x.
// Napkin math (defaults, n = 32 Mi): 128 MiB each way over PCIe Gen5 (~55 GB/s: ~2.4 ms per direction);
// the kernel does 2 * 2048 FLOP per element = 137 GFLOP: 2 ms at the FP32 peak, ~4.4 ms measured (the
// loop counter and branch share issue slots with the FMA; it is a stand-in for real work, not a tuned
// kernel). Serial ~ 2.4 + 4.4 + 2.4 ms; ideal ~ max(copy, compute) ~ 4.4 ms. Work model: bytes = the 2 * 4n that must cross PCIe (the binding resource; DRAM
// sees the same bytes), flops = 2 * iters * n.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"

namespace {

constexpr int kStreams = 4;  // >= 3 so that H2D, kernel and D2H of consecutive chunks can all be in flight
constexpr int kThreads = 256;

__global__ void affine_iter_kernel(const float* __restrict__ x, float* __restrict__ y, std::size_t n, float a, float b,
                                   int iters) {
  const std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  float v = x[i];
  for (int k = 0; k < iters; ++k) v = fmaf(a, v, b);  // one dependent chain per element: FP32-pipe bound
  y[i] = v;
}

class CopyComputeOverlap final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch11/copy_compute_overlap",
            "Copy/compute overlap: chunks on several streams with pinned memory",
            "A GPU has copy engines that move data over PCIe while the SMs compute, but one stream runs its "
            "H2D copy, kernel and D2H copy one after the other. Cutting the data into chunks and issuing each "
            "chunk's copy-compute-copy on its own stream (from pinned memory, so the copies are truly "
            "asynchronous) lets the three stages of consecutive chunks run at once; the run then costs about "
            "max(copy time, compute time) instead of their sum. Few chunks leave fill and drain exposed, too "
            "many pay per-operation overhead: the sweep shows where the curve flattens.",
            {{.name = "n",
              .def = 32 << 20,
              .quick = 8 << 20,
              .small = 300007,
              .help = "floats transferred each way",
              .max = 1ll << 30},
             {.name = "iters",
              .def = 2048,
              .quick = 2048,
              .small = 100,
              .help = "affine steps per element (the compute per byte)",
              .max = 1 << 20},
             {.name = "chunks",
              .def = 32,
              .quick = 32,
              .small = 7,
              .help = "chunk count of the `overlap` rung",
              .max = 4096}},
            {}};
  }


  std::vector<aipe::Variant> variants() override {
    // The copy-alone and compute-alone rungs measure the two floors of the pipeline: they give the
    // overlap rungs their ideal, and are not compared as solutions. The rungs run in this order, so
    // the floors' medians are known when an overlap rung's metrics are computed.
    std::vector<aipe::Variant> v = {
        {.name = "serial",
         .summary = "one stream: H2D, kernel, D2H in turn",
         .launch = [this](cudaStream_t s) { serial(s); },
         .metrics = [this](double ms, std::map<std::string, double>&) { serial_ms_ = ms; }},
        {.name = "copy_only",
         .summary = "the H2D and D2H transfers alone, on two streams at once: the copy floor",
         .launch = [this](cudaStream_t s) { copy_only(s); },
         .component = true,
         .metrics = [this](double ms, std::map<std::string, double>&) { copy_ms_ = ms; }},
        {.name = "compute_only",
         .summary = "the kernel alone on device-resident input: the compute floor",
         .launch = [this](cudaStream_t s) { compute_only(s); },
         .component = true,
         .metrics = [this](double ms, std::map<std::string, double>&) { compute_ms_ = ms; }},
    };
    auto vs_ideal = [this](double ms, std::map<std::string, double>& out) { overlap_metrics(ms, out); };
    for (int c : {2, 4, 8, 16})
      v.push_back({.name = "overlap_" + std::to_string(c),
                   .summary = std::to_string(c) + " chunks over " + std::to_string(kStreams) +
                              " streams: copies hide behind compute",
                   .launch = [this, c](cudaStream_t s) { overlap(s, c); },
                   .metrics = vs_ideal});
    v.push_back({.name = "overlap",
                 .summary = "chunk count from the `chunks` axis",
                 .launch = [this](cudaStream_t s) { overlap(s, chunks_); },
                 .metrics = vs_ideal});
    return v;
  }

  void setup(aipe::Context& ctx) override {
    n_ = static_cast<std::size_t>(ctx.size("n"));
    iters_ = static_cast<int>(ctx.size("iters"));
    chunks_ = static_cast<int>(ctx.size("chunks"));
    if (static_cast<std::size_t>(chunks_) > n_) throw aipe::BadInput("chunks must not exceed n");
    const std::uint64_t seed = aipe::sub_seed(ctx.seed(), 1);
    a_ = 1.0f - 1.0f / 4096.0f;
    b_ = aipe::uniform_at(ctx.seed(), 2, 0.25f, 0.5f) / 4096.0f;  // fixed point c = b / (1 - a) in [0.25, 0.5)

    h_x_ = aipe::PinnedBuffer<float>(n_);
    h_y_ = aipe::PinnedBuffer<float>(n_);
    d_x_ = aipe::DeviceBuffer<float>(n_);
    d_x_resident_ = aipe::DeviceBuffer<float>(n_);
    d_y_ = aipe::DeviceBuffer<float>(n_);
    d_y_resident_ = aipe::DeviceBuffer<float>(n_);
    aipe::fill_uniform(d_x_resident_.get(), n_, seed, 1.f, 2.f, ctx.stream());
    AIPE_CUDA(cudaMemcpyAsync(h_x_.get(), d_x_resident_.get(), n_ * sizeof(float), cudaMemcpyDeviceToHost, ctx.stream()));
    affine_iter_kernel<<<blocks(n_), kThreads, 0, ctx.stream()>>>(d_x_resident_.get(), d_y_resident_.get(), n_, a_, b_,
                                                                  iters_);
    AIPE_CHECK_LAUNCH();
    AIPE_CUDA(cudaStreamSynchronize(ctx.stream()));

    streams_.clear();
    join_.clear();
    for (int i = 0; i < kStreams; ++i) {
      streams_.emplace_back();
      join_.emplace_back(cudaEventDisableTiming);
    }
    fork_.clear();
    fork_.emplace_back(cudaEventDisableTiming);

    // Closed-form reference in double (see the header for why it is within the tolerance below).
    ref_.resize(n_);
    const double a = a_, c = static_cast<double>(b_) / (1.0 - a), aK = std::pow(a, iters_);
    for (std::size_t i = 0; i < n_; ++i) ref_[i] = c + aK * (static_cast<double>(aipe::uniform_at(seed, i, 1.f, 2.f)) - c);
    tol_ = aipe::tolerance_for(aipe::DType::f32);
    tol_.abs = std::max(tol_.abs, 4.0 * iters_ * 2.0 * std::ldexp(1.0, -24));  // K roundings of |y| < 2
    tol_.norm_rel = std::max(tol_.norm_rel, tol_.abs);

    ctx.output(h_y_.get(), h_y_.bytes());  // pinned, mapped: the runner poisons it like device memory
    ctx.output(d_y_.get(), d_y_.bytes());  // poisoned too, so a D2H that races the kernel shows NaN
  }

  aipe::Work work() const override {
    return {2.0 * 4.0 * static_cast<double>(n_), 2.0 * iters_ * static_cast<double>(n_), aipe::ComputeUnit::fp32};
  }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    std::vector<float> out(n_);
    if (ctx.variant() == "compute_only") {  // the only rung whose result stays on the device
      AIPE_CUDA(cudaMemcpyAsync(out.data(), d_y_.get(), d_y_.bytes(), cudaMemcpyDeviceToHost, ctx.stream()));
      AIPE_CUDA(cudaStreamSynchronize(ctx.stream()));
    } else {
      AIPE_CUDA(cudaStreamSynchronize(ctx.stream()));
      std::copy(h_y_.get(), h_y_.get() + n_, out.begin());
    }
    return aipe::compare(std::span<const float>(out), std::span<const double>(ref_), tol_);
  }


 private:
  // An overlap rung against the ideal max(copy floor, compute floor), where both floors were measured
  // in this run (--variant may leave them out), and the share of the serial time it hid.
  void overlap_metrics(double median_ms, std::map<std::string, double>& out) const {
    if (!copy_ms_ || !compute_ms_) return;
    const double ideal = std::max(*copy_ms_, *compute_ms_);
    out["ideal_ms"] = ideal;
    out["pct_of_ideal"] = 100.0 * ideal / median_ms;
    if (serial_ms_ && *serial_ms_ > ideal) out["hidden_pct"] = 100.0 * (*serial_ms_ - median_ms) / (*serial_ms_ - ideal);
  }

  static unsigned blocks(std::size_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

  void serial(cudaStream_t s) {
    AIPE_CUDA(cudaMemcpyAsync(d_x_.get(), h_x_.get(), n_ * sizeof(float), cudaMemcpyHostToDevice, s));
    affine_iter_kernel<<<blocks(n_), kThreads, 0, s>>>(d_x_.get(), d_y_.get(), n_, a_, b_, iters_);
    AIPE_CHECK_LAUNCH();
    AIPE_CUDA(cudaMemcpyAsync(h_y_.get(), d_y_.get(), n_ * sizeof(float), cudaMemcpyDeviceToHost, s));
  }

  void compute_only(cudaStream_t s) {
    affine_iter_kernel<<<blocks(n_), kThreads, 0, s>>>(d_x_resident_.get(), d_y_.get(), n_, a_, b_, iters_);
    AIPE_CHECK_LAUNCH();
  }

  // Side streams start after everything already queued on s, and s continues after all of them.
  void fork(cudaStream_t s, int used) {
    AIPE_CUDA(cudaEventRecord(fork_[0], s));
    for (int i = 0; i < used; ++i) AIPE_CUDA(cudaStreamWaitEvent(streams_[i], fork_[0], 0));
  }
  void join(cudaStream_t s, int used) {
    for (int i = 0; i < used; ++i) {
      AIPE_CUDA(cudaEventRecord(join_[i], streams_[i]));
      AIPE_CUDA(cudaStreamWaitEvent(s, join_[i], 0));
    }
  }

  void copy_only(cudaStream_t s) {
    fork(s, 2);
    AIPE_CUDA(cudaMemcpyAsync(d_x_.get(), h_x_.get(), n_ * sizeof(float), cudaMemcpyHostToDevice, streams_[0]));
    AIPE_CUDA(cudaMemcpyAsync(h_y_.get(), d_y_resident_.get(), n_ * sizeof(float), cudaMemcpyDeviceToHost, streams_[1]));
    join(s, 2);
  }

  void overlap(cudaStream_t s, int chunks) {
    const int used = std::min(chunks, kStreams);
    fork(s, used);
    for (int k = 0; k < chunks; ++k) {
      const std::size_t lo = n_ * k / chunks, hi = n_ * (k + 1) / chunks, len = hi - lo;  // ragged chunks
      cudaStream_t st = streams_[k % kStreams];
      AIPE_CUDA(cudaMemcpyAsync(d_x_.get() + lo, h_x_.get() + lo, len * sizeof(float), cudaMemcpyHostToDevice, st));
      affine_iter_kernel<<<blocks(len), kThreads, 0, st>>>(d_x_.get() + lo, d_y_.get() + lo, len, a_, b_, iters_);
      AIPE_CHECK_LAUNCH();
      AIPE_CUDA(cudaMemcpyAsync(h_y_.get() + lo, d_y_.get() + lo, len * sizeof(float), cudaMemcpyDeviceToHost, st));
    }
    join(s, used);
  }

  std::size_t n_ = 0;
  int iters_ = 0, chunks_ = 1;
  float a_ = 1, b_ = 0;
  aipe::PinnedBuffer<float> h_x_, h_y_;
  aipe::DeviceBuffer<float> d_x_, d_x_resident_, d_y_, d_y_resident_;
  // Created in setup (an example's constructor touches no GPU).
  std::vector<aipe::Stream> streams_;
  std::vector<aipe::Event> fork_, join_;
  std::vector<double> ref_;
  aipe::Tolerance tol_;
  std::optional<double> serial_ms_, copy_ms_, compute_ms_;  // medians of the rungs measured so far
};

}  // namespace

AIPE_REGISTER_EXAMPLE(CopyComputeOverlap);
