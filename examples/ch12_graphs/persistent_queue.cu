// ch12/persistent_queue: a persistent kernel pulling items from an atomic work queue vs a launch per item.
//
// Problem: `items` work items of irregular size (log-uniform lengths, 1 to 2^log2_max elements, laid end to
// end in x). Item i computes y[i] = sum over its elements of x_j * x_j (a sum of squares: a norm), in
// float. Every rung processes an item the same way: one block of 256 threads, strided partial sums,
// then a fixed-shape tree in shared memory, so the result is bit-identical whichever block gets the item.
//
// Ladder:
//   1 launch_per_item   the host launches one single-block kernel per item: `items` launches per run.
//   2 block_per_item    one launch of `items` blocks: the hardware block scheduler hands out the items.
//   3 persistent        one launch of just enough blocks to fill the GPU once (occupancy API); each block
//                       loops, taking the next item index from a global counter with atomicAdd until the
//                       queue is empty. No block is ever launched twice; the counter is reset by a
//                       cudaMemsetAsync at the start of each run.
// launch_per_item queues thousands of launches (more than fit behind a blocked stream), so all rungs are
// timed from an idle stream (blocking = false). Metric: `us_per_item`.
//
// Reference: the sums in double on the CPU; tolerance: the f32 default (a float sum of <= 2^log2_max
// positive terms in a strided + tree order stays within a few ulps relative). Napkin math: DRAM minimum
// 4 T bytes read for T elements + 4 per item written + 8 per item of descriptors; flops 2 T.
#include <cuda_runtime.h>

#include <algorithm>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"

