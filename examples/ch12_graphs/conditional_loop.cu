// ch12/conditional_loop: a data-dependent loop on the device (a CUDA graph WHILE node) vs a host loop.
//
// Problem: iterate x <- x * r (r = 0.875) until max_i |x_i| <= thr, starting from x0 (n floats in
// [-1, 1)); report x and the iteration count. The count depends on the data (~100 at the defaults), so
// whoever runs the loop must look at a device-computed flag after every iteration.
//
// Ladder (the same kernels: a step kernel that scales x and raises a "more" flag if any |x_i| > thr):
//   1 host_loop    after each step the host copies the flag to pinned memory, synchronizes the stream and
//                  decides whether to launch the next step: a full GPU -> host -> GPU round trip per
//                  iteration, and the GPU idles during each one.
//   2 graph_while  one CUDA graph: memset(more) -> init -> decide -> WHILE(handle) { step -> decide }.
//                  The decide kernel calls cudaGraphSetConditional(handle, more) (and counts), so the
//                  loop runs on the device with no host involvement; one cudaGraphLaunch per run.
// host_loop synchronizes, so both rungs are timed from an idle stream (blocking = false). Metric:
// `us_per_iteration`. Needs CUDA 12.4+ (conditional WHILE nodes), runtime and driver.
//
// Reference: the same float multiplications on the CPU, the loop run to the same condition: x and the
// count match exactly. Napkin math: DRAM minimum 8n bytes (x0 read, x written); flops ~ n * iterations;
// the loop is latency-bound by construction.
#include <cuda_runtime.h>

#include <cmath>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"

#if !defined(CUDART_VERSION) || CUDART_VERSION < 12040
#error "ch12/conditional_loop needs the CUDA 12.4+ toolkit (conditional graph nodes)"
#endif

namespace {

constexpr int kThreads = 256;
constexpr float kRatio = 0.875f;

__global__ void init_kernel(const float* __restrict__ x0, float* __restrict__ x, int n, float thr, int* more) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float v = x0[i];
  x[i] = v;
  if (fabsf(v) > thr) *more = 1;  // every writer stores the same value
}

__global__ void step_kernel(float* __restrict__ x, int n, float thr, int* more) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float v = __fmul_rn(x[i], kRatio);
  x[i] = v;
  if (fabsf(v) > thr) *more = 1;
}

// Graph version: hands the flag to the WHILE node, clears it for the next step and counts the steps.
__global__ void decide_kernel(cudaGraphConditionalHandle handle, int* more, int* count, int counted) {
  const int m = *more;
  *more = 0;
  *count += counted;
  cudaGraphSetConditional(handle, m ? 1u : 0u);
}

__global__ void set_count_kernel(int* count, int value) { *count = value; }

