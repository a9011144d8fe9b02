// attention::gather_kv (gather_kv.hpp): a copy kernel, 16 bytes per thread. The grid is (token tiles, sequence):
// a CTA copies kGatherTokens tokens of one sequence, each token's kv_heads * d values one contiguous run in the
// page (paged.hpp's layout) and in the output, so every load and store is a full 16-byte vector.
#include <cuda_bf16.h>

#include <cstdint>

#include "aipe/check.hpp"
#include "aipe/kernels/attention/gather_kv.hpp"

namespace aipe::kernels::attention {
namespace {

constexpr int kGatherTokens = 16;
constexpr int kGatherThreads = 128;

__global__ void __launch_bounds__(kGatherThreads) gather_kv_kernel(const GatherKvArgs a) {
  const int b = blockIdx.y;
  const int begin = a.cu_seqlens[b];
  const int len = a.cu_seqlens[b + 1] - begin;
  const int t0 = blockIdx.x * kGatherTokens;
  if (t0 >= len) return;
  const int n = min(kGatherTokens, len - t0);
  const PagedKvCache& c = a.cache;
  const int chunks = c.kv_heads * c.d / 8;  // uint4 per token
  const int* row = c.block_table + std::size_t(b) * c.max_pages_per_seq;
  const uint4* ks = static_cast<const uint4*>(c.k);
  const uint4* vs = static_cast<const uint4*>(c.v);
  uint4* kd = reinterpret_cast<uint4*>(a.k_out);
  uint4* vd = reinterpret_cast<uint4*>(a.v_out);
  for (int i = threadIdx.x; i < n * chunks; i += blockDim.x) {
    const int t = t0 + i / chunks, ch = i % chunks;
    const int blk = t / c.page_size;
    const std::int64_t out_row = std::int64_t(begin) + t;
    if (blk >= c.max_pages_per_seq || out_row >= a.total) continue;
    const int page = row[blk];
    uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
    if (page >= 0 && page < c.num_pages) {
      const std::size_t src = (std::size_t(page) * c.page_size + t % c.page_size) * chunks + ch;
      kv = ks[src];
      vv = vs[src];
    }
    kd[std::size_t(out_row) * chunks + ch] = kv;
    vd[std::size_t(out_row) * chunks + ch] = vv;
  }
}

}  // namespace

void gather_kv(const GatherKvArgs& a, cudaStream_t stream) {
  check_gather_kv_args(a);
  const dim3 grid(unsigned((a.max_len + kGatherTokens - 1) / kGatherTokens), unsigned(a.batch));
  gather_kv_kernel<<<grid, kGatherThreads, 0, stream>>>(a);
  AIPE_CHECK_LAUNCH();
}

}  // namespace aipe::kernels::attention
