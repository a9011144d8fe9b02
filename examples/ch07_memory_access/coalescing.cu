// ch07/coalescing: the same copy, with the warp's 32 threads touching neighbours or elements far apart.
//
// Ladder (every rung copies the identical n floats, dst[e] = src[e]; only which element each thread
// handles changes; all verified exactly first):
//   1 coalesced   thread t handles element t: a warp reads 128 contiguous bytes, 4 sectors per request
//   2 stride_2    consecutive threads handle elements 2 apart: 8 sectors per warp request, half used
//   3 stride_8    8 apart: 32 sectors, one float used of each 32-byte sector
//   4 stride_32   32 apart: 32 sectors per request and each 128-byte line touched 32 times by 32 warps
//   5 stride_axis the `stride` axis (default 256): try --size stride=1,4,64,... to trace the curve
//
// Mapping: with S the stride and R = ceil(n / S), thread t handles element (t % R) * S + t / R (skipped
// when >= n): the array seen as R rows of S, walked down the columns. Every element is handled once.
// Problem: n = 64 Mi floats (256 MiB each way, 5x the L2): the neighbours of a strided access are
// needed again only R threads later, by which time the L2 has often evicted their sector.
// Napkin math: bytes = 2 * 4 * n (the useful bytes); a strided rung moves up to 8x that in sectors.
#include <cuda_runtime.h>

#include <cstdint>

#include "aipe/buffer.hpp"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"
#include "aipe/verify_device.cuh"

namespace {

constexpr int kThreads = 256;

__global__ void copy_mapped(const float* __restrict__ src, float* __restrict__ dst, std::size_t n, std::size_t stride) {
  const std::size_t rows = (n + stride - 1) / stride;
  const std::size_t total = rows * stride;
  const std::size_t gs = std::size_t(gridDim.x) * blockDim.x;
  std::size_t t = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;
  // Walk t = col * rows + row without a 64-bit division per element: divide once, then carry.
  std::size_t row = t % rows, col = t / rows;
  const std::size_t gs_row = gs % rows, gs_col = gs / rows;
  for (; t < total; t += gs) {
    const std::size_t e = row * stride + col;
    if (e < n) dst[e] = src[e];
    row += gs_row;
    col += gs_col;
    if (row >= rows) {
      row -= rows;
      ++col;
    }
  }
}

struct SrcRef {
  std::uint64_t seed;
  __host__ __device__ float operator()(std::size_t i) const { return aipe::uniform_at(seed, i, -1.f, 1.f); }
};

class Coalescing final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch07/coalescing",
            "Coalesced vs strided access: the same copy, bandwidth falling with the stride",
            "DRAM and L2 move whole 32-byte sectors. When the 32 threads of a warp touch 32 consecutive floats, "
            "one request moves 4 sectors and uses every byte; when they touch floats S apart, the request needs "
            "up to 32 sectors and uses 4 bytes of each, so the bandwidth the program sees falls by up to 8x "
            "unless the cache keeps the rest of each sector until a later warp asks for it.",
            {{.name = "n", .def = 64ll << 20, .quick = 16ll << 20, .small = 1000003, .help = "floats to copy",
              .max = 1ll << 32},
             {.name = "stride",
              .def = 256,
              .quick = 256,
              .small = 33,
              .help = "elements between the items of neighbouring threads (stride_axis rung)",
              .max = 1 << 20}},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    return {
        rung("coalesced", "thread t handles element t: 128 contiguous bytes per warp request", 1),
        rung("stride_2", "neighbouring threads 2 elements apart: 8 sectors per request, half of each used", 2),
        rung("stride_8", "8 apart: 32 sectors per request, 4 of 32 bytes used", 8),
        rung("stride_32", "32 apart: each 128-byte line is touched by 32 different warps", 32),
        rung("stride_axis", "the stride given by the `stride` axis (default 256)", 0),
    };
  }

  void setup(aipe::Context& ctx) override {
    n_ = static_cast<std::size_t>(ctx.size("n"));
    stride_axis_ = static_cast<std::size_t>(ctx.size("stride"));
    src_ = aipe::DeviceBuffer<float>(n_);
    dst_ = aipe::DeviceBuffer<float>(n_);
    seed_ = aipe::sub_seed(ctx.seed(), 1);
    aipe::fill_uniform(src_.get(), n_, seed_, -1.f, 1.f, ctx.stream());
    ctx.output(dst_.get(), dst_.bytes());
    int per_sm = 0;
    AIPE_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, copy_mapped, kThreads, 0));
    grid_ = static_cast<unsigned>(std::max(1, per_sm) * ctx.device().sm_count);
  }

  aipe::Work work() const override { return {2.0 * sizeof(float) * n_, 0, aipe::ComputeUnit::none}; }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    return aipe::compare_on_device(n_, dst_.get(), SrcRef{seed_}, aipe::tolerance_for(aipe::DType::exact), ctx.stream());
  }

 private:
  // stride 0: the `stride` axis, read when the rung runs (setup has seen the sizes by then).
  aipe::Variant rung(const char* name, const char* summary, std::size_t stride) {
    return {.name = name,
            .summary = summary,
            .launch =
                [this, stride](cudaStream_t s) {
                  copy_mapped<<<grid_, kThreads, 0, s>>>(src_.get(), dst_.get(), n_, stride ? stride : stride_axis_);
                  AIPE_CHECK_LAUNCH();
                },
            .metrics = [this, stride](double, std::map<std::string, double>& out) {
              out["stride"] = static_cast<double>(stride ? stride : stride_axis_);
            }};
  }

  std::size_t n_ = 0, stride_axis_ = 1;
  std::uint64_t seed_ = 0;
  unsigned grid_ = 1;
  aipe::DeviceBuffer<float> src_, dst_;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(Coalescing);
