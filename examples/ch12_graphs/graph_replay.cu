// ch12/graph_replay: a chain of tiny kernels launched one by one vs captured once into a CUDA graph.
//
// Problem: `kernels` (default 128) dependent tiny kernels on a small vector (one partial wave of blocks):
// kernel j computes v <- fmaf(v, a_j, b_j) elementwise, the first reading x and the rest working in place
// on y. Each kernel does almost nothing; the chain is bound by what it costs to get a kernel started.
//
// Ladder (the identical chain of kernels, the same arguments):
//   1 stream_launch   the host launches the kernels one by one, timed from an idle stream: each launch's
//                     host-side cost (~2-4 us) is on the critical path, as in an eager framework.
//   2 stream_queued   the same launches queued behind the harness's blocking kernel, so the host has
//                     enqueued everything before the GPU starts: only the GPU-side per-kernel cost remains.
//                     (A host that runs far ahead of the GPU sees this; a latency-bound one does not.)
//   3 graph_replay    the chain captured once in setup (stream capture -> cudaGraphInstantiate) and
//                     replayed with one cudaGraphLaunch, timed from an idle stream like rung 1: one host
//                     call, and the GPU front end walks a pre-built chain of kernel nodes.
// Metric: `us_per_kernel` = median / kernels. Goal: graph_replay <= 0.5 x stream_launch.
//
// Reference: the same fmaf chain on the CPU with std::fma: exact match (a_j in [0.5, 1), b_j small, so the
// values stay bounded). Napkin math: DRAM minimum 8n bytes (x read, y written); the chain's traffic stays in
// L2. flops = 2 n kernels.
#include <cuda_runtime.h>

#include <cmath>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"

namespace {

constexpr int kThreads = 256;

// No __restrict__: all kernels but the first update y in place.
__global__ void affine_kernel(const float* in, float* out, int n, float a, float b) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = fmaf(in[i], a, b);
}

class GraphReplay final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch12/graph_replay",
            "Many tiny kernels: stream launches vs one CUDA graph replay",
            "When kernels are tiny, what a step costs is launching them: the host's API call, the driver's "
            "bookkeeping, the GPU front end fetching each launch. A CUDA graph records the whole chain once "
            "(stream capture) and instantiates it; replaying it is one host call, and the GPU walks a "
            "pre-validated list of kernel nodes. Per kernel, replay costs a fraction of a stream launch; the "
            "gap is largest when the host is on the critical path, which is the case graphs exist for.",
            {{.name = "n",
              .def = 4096,
              .quick = 4096,
              .small = 3001,
              .help = "elements of the vector each kernel updates",
              .max = 1 << 26},
             {.name = "kernels",
              .def = 128,
              .quick = 128,
              .small = 101,
              .help = "kernels in the chain (>= 100 for the goal of <= 0.5x)",
              .max = 100000}},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    auto per_kernel = [this](double median_ms, std::map<std::string, double>& out) {
      out["us_per_kernel"] = 1e3 * median_ms / kernels_;
    };
    return {{.name = "stream_launch",
             .summary = "one launch per kernel from the host, timed from an idle stream",
             .launch = [this](cudaStream_t s) { stream_launch(s); },
             .blocking = false,
             .metrics = per_kernel},
            {.name = "stream_queued",
             .summary = "the same launches, queued behind a blocking kernel: GPU-side cost only",
             .launch = [this](cudaStream_t s) { stream_launch(s); },
             .metrics = per_kernel},
            {.name = "graph_replay",
             .summary = "captured once into a graph in setup; one cudaGraphLaunch per run, idle stream",
             .launch = [this](cudaStream_t s) { exec_.launch(s); },
             .blocking = false,
             .metrics = per_kernel}};
  }

  void setup(aipe::Context& ctx) override {
    n_ = static_cast<int>(ctx.size("n"));
    kernels_ = static_cast<int>(ctx.size("kernels"));
    const std::uint64_t sx = aipe::sub_seed(ctx.seed(), 1);
    x_ = aipe::DeviceBuffer<float>(n_);
    y_ = aipe::DeviceBuffer<float>(n_);
    aipe::fill_uniform(x_.get(), n_, sx, -1.f, 1.f, ctx.stream());
    a_.resize(kernels_);
    b_.resize(kernels_);
    for (int j = 0; j < kernels_; ++j) {
      a_[j] = aipe::uniform_at(ctx.seed(), 2 * j + 10, 0.5f, 1.0f);
      b_[j] = aipe::uniform_at(ctx.seed(), 2 * j + 11, -0.25f, 0.25f);
    }
    ref_.resize(n_);
    for (int i = 0; i < n_; ++i) {
      float v = aipe::uniform_at(sx, i, -1.f, 1.f);
      for (int j = 0; j < kernels_; ++j) v = std::fma(v, a_[j], b_[j]);
      ref_[i] = v;
    }
    // Capture the chain once, on a stream of our own, and instantiate it.
    exec_.reset();
    aipe::Stream cap;
    graph_ = aipe::Graph::capture(cap, [this](cudaStream_t s) { stream_launch(s); });
    exec_ = aipe::GraphExec(graph_);
    exec_.upload(ctx.stream());  // first replay pays no upload
    ctx.output(y_.get(), y_.bytes());
  }

  aipe::Work work() const override { return {8.0 * n_, 2.0 * n_ * static_cast<double>(kernels_), aipe::ComputeUnit::fp32}; }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    std::vector<float> out = aipe::to_host(y_, ctx.stream());
    return aipe::compare(std::span<const float>(out), std::span<const float>(ref_), aipe::tolerance_for(aipe::DType::f32));
  }

 private:
  void stream_launch(cudaStream_t s) {
    const unsigned blocks = static_cast<unsigned>((n_ + kThreads - 1) / kThreads);
    for (int j = 0; j < kernels_; ++j) {
      affine_kernel<<<blocks, kThreads, 0, s>>>(j == 0 ? x_.get() : y_.get(), y_.get(), n_, a_[j], b_[j]);
      AIPE_CHECK_LAUNCH();
    }
  }

  int n_ = 0, kernels_ = 0;
  std::vector<float> a_, b_;
  aipe::DeviceBuffer<float> x_, y_;
  std::vector<float> ref_;
  aipe::Graph graph_;
  aipe::GraphExec exec_;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(GraphReplay);
