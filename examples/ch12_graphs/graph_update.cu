// ch12/graph_update: changing a graph's kernel arguments without re-instantiating it.
//
// Problem: `batches` batches of n floats go through the same step, a chain of `layers` tiny kernels
// (v <- fmaf(v, a_j, b_j + s_b); layer 0 reads x_b, the others update y_b in place; s_b is a per-batch
// shift). The step is a CUDA graph; what changes from batch to batch is the kernels' arguments: the
// x_b and y_b pointers and s_b. One run processes every batch, so each run updates the graph `batches`
// times and launches it as often.
//
// Ladder (identical kernels and arguments; only how the graph learns the new arguments differs):
//   1 recapture    per batch: stream-capture the step, cudaGraphInstantiate, launch, destroy. What code
//                  that treats a graph as disposable does; instantiation validates and lays out the graph.
//   2 exec_update  per batch: stream-capture the step into a new graph, cudaGraphExecUpdate it into the
//                  one executable graph (topology unchanged, so the update succeeds), launch. No
//                  instantiation, but still a capture and a whole-graph comparison.
//   3 set_params   per batch: cudaGraphExecKernelNodeSetParams on each kernel node of the executable graph
//                  (built once in setup), launch. Only the changed arguments move.
// Launches already queued keep the arguments they were launched with, so every rung queues all batches
// without waiting. The host-side cost is the point: all rungs are timed from an idle stream
// (blocking = false). Metric: `us_per_batch`.
//
// Reference: the same fmaf chain on the CPU (std::fma): exact match. Napkin math: DRAM minimum 8 n batches
// bytes (x read, y written); flops 2 n layers batches: nothing here is throughput-bound.
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

// No __restrict__: layers after the first update y in place.
__global__ void layer_kernel(const float* in, float* out, int n, float a, float b) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = fmaf(in[i], a, b);
}