class ConditionalLoop final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch12/conditional_loop",
            "A data-dependent loop on the device: CUDA graph WHILE nodes vs a host loop",
            "A loop whose trip count depends on results computed on the GPU (iterate until converged) forces "
            "a host loop to copy a flag back and synchronize after every iteration: the GPU idles for a round "
            "trip each time. CUDA 12.4 conditional graph nodes move the loop onto the device: a kernel in the "
            "loop body sets the condition with cudaGraphSetConditional, and the graph re-runs the body while it "
            "is non-zero. One launch runs the whole loop.",
            {{.name = "n", .def = 1 << 16, .quick = 1 << 16, .small = 3001, .help = "elements of x", .max = 1 << 26}},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    auto per_iteration = [this](double median_ms, std::map<std::string, double>& out) {
      out["iterations"] = ref_count_;
      if (ref_count_ > 0) out["us_per_iteration"] = 1e3 * median_ms / ref_count_;
    };
    return {{.name = "host_loop",
             .summary = "flag copied to the host and checked after every step",
             .launch = [this](cudaStream_t s) { host_loop(s); },
             .blocking = false,
             .metrics = per_iteration},
            {.name = "graph_while",
             .summary = "one graph with a WHILE node: the loop runs on the device",
             .launch = [this](cudaStream_t s) { exec_.launch(s); },
             .blocking = false,
             .skip_if =
                 [] {
                   int drv = 0;
                   cudaDriverGetVersion(&drv);
                   return drv < 12040 ? std::string("conditional WHILE nodes need a CUDA 12.4+ driver") : std::string();
                 },
             .metrics = per_iteration}};
  }

  void setup(aipe::Context& ctx) override {
    n_ = static_cast<int>(ctx.size("n"));
    const std::uint64_t sx = aipe::sub_seed(ctx.seed(), 1);
    thr_ = 1e-6f;
    x0_ = aipe::DeviceBuffer<float>(n_);
    x_ = aipe::DeviceBuffer<float>(n_);
    more_ = aipe::DeviceBuffer<int>(1);
    count_ = aipe::DeviceBuffer<int>(1);
    h_more_ = aipe::PinnedBuffer<int>(1);
    aipe::fill_uniform(x0_.get(), n_, sx, -1.f, 1.f, ctx.stream());

    ref_.resize(n_);
    for (int i = 0; i < n_; ++i) ref_[i] = aipe::uniform_at(sx, i, -1.f, 1.f);
    ref_count_ = 0;
    auto any_above = [&] {
      for (float v : ref_)
        if (std::fabs(v) > thr_) return true;
      return false;
    };
    while (any_above()) {
      for (float& v : ref_) v = v * kRatio;
      ++ref_count_;
    }

    build_graph(ctx);
    ctx.output(x_.get(), x_.bytes());
    ctx.output(count_.get(), count_.bytes());
  }


  aipe::Work work() const override {
    return {8.0 * n_, static_cast<double>(n_) * ref_count_, aipe::ComputeUnit::fp32};
  }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    std::vector<float> out(n_);
    int count = 0;
    AIPE_CUDA(cudaMemcpyAsync(out.data(), x_.get(), x_.bytes(), cudaMemcpyDeviceToHost, ctx.stream()));
    AIPE_CUDA(cudaMemcpyAsync(&count, count_.get(), sizeof count, cudaMemcpyDeviceToHost, ctx.stream()));
    AIPE_CUDA(cudaStreamSynchronize(ctx.stream()));
    aipe::VerifyResult r =
        aipe::compare(std::span<const float>(out), std::span<const float>(ref_), aipe::tolerance_for(aipe::DType::exact));
    aipe::VerifyResult c = aipe::compare_scalar(count, ref_count_, aipe::tolerance_for(aipe::DType::exact));
    if (!c.ok) c.note = "iteration count " + std::to_string(count) + ", expected " + std::to_string(ref_count_);
    r.merge(c);
    return r;
  }

 private:
  unsigned blocks() const { return static_cast<unsigned>((n_ + kThreads - 1) / kThreads); }

  void host_loop(cudaStream_t s) {
    AIPE_CUDA(cudaMemsetAsync(more_.get(), 0, sizeof(int), s));
    init_kernel<<<blocks(), kThreads, 0, s>>>(x0_.get(), x_.get(), n_, thr_, more_.get());
    AIPE_CHECK_LAUNCH();
    int count = 0;
    for (;;) {
      AIPE_CUDA(cudaMemcpyAsync(h_more_.get(), more_.get(), sizeof(int), cudaMemcpyDeviceToHost, s));
      AIPE_CUDA(cudaStreamSynchronize(s));  // the round trip a device-side loop avoids
      if (!h_more_[0]) break;
      AIPE_CUDA(cudaMemsetAsync(more_.get(), 0, sizeof(int), s));
      step_kernel<<<blocks(), kThreads, 0, s>>>(x_.get(), n_, thr_, more_.get());
      AIPE_CHECK_LAUNCH();
      ++count;
    }
    set_count_kernel<<<1, 1, 0, s>>>(count_.get(), count);
    AIPE_CHECK_LAUNCH();
  }

  static cudaGraphNode_t add_kernel(cudaGraph_t g, const cudaGraphNode_t* dep, void* func, unsigned grid, unsigned block,
                                    void** args) {
    cudaKernelNodeParams p{};
    p.func = func;
    p.gridDim = dim3(grid);
    p.blockDim = dim3(block);
    p.kernelParams = args;
    cudaGraphNode_t node = nullptr;
    AIPE_CUDA(cudaGraphAddKernelNode(&node, g, dep, dep ? 1 : 0, &p));
    return node;
  }

  void build_graph(aipe::Context& ctx) {
    exec_.reset();
    graph_ = aipe::Graph::create();
    cudaGraphConditionalHandle handle{};
    // Reset to 0 at every launch; the decide kernel before the loop sets it from the data.
    AIPE_CUDA(cudaGraphConditionalHandleCreate(&handle, graph_, 0, cudaGraphCondAssignDefault));

    cudaMemsetParams ms{};
    ms.dst = more_.get();
    ms.value = 0;
    ms.elementSize = sizeof(int);
    ms.width = 1;
    ms.height = 1;
    cudaGraphNode_t reset = nullptr;
    AIPE_CUDA(cudaGraphAddMemsetNode(&reset, graph_, nullptr, 0, &ms));

    const float* x0 = x0_.get();
    float* x = x_.get();
    int n = n_;
    float thr = thr_;
    int* more = more_.get();
    int* count = count_.get();
    int zero = 0, one = 1;
    void* init_args[] = {&x0, &x, &n, &thr, &more};
    cudaGraphNode_t init = add_kernel(graph_, &reset, reinterpret_cast<void*>(init_kernel), blocks(), kThreads, init_args);
    // The count starts at 0 with every launch: a memset node after init (count is not read before).
    cudaMemsetParams mc = ms;
    mc.dst = count;
    cudaGraphNode_t clear_count = nullptr;
    AIPE_CUDA(cudaGraphAddMemsetNode(&clear_count, graph_, &init, 1, &mc));
    void* decide0_args[] = {&handle, &more, &count, &zero};
    cudaGraphNode_t decide0 =
        add_kernel(graph_, &clear_count, reinterpret_cast<void*>(decide_kernel), 1, 1, decide0_args);

    cudaGraphNodeParams cp{};
    cp.type = cudaGraphNodeTypeConditional;
    cp.conditional.handle = handle;
    cp.conditional.type = cudaGraphCondTypeWhile;
    cp.conditional.size = 1;
    cudaGraphNode_t loop = nullptr;
    AIPE_CUDA(cudaGraphAddNode(&loop, graph_, &decide0, nullptr, 1, &cp));
    cudaGraph_t body = cp.conditional.phGraph_out[0];
    void* step_args[] = {&x, &n, &thr, &more};
    cudaGraphNode_t step = add_kernel(body, nullptr, reinterpret_cast<void*>(step_kernel), blocks(), kThreads, step_args);
    void* decide_args[] = {&handle, &more, &count, &one};
    add_kernel(body, &step, reinterpret_cast<void*>(decide_kernel), 1, 1, decide_args);

    exec_ = aipe::GraphExec(graph_);
    exec_.upload(ctx.stream());
  }

  int n_ = 0, ref_count_ = 0;
  float thr_ = 0;
  aipe::DeviceBuffer<float> x0_, x_;
  aipe::DeviceBuffer<int> more_, count_;
  aipe::PinnedBuffer<int> h_more_;
  std::vector<float> ref_;
  aipe::Graph graph_;
  aipe::GraphExec exec_;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(ConditionalLoop);
