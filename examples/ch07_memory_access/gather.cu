// ch07/gather: out[i] = table[idx[i]], the access pattern of embedding lookups and sparse kernels.
//
// Ladder (every rung computes the identical out from the identical idx and table; verified exactly):
//   1 naive        one plain load of idx[i], one dependent load of table[idx[i]] per thread
//   2 read_only    the table through the read-only data path (__ldg -> LDG.CONSTANT): the compiler may
//                  cache it in L1 without coherence traffic
//   3 ilp4         four indices in one 16-byte load, four independent gathers in flight, one float4 store
//   4 sorted_plan  the lookups sorted by table index once, in setup (a plan reused across calls, as for a
//                  fixed sparsity pattern; cub::DeviceRadixSort): neighbouring threads now read
//                  neighbouring table entries (shared sectors) and scatter to out[pos]
//
// Problem: n = 32 Mi lookups into a table of 8 Mi floats (32 MiB), indices uniform over the table.
// Napkin math: minimum bytes = 4n (idx) + 4n (out) + 4 * min(table, n) (each entry read at most once);
// a random gather fetches a 32-byte sector for each 4-byte value, so the naive rungs live on L2 hits
// and latency; the sorted plan also reads its position array (4n more bytes, not in the minimum).
// Reference: the gathered values computed on the host from the generator (exact equality expected).
#include <cuda_runtime.h>

#include <cub/device/device_radix_sort.cuh>

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"

namespace {

constexpr int kThreads = 256;

// No const/__restrict__: the compiler cannot prove the table is read-only, so it uses plain LDG.
__global__ void gather_naive(float* table, int* idx, float* out, std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x)
    out[i] = table[idx[i]];
}

__global__ void gather_read_only(const float* __restrict__ table, const int* __restrict__ idx, float* __restrict__ out,
                                 std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x)
    out[i] = __ldg(table + __ldg(idx + i));
}

__global__ void gather_ilp4(const float* __restrict__ table, const int* __restrict__ idx, float* __restrict__ out,
                            std::size_t n) {
  const std::size_t n4 = n / 4;
  const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
  const std::size_t t = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;
  for (std::size_t i = t; i < n4; i += stride) {
    const int4 k = __ldg(reinterpret_cast<const int4*>(idx) + i);
    float4 v;
    v.x = __ldg(table + k.x);
    v.y = __ldg(table + k.y);
    v.z = __ldg(table + k.z);
    v.w = __ldg(table + k.w);
    reinterpret_cast<float4*>(out)[i] = v;
  }
  const std::size_t i = 4 * n4 + t;  // the last n % 4 lookups
  if (i < n) out[i] = __ldg(table + __ldg(idx + i));
}

__global__ void gather_sorted(const float* __restrict__ table, const int* __restrict__ sorted_idx,
                              const int* __restrict__ pos, float* __restrict__ out, std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x)
    out[__ldg(pos + i)] = __ldg(table + __ldg(sorted_idx + i));
}

__global__ void iota(int* p, std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x)
    p[i] = static_cast<int>(i);
}