class GraphUpdate final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch12/graph_update",
            "Updating a CUDA graph's kernel parameters vs re-capturing and re-instantiating it",
            "A graph is cheap to replay because instantiation did the expensive work up front: validating the "
            "topology, laying out the kernels' launch descriptors. Code whose arguments change every step "
            "(a new input pointer, a new scalar) should not throw that work away. cudaGraphExecUpdate patches "
            "an executable graph from a freshly captured one of the same shape; "
            "cudaGraphExecKernelNodeSetParams changes one node's arguments directly. Both keep the replay "
            "cheap; re-instantiating every step can cost more than launching the kernels one by one.",
            {{.name = "n", .def = 4096, .quick = 4096, .small = 3001, .help = "floats per batch", .max = 1 << 26},
             {.name = "layers", .def = 8, .quick = 8, .small = 5, .help = "kernels in the step graph", .max = 1024},
             {.name = "batches",
              .def = 32,
              .quick = 32,
              .small = 3,
              .help = "batches per run (graph updates per run)",
              .max = 100000}},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    auto per_batch = [this](double median_ms, std::map<std::string, double>& out) {
      out["us_per_batch"] = 1e3 * median_ms / batches_;
    };
    return {{.name = "recapture",
             .summary = "per batch: capture, instantiate, launch, destroy",
             .launch = [this](cudaStream_t s) { recapture(s); },
             .blocking = false,
             .metrics = per_batch},
            {.name = "exec_update",
             .summary = "per batch: capture, cudaGraphExecUpdate into one executable graph, launch",
             .launch = [this](cudaStream_t s) { exec_update(s); },
             .blocking = false,
             .metrics = per_batch},
            {.name = "set_params",
             .summary = "per batch: cudaGraphExecKernelNodeSetParams on each node, launch",
             .launch = [this](cudaStream_t s) { set_params(s); },
             .blocking = false,
             .metrics = per_batch}};
  }

  void setup(aipe::Context& ctx) override {
    n_ = static_cast<int>(ctx.size("n"));
    layers_ = static_cast<int>(ctx.size("layers"));
    batches_ = static_cast<int>(ctx.size("batches"));
    const std::uint64_t sx = aipe::sub_seed(ctx.seed(), 1);
    const std::size_t total = static_cast<std::size_t>(n_) * batches_;
    x_ = aipe::DeviceBuffer<float>(total);
    y_ = aipe::DeviceBuffer<float>(total);
    aipe::fill_uniform(x_.get(), total, sx, -1.f, 1.f, ctx.stream());
    a_.resize(layers_);
    b_.resize(layers_);
    shift_.resize(batches_);
    for (int j = 0; j < layers_; ++j) {
      a_[j] = aipe::uniform_at(ctx.seed(), 2 * j + 10, 0.5f, 1.0f);
      b_[j] = aipe::uniform_at(ctx.seed(), 2 * j + 11, -0.25f, 0.25f);
    }
    for (int b = 0; b < batches_; ++b) shift_[b] = aipe::uniform_at(ctx.seed(), 5000 + b, -0.5f, 0.5f);
    ref_.resize(total);
    for (int b = 0; b < batches_; ++b)
      for (int i = 0; i < n_; ++i) {
        const std::size_t k = static_cast<std::size_t>(b) * n_ + i;
        float v = aipe::uniform_at(sx, k, -1.f, 1.f);
        for (int j = 0; j < layers_; ++j) v = std::fma(v, a_[j], bias(j, b));
        ref_[k] = v;
      }

    cap_.clear();
    cap_.emplace_back();
    // The template graph, built node by node so that its kernel-node handles are known, for batch 0.
    exec_.reset();
    graph_ = aipe::Graph::create();
    nodes_.assign(layers_, nullptr);
    for (int j = 0; j < layers_; ++j) {
      Args args = make_args(j, 0);
      cudaKernelNodeParams p = params(args);
      AIPE_CUDA(cudaGraphAddKernelNode(&nodes_[j], graph_, j ? &nodes_[j - 1] : nullptr, j ? 1 : 0, &p));
    }
    exec_ = aipe::GraphExec(graph_);
    exec_.upload(ctx.stream());
    ctx.output(y_.get(), y_.bytes());
  }

  aipe::Work work() const override {
    const double total = static_cast<double>(n_) * batches_;
    return {8.0 * total, 2.0 * total * layers_, aipe::ComputeUnit::fp32};
  }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    std::vector<float> out = aipe::to_host(y_, ctx.stream());
    return aipe::compare(std::span<const float>(out), std::span<const float>(ref_), aipe::tolerance_for(aipe::DType::f32));
  }


 private:
  // One kernel's arguments; kernelParams points into this struct, so it must outlive the API call.
  struct Args {
    const float* in;
    float* out;
    int n;
    float a, b;
    void* ptrs[5];
  };
  float bias(int j, int b) const { return j == 0 ? b_[0] + shift_[b] : b_[j]; }  // host float add, as below
  unsigned blocks() const { return static_cast<unsigned>((n_ + kThreads - 1) / kThreads); }

  Args make_args(int j, int b) const {
    float* yb = y_.get() + static_cast<std::size_t>(b) * n_;
    Args r{j == 0 ? x_.get() + static_cast<std::size_t>(b) * n_ : yb, yb, n_, a_[j], bias(j, b), {}};
    return r;
  }
  cudaKernelNodeParams params(Args& a) const {
    a.ptrs[0] = &a.in;
    a.ptrs[1] = &a.out;
    a.ptrs[2] = &a.n;
    a.ptrs[3] = &a.a;
    a.ptrs[4] = &a.b;
    cudaKernelNodeParams p{};
    p.func = reinterpret_cast<void*>(layer_kernel);
    p.gridDim = dim3(blocks());
    p.blockDim = dim3(kThreads);
    p.sharedMemBytes = 0;
    p.kernelParams = a.ptrs;
    p.extra = nullptr;
    return p;
  }

  aipe::Graph capture(int b) {
    return aipe::Graph::capture(cap_[0], [&](cudaStream_t c) {
      for (int j = 0; j < layers_; ++j) {
        const Args a = make_args(j, b);
        layer_kernel<<<blocks(), kThreads, 0, c>>>(a.in, a.out, a.n, a.a, a.b);
        AIPE_CHECK_LAUNCH();
      }
    });
  }

  void recapture(cudaStream_t s) {
    for (int b = 0; b < batches_; ++b) {
      aipe::Graph g = capture(b);
      const aipe::GraphExec e(g);
      g.reset();
      e.launch(s);
    }  // the executable graph is destroyed here: safe while its launch is pending, freed when it completes
  }

  void exec_update(cudaStream_t s) {
    for (int b = 0; b < batches_; ++b) {
      aipe::Graph g = capture(b);
      cudaGraphExecUpdateResultInfo info{};
      const cudaError_t st = cudaGraphExecUpdate(exec_, g, &info);
      g.reset();
      AIPE_CUDA(st);  // fails (with the reason in info.result) only if the topology changed
      exec_.launch(s);
    }
  }

  void set_params(cudaStream_t s) {
    for (int b = 0; b < batches_; ++b) {
      for (int j = 0; j < layers_; ++j) {
        Args a = make_args(j, b);
        const cudaKernelNodeParams p = params(a);
        AIPE_CUDA(cudaGraphExecKernelNodeSetParams(exec_, nodes_[j], &p));
      }
      exec_.launch(s);
    }
  }

  int n_ = 0, layers_ = 0, batches_ = 0;
  std::vector<float> a_, b_, shift_;
  aipe::DeviceBuffer<float> x_, y_;
  std::vector<float> ref_;
  std::vector<aipe::Stream> cap_;  // the capture stream, created in setup
  aipe::Graph graph_;
  aipe::GraphExec exec_;
  std::vector<cudaGraphNode_t> nodes_;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(GraphUpdate);
