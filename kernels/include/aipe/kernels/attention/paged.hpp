// The paged KV cache (vLLM's PagedAttention layout) that decode attention reads and append_kv writes.
//
//   K cache, V cache   [num_pages][page_size][kv_heads][d]    BF16, or FP8 E4M3, d contiguous
//   k_scale, v_scale   [num_pages][kv_heads] FP32             FP8 only: value = e4m3 x scale of its (page, kv head)
//   block_table        [batch][max_pages_per_seq] int32       page index of a sequence's i-th block of tokens
//   context_lens       [batch] int32                          tokens in the cache for each sequence
//
// Token t of sequence b lives in page block_table[b][t / page_size], slot t % page_size. A sequence's pages
// need not be contiguous nor in order; entries past ceil(context_lens[b] / page_size) are never read.
// Element (page, slot, kv_head, i) is at ((page * page_size + slot) * kv_heads + kv_head) * d + i: a token's
// kv_heads * d values are one contiguous run, the shape vLLM's reshape_and_cache writes (slot = page *
// page_size + slot_in_page).
//
// Host-side checks (kernels/src/attention_paged.cpp, CPU-tested) throw std::invalid_argument naming the
// field: check_paged_kv for the shapes a kernel relies on, check_block_table for table contents the host has.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>

namespace aipe::kernels::attention {

enum class KvDType : std::uint8_t { bf16, fp8_e4m3 };

struct PagedKvCache {
  const void* k = nullptr;             // [num_pages][page_size][kv_heads][d]
  const void* v = nullptr;             // same layout as k
  int num_pages = 0;
  int page_size = 0;                   // tokens per page: a power of two in [8, 256] (16 and 64 are usual)
  int kv_heads = 0;
  int d = 0;
  const int* block_table = nullptr;    // [batch][max_pages_per_seq], device
  int max_pages_per_seq = 0;
  const int* context_lens = nullptr;   // [batch], device; each in [0, max_pages_per_seq * page_size]
  KvDType dtype = KvDType::bf16;
  const float* k_scale = nullptr;      // fp8_e4m3: [num_pages][kv_heads], device
  const float* v_scale = nullptr;

  // Elements of one cache (K or V).
  std::size_t elements() const { return std::size_t(num_pages) * page_size * kv_heads * d; }
  // The tokens one sequence can hold.
  std::int64_t capacity() const { return std::int64_t(max_pages_per_seq) * page_size; }
};

// Element offset of (page, slot, kv_head, i) in a cache of this shape.
constexpr std::size_t paged_offset(int page, int slot, int kv_head, int i, int page_size, int kv_heads, int d) {
  return ((std::size_t(page) * page_size + slot) * kv_heads + kv_head) * d + i;
}

// The shape rules: non-null pointers, sizes >= 1, page_size a power of two in [8, 256], d in {64, 128},
// 16-byte aligned caches, scales present for FP8. `batch` is the number of block-table rows the caller will use.
void check_paged_kv(const PagedKvCache& c, int batch);

// The contents of a host copy of the block table and context lengths: every context length in
// [0, max_pages_per_seq * page_size], and every page a sequence uses (the first ceil(len / page_size) of its
// row) in [0, num_pages). Pages may be shared between sequences (prefix caching), so no uniqueness rule.
void check_block_table(std::span<const int> block_table, std::span<const int> context_lens, int max_pages_per_seq,
                       int page_size, int num_pages);

}  // namespace aipe::kernels::attention
