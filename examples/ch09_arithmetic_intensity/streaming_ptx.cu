// ch09/streaming_ptx: cache hints in inline PTX. A large stream passes through the GPU once while a
// table that fits the L2 is gathered from at random: the stream should not evict the table.
//
// Ladder (identical arithmetic and access pattern; only the cache policy of each access changes):
//   1 plain        default loads and stores: the stream competes with the table for the L2
//   2 intrinsics   CUDA's own hints: __ldcs / __stcs (evict-first, "cache streaming") for the stream,
//                  __ldg (read-only path) for the table
//   3 ptx_policy   inline PTX with L2 access policies made by createpolicy: the stream is read with
//                  ld.global.nc.L1::no_allocate.L2::cache_hint (evict_first) and written with
//                  st.global.L1::no_allocate.L2::cache_hint (evict_first); the table with an evict_last
//                  policy, so the L2 keeps it while 0.5 GB streams past
//
// Problem: y[i] = x[i] * table[(i * 2654435761) mod T] for i < n; x, table uniform [-1, 1); T a power of two.
// The multiplicative hash scatters consecutive i over the whole table (a gather with no locality).
// Reference: the same single multiply on the CPU: exact.
// Work: bytes = 8 n + 4 T (stream in and out once, the table once); flops = n. At the default (n = 64M,
// T = 8M floats = 32 MiB, 64% of an H100's L2) each table sector is gathered ~64 times: whether those
// gathers hit L2 or DRAM is the whole difference between the rungs.
#include <cstdint>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"

namespace {

enum class Hint { plain, intrinsics, ptx };

__device__ __forceinline__ std::uint64_t policy_evict_first() {
  std::uint64_t p;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(p));
  return p;
}
__device__ __forceinline__ std::uint64_t policy_evict_last() {
  std::uint64_t p;
  asm volatile("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;" : "=l"(p));
  return p;
}
__device__ __forceinline__ float4 ld_stream(const float4* p, std::uint64_t pol) {
  float4 v;
  asm volatile("ld.global.nc.L1::no_allocate.L2::cache_hint.v4.f32 {%0, %1, %2, %3}, [%4], %5;"
               : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
               : "l"(p), "l"(pol));
  return v;
}
__device__ __forceinline__ void st_stream(float4* p, float4 v, std::uint64_t pol) {
  asm volatile("st.global.L1::no_allocate.L2::cache_hint.v4.f32 [%0], {%1, %2, %3, %4}, %5;" ::"l"(p), "f"(v.x), "f"(v.y),
               "f"(v.z), "f"(v.w), "l"(pol)
               : "memory");
}
__device__ __forceinline__ float ld_keep(const float* p, std::uint64_t pol) {
  float v;
  asm volatile("ld.global.nc.L2::cache_hint.f32 %0, [%1], %2;" : "=f"(v) : "l"(p), "l"(pol));
  return v;
}

__device__ __forceinline__ unsigned slot(std::size_t i, unsigned mask) { return unsigned(i * 2654435761ull) & mask; }

template <Hint H>
__global__ void gather_scale(const float* __restrict__ x, const float* __restrict__ table, float* __restrict__ y, std::size_t n,
                             unsigned mask) {
  std::uint64_t first = 0, last = 0;
  if constexpr (H == Hint::ptx) {
    first = policy_evict_first();
    last = policy_evict_last();
  }
  const std::size_t n4 = n / 4, stride = std::size_t(gridDim.x) * blockDim.x;
  const std::size_t tid = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;
  for (std::size_t q = tid; q < n4; q += stride) {
    const std::size_t i = 4 * q;
    float4 v;
    float t[4];
    if constexpr (H == Hint::plain) {
      v = reinterpret_cast<const float4*>(x)[q];
#pragma unroll
      for (int j = 0; j < 4; ++j) t[j] = table[slot(i + j, mask)];
    } else if constexpr (H == Hint::intrinsics) {
      v = __ldcs(reinterpret_cast<const float4*>(x) + q);
#pragma unroll
      for (int j = 0; j < 4; ++j) t[j] = __ldg(table + slot(i + j, mask));
    } else {
      v = ld_stream(reinterpret_cast<const float4*>(x) + q, first);
#pragma unroll
      for (int j = 0; j < 4; ++j) t[j] = ld_keep(table + slot(i + j, mask), last);
    }
    const float4 o = make_float4(v.x * t[0], v.y * t[1], v.z * t[2], v.w * t[3]);
    if constexpr (H == Hint::plain) reinterpret_cast<float4*>(y)[q] = o;
    else if constexpr (H == Hint::intrinsics) __stcs(reinterpret_cast<float4*>(y) + q, o);
    else st_stream(reinterpret_cast<float4*>(y) + q, o, first);
  }
  for (std::size_t i = 4 * n4 + tid; i < n; i += stride) y[i] = x[i] * table[slot(i, mask)];  // ragged tail
}