namespace {

constexpr int kThreads = 256;

__host__ __device__ inline int item_len(std::uint64_t seed, int i, int log2_max) {
  const int k = static_cast<int>(aipe::bits_at(seed, 2 * i) % static_cast<std::uint32_t>(log2_max + 1));
  const std::uint32_t r = aipe::bits_at(seed, 2 * i + 1);
  return 1 + (k == 0 ? 0 : static_cast<int>(r >> (32 - k)));
}

// One item, processed by the whole block. Must be called by all threads of the block.
__device__ void process_item(const float* __restrict__ x, const int* __restrict__ offsets, float* __restrict__ y,
                             int item, float* red) {
  const int begin = offsets[item], end = offsets[item + 1];
  float acc = 0.f;
  for (int j = begin + threadIdx.x; j < end; j += kThreads) acc = fmaf(x[j], x[j], acc);
  red[threadIdx.x] = acc;
  __syncthreads();
  for (int w = kThreads / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) red[threadIdx.x] += red[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) y[item] = red[0];
  __syncthreads();  // red is reused by the next item
}

__global__ void __launch_bounds__(kThreads) one_item_kernel(const float* __restrict__ x, const int* __restrict__ offsets,
                                                            float* __restrict__ y, int item) {
  __shared__ float red[kThreads];
  process_item(x, offsets, y, item, red);
}

__global__ void __launch_bounds__(kThreads) block_per_item_kernel(const float* __restrict__ x,
                                                                  const int* __restrict__ offsets, float* __restrict__ y) {
  __shared__ float red[kThreads];
  process_item(x, offsets, y, blockIdx.x, red);
}

__global__ void __launch_bounds__(kThreads) persistent_kernel(const float* __restrict__ x, const int* __restrict__ offsets,
                                                              float* __restrict__ y, int items, int* next) {
  __shared__ float red[kThreads];
  __shared__ int item;
  for (;;) {
    if (threadIdx.x == 0) item = atomicAdd(next, 1);  // claim the next item of the queue
    __syncthreads();
    const int i = item;
    __syncthreads();  // everyone has read `item` before thread 0 overwrites it
    if (i >= items) return;
    process_item(x, offsets, y, i, red);
  }
}

class PersistentQueue final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch12/persistent_queue",
            "A persistent kernel with an atomic work queue vs one launch per work item",
            "Launching one kernel per work item pays the launch cost thousands of times and leaves most of the "
            "GPU idle, since each item fills a single block. One launch with a block per item lets the hardware "
            "scheduler distribute them. A persistent kernel goes one step further: it launches only as many "
            "blocks as fit on the GPU at once, and each block keeps pulling the next item from a global atomic "
            "counter, so irregular items balance dynamically and per-block start-up is paid once, not per item.",
            {{.name = "items", .def = 4096, .quick = 4096, .small = 301, .help = "work items", .max = 1 << 22},
             {.name = "log2_max",
              .def = 12,
              .quick = 12,
              .small = 9,
              .help = "item lengths are log-uniform in [1, 2^log2_max] elements",
              .min = 0,
              .max = 20}},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    auto per_item = [this](double median_ms, std::map<std::string, double>& out) {
      out["us_per_item"] = 1e3 * median_ms / items_;
    };
    return {
        {.name = "launch_per_item",
         .summary = "the host launches one single-block kernel per item",
         .launch = [this](cudaStream_t s) { launch_per_item(s); },
         .blocking = false,
         .metrics = per_item},
        {.name = "block_per_item",
         .summary = "one launch, one block per item: the block scheduler is the queue",
         .launch = [this](cudaStream_t s) { block_per_item(s); },
         .blocking = false,
         .metrics = per_item},
        {.name = "persistent",
         .summary = "one wave of resident blocks pulling items from an atomicAdd counter",
         .launch = [this](cudaStream_t s) { persistent(s); },
         .blocking = false,
         .metrics =
             [this, per_item](double median_ms, std::map<std::string, double>& out) {
               per_item(median_ms, out);
               out["blocks"] = persistent_grid_;
             }},
    };
  }

  void setup(aipe::Context& ctx) override {
    items_ = static_cast<int>(ctx.size("items"));
    const int log2_max = static_cast<int>(ctx.size("log2_max"));
    const std::uint64_t sl = aipe::sub_seed(ctx.seed(), 2), sx = aipe::sub_seed(ctx.seed(), 1);
    std::vector<int> off(items_ + 1, 0);
    long long total = 0;
    for (int i = 0; i < items_; ++i) {
      total += item_len(sl, i, log2_max);
      if (total > (1ll << 30)) throw aipe::BadInput("items x lengths exceed 2^30 elements; lower log2_max");
      off[i + 1] = static_cast<int>(total);
    }
    total_ = static_cast<int>(total);
    x_ = aipe::DeviceBuffer<float>(total_);
    y_ = aipe::DeviceBuffer<float>(items_);
    offsets_ = aipe::DeviceBuffer<int>(items_ + 1);
    next_ = aipe::DeviceBuffer<int>(1);
    aipe::fill_uniform(x_.get(), total_, sx, -1.f, 1.f, ctx.stream());
    AIPE_CUDA(cudaMemcpyAsync(offsets_.get(), off.data(), offsets_.bytes(), cudaMemcpyHostToDevice, ctx.stream()));
    int per_sm = 0;
    AIPE_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, persistent_kernel, kThreads, 0));
    persistent_grid_ = static_cast<unsigned>(std::max(1, per_sm) * ctx.device().sm_count);
    ref_.assign(items_, 0.0);
    for (int i = 0; i < items_; ++i)
      for (int j = off[i]; j < off[i + 1]; ++j) {
        const double v = aipe::uniform_at(sx, j, -1.f, 1.f);
        ref_[i] += v * v;
      }
    AIPE_CUDA(cudaStreamSynchronize(ctx.stream()));  // `off` goes out of scope
    ctx.output(y_.get(), y_.bytes());
  }

  aipe::Work work() const override {
    return {4.0 * total_ + 4.0 * items_ + 4.0 * (items_ + 1), 2.0 * total_, aipe::ComputeUnit::fp32};
  }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    std::vector<float> out = aipe::to_host(y_, ctx.stream());
    return aipe::compare(std::span<const float>(out), std::span<const double>(ref_), aipe::tolerance_for(aipe::DType::f32));
  }

 private:
  void launch_per_item(cudaStream_t s) {
    for (int i = 0; i < items_; ++i) {
      one_item_kernel<<<1, kThreads, 0, s>>>(x_.get(), offsets_.get(), y_.get(), i);
      AIPE_CHECK_LAUNCH();
    }
  }
  void block_per_item(cudaStream_t s) {
    block_per_item_kernel<<<items_, kThreads, 0, s>>>(x_.get(), offsets_.get(), y_.get());
    AIPE_CHECK_LAUNCH();
  }
  void persistent(cudaStream_t s) {
    AIPE_CUDA(cudaMemsetAsync(next_.get(), 0, sizeof(int), s));  // an empty queue head for this run
    persistent_kernel<<<persistent_grid_, kThreads, 0, s>>>(x_.get(), offsets_.get(), y_.get(), items_, next_.get());
    AIPE_CHECK_LAUNCH();
  }

  int items_ = 0, total_ = 0;
  unsigned persistent_grid_ = 1;
  aipe::DeviceBuffer<float> x_, y_;
  aipe::DeviceBuffer<int> offsets_, next_;
  std::vector<double> ref_;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(PersistentQueue);
