// Paged -> contiguous: the K and V of the first tokens of each sequence, read through its block-table row and
// packed back to back, the shape attention::forward's variable-length path reads (kernels/src/attention_gather_kv.cu).
// A prefill chunk that continues over tokens already in the cache (a prefix-cache hit, an earlier chunk) attends
// over keys that live only in the pages; this is how forward() gets them.
//
//   in    the paged cache of paged.hpp: [num_pages][page_size][kv_heads][d] BF16, block_table [batch][max_pages]
//   out   k_out, v_out [total][kv_heads][d] BF16; rows [cu_seqlens[b], cu_seqlens[b + 1]) hold tokens
//         0 .. len_b - 1 of sequence b (len_b = cu_seqlens[b + 1] - cu_seqlens[b]), in order
//
// The lengths live on the device (the step's cu_seqlens, also forward()'s cu_seqlens_kv), so the host checks
// shapes only: a block-table entry outside [0, num_pages) gives zero rows, a token past the row's capacity or a
// row at or past `total` is not written.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include "aipe/kernels/attention/paged.hpp"

namespace aipe::kernels::attention {

struct GatherKvArgs {
  PagedKvCache cache{};             // BF16; block_table rows [batch]; context_lens is not read (may be null)
  const int* cu_seqlens = nullptr;  // [batch + 1] device, non-decreasing, cu_seqlens[0] = 0
  int batch = 0;
  int max_len = 0;                  // >= every len_b: the grid covers this many tokens per sequence
  int total = 0;                    // rows of k_out and v_out (cu_seqlens[batch])
  __nv_bfloat16* k_out = nullptr;   // [total][kv_heads][d]
  __nv_bfloat16* v_out = nullptr;
};

// std::invalid_argument naming the field: null pointers, a non-BF16 cache, shapes check_paged_kv refuses,
// batch < 1, max_len < 1 or beyond the row capacity, total < max_len, misaligned outputs. CPU-testable.
void check_gather_kv_args(const GatherKvArgs& args);
void gather_kv(const GatherKvArgs& args, cudaStream_t stream);

}  // namespace aipe::kernels::attention