class StreamingPtx final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch09/streaming_ptx",
            "Cache hints in inline PTX: stream past the L2 without evicting a table that lives there",
            "A kernel that streams half a gigabyte once and gathers at random from a 32 MiB table has two kinds of "
            "bytes: ones it will never touch again and ones it touches sixty times. By default the L2 treats them "
            "alike. Marking the stream evict-first (and not allocating it in L1) and the table evict-last - with "
            "CUDA's __ldcs/__stcs or with PTX createpolicy and L2::cache_hint - tells the cache which is which; "
            "the result is measured, not assumed.",
            {{.name = "n", .def = 64 << 20, .quick = 16 << 20, .small = 100003, .help = "stream length (floats)"},
             {.name = "table",
              .def = 8 << 20,
              .quick = 8 << 20,
              .small = 1024,
              .help = "table length (floats), a power of two"}},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    return {{"plain", "default loads and stores", [this](cudaStream_t s) { launch<Hint::plain>(s); }},
            {"intrinsics", "__ldcs/__stcs for the stream, __ldg for the table", [this](cudaStream_t s) { launch<Hint::intrinsics>(s); }},
            {"ptx_policy", "createpolicy evict_first (stream, L1 no_allocate) / evict_last (table) via L2::cache_hint",
             [this](cudaStream_t s) { launch<Hint::ptx>(s); }}};
  }

  void setup(aipe::Context& ctx) override {
    n_ = std::size_t(ctx.size("n"));
    t_ = std::size_t(ctx.size("table"));
    if (t_ & (t_ - 1)) throw aipe::BadInput("table must be a power of two, got " + std::to_string(t_));
    x_ = aipe::DeviceBuffer<float>(n_);
    y_ = aipe::DeviceBuffer<float>(n_);
    table_ = aipe::DeviceBuffer<float>(t_);
    const auto sx = aipe::sub_seed(ctx.seed(), 1), st = aipe::sub_seed(ctx.seed(), 2);
    aipe::fill_uniform(x_.get(), n_, sx, -1.f, 1.f, ctx.stream());
    aipe::fill_uniform(table_.get(), t_, st, -1.f, 1.f, ctx.stream());
    ctx.output(y_.get(), y_.bytes());
    grid_ = ctx.device().sm_count * 16;
    ref_.resize(n_);
    const unsigned mask = unsigned(t_ - 1);
    for (std::size_t i = 0; i < n_; ++i)
      ref_[i] = aipe::uniform_at(sx, i, -1.f, 1.f) * aipe::uniform_at(st, unsigned(i * 2654435761ull) & mask, -1.f, 1.f);
  }

  aipe::Work work() const override { return {8.0 * n_ + 4.0 * t_, double(n_), aipe::ComputeUnit::fp32}; }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    std::vector<float> out = aipe::to_host(y_, ctx.stream());
    return aipe::compare(std::span<const float>(out), std::span<const float>(ref_), aipe::tolerance_for(aipe::DType::exact));
  }

 private:
  template <Hint H>
  void launch(cudaStream_t s) {
    gather_scale<H><<<grid_, 256, 0, s>>>(x_.get(), table_.get(), y_.get(), n_, unsigned(t_ - 1));
    AIPE_CHECK_LAUNCH();
  }

  std::size_t n_ = 0, t_ = 0;
  int grid_ = 0;
  aipe::DeviceBuffer<float> x_, y_, table_;
  std::vector<float> ref_;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(StreamingPtx);