class Gather final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch07/gather",
            "Gather: naive, read-only path, independent lookups in flight, sorted index plan",
            "A gather's cost is the table accesses, not the index stream: each random 4-byte lookup pulls a 32-byte "
            "sector and waits a full memory latency before the dependent load can issue. The read-only path lets "
            "the SM cache table entries without coherence; loading four indices at once puts four independent "
            "lookups in flight per thread; sorting the lookups once by table index (a plan reused across calls) "
            "turns scattered reads into neighbouring ones and moves the scatter to the output side.",
            {{.name = "n", .def = 32ll << 20, .quick = 8ll << 20, .small = 100003, .help = "lookups", .max = INT32_MAX},
             {.name = "table",
              .def = 8ll << 20,
              .quick = 8ll << 20,
              .small = 7777,
              .help = "table entries (floats)",
              .max = INT32_MAX}},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    return {
        {"naive", "plain loads: idx[i], then the dependent table[idx[i]]",
         [this](cudaStream_t s) {
           gather_naive<<<grid_, kThreads, 0, s>>>(table_.get(), idx_.get(), out_.get(), n_);
           AIPE_CHECK_LAUNCH();
         }},
        {"read_only", "table and indices through the read-only path (__ldg)",
         [this](cudaStream_t s) {
           gather_read_only<<<grid_, kThreads, 0, s>>>(table_.get(), idx_.get(), out_.get(), n_);
           AIPE_CHECK_LAUNCH();
         }},
        {"ilp4", "four indices per 16-byte load, four independent lookups in flight, float4 store",
         [this](cudaStream_t s) {
           gather_ilp4<<<grid_, kThreads, 0, s>>>(table_.get(), idx_.get(), out_.get(), n_);
           AIPE_CHECK_LAUNCH();
         }},
        {"sorted_plan", "lookups sorted by table index once in setup; neighbouring reads, scattered writes",
         [this](cudaStream_t s) {
           gather_sorted<<<grid_, kThreads, 0, s>>>(table_.get(), sorted_idx_.get(), pos_.get(), out_.get(), n_);
           AIPE_CHECK_LAUNCH();
         }},
    };
  }

  void setup(aipe::Context& ctx) override {
    n_ = static_cast<std::size_t>(ctx.size("n"));
    table_n_ = static_cast<std::size_t>(ctx.size("table"));
    const cudaStream_t s = ctx.stream();
    table_ = aipe::DeviceBuffer<float>(table_n_);
    idx_ = aipe::DeviceBuffer<int>(n_);
    out_ = aipe::DeviceBuffer<float>(n_);
    const std::uint64_t ts = aipe::sub_seed(ctx.seed(), 1);
    aipe::fill_uniform(table_.get(), table_n_, ts, -1.f, 1.f, s);
    aipe::fill_uniform_int(idx_.get(), n_, aipe::sub_seed(ctx.seed(), 2), 0, static_cast<int>(table_n_ - 1), s);
    ctx.output(out_.get(), out_.bytes());
    int per_sm = 0;
    AIPE_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, gather_read_only, kThreads, 0));
    grid_ = static_cast<unsigned>(std::max(1, per_sm) * ctx.device().sm_count);

    // The sorted plan: (idx, position) pairs sorted by idx on the device.
    sorted_idx_ = aipe::DeviceBuffer<int>(n_);
    pos_ = aipe::DeviceBuffer<int>(n_);
    aipe::DeviceBuffer<int> pos_in(n_);
    iota<<<grid_, kThreads, 0, s>>>(pos_in.get(), n_);
    AIPE_CHECK_LAUNCH();
    int bits = 1;
    while ((std::size_t(1) << bits) < table_n_) ++bits;
    std::size_t temp_bytes = 0;
    AIPE_CUDA(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, idx_.get(), sorted_idx_.get(), pos_in.get(),
                                              pos_.get(), static_cast<std::int64_t>(n_), 0, bits, s));
    aipe::DeviceBuffer<unsigned char> temp(temp_bytes);
    AIPE_CUDA(cub::DeviceRadixSort::SortPairs(temp.get(), temp_bytes, idx_.get(), sorted_idx_.get(), pos_in.get(),
                                              pos_.get(), static_cast<std::int64_t>(n_), 0, bits, s));

    // Reference on the host: the generator's table value at each index.
    std::vector<int> idx_h(n_);
    AIPE_CUDA(cudaMemcpyAsync(idx_h.data(), idx_.get(), n_ * sizeof(int), cudaMemcpyDeviceToHost, s));
    AIPE_CUDA(cudaStreamSynchronize(s));
    ref_.resize(n_);
    for (std::size_t i = 0; i < n_; ++i) {
      if (idx_h[i] < 0 || std::size_t(idx_h[i]) >= table_n_) throw std::logic_error("index generator out of range");
      ref_[i] = aipe::uniform_at(ts, static_cast<std::uint64_t>(idx_h[i]), -1.f, 1.f);
    }
  }

  aipe::Work work() const override {
    return {4.0 * n_ + 4.0 * n_ + 4.0 * std::min(n_, table_n_), 0, aipe::ComputeUnit::none};
  }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    std::vector<float> out = aipe::to_host(out_, ctx.stream());
    // A gather copies values: exact equality.
    return aipe::compare(std::span<const float>(out), std::span<const float>(ref_), aipe::tolerance_for(aipe::DType::exact));
  }

 private:
  std::size_t n_ = 0, table_n_ = 0;
  unsigned grid_ = 1;
  aipe::DeviceBuffer<float> table_, out_;
  aipe::DeviceBuffer<int> idx_, sorted_idx_, pos_;
  std::vector<float> ref_;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(Gather);
