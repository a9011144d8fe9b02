// Host side of paged decode attention: the shape and table checks of paged.hpp, the argument checks and the
// split planner of decode.hpp. No CUDA runtime call here, so the CPU tests reach all of it.
#include <algorithm>
#include <cmath>
#include <bit>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "aipe/kernels/attention/decode.hpp"
#include "aipe/kernels/attention/paged.hpp"

namespace aipe::kernels::attention {

namespace {

[[noreturn]] void fail(const std::string& what) { throw std::invalid_argument(what); }

bool aligned16(const void* p) { return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0; }

std::string str(std::int64_t v) { return std::to_string(v); }

}  // namespace

void check_paged_kv(const PagedKvCache& c, int batch) {
  if (!c.k || !c.v) fail("paged KV cache: k and v must not be null");
  if (!c.block_table) fail("paged KV cache: block_table must not be null");
  if (!c.context_lens) fail("paged KV cache: context_lens must not be null");
  if (batch < 1) fail("paged KV cache: batch must be at least 1 (got " + str(batch) + ")");
  if (c.num_pages < 1) fail("paged KV cache: num_pages must be at least 1 (got " + str(c.num_pages) + ")");
  if (c.page_size < 8 || c.page_size > 256 || !std::has_single_bit(unsigned(c.page_size)))
    fail("paged KV cache: page_size must be a power of two in [8, 256] (got " + str(c.page_size) + ")");
  if (c.kv_heads < 1) fail("paged KV cache: kv_heads must be at least 1 (got " + str(c.kv_heads) + ")");
  if (c.d != 64 && c.d != 128) fail("paged KV cache: d must be 64 or 128 (got " + str(c.d) + ")");
  if (c.max_pages_per_seq < 1)
    fail("paged KV cache: max_pages_per_seq must be at least 1 (got " + str(c.max_pages_per_seq) + ")");
  if (c.capacity() > INT32_MAX)
    fail("paged KV cache: max_pages_per_seq * page_size (" + str(c.capacity()) + ") exceeds int32 positions");
  if (!aligned16(c.k) || !aligned16(c.v)) fail("paged KV cache: k and v must be 16-byte aligned (cp.async)");
  if (c.dtype != KvDType::bf16 && c.dtype != KvDType::fp8_e4m3)
    fail("paged KV cache: dtype must be bf16 or fp8_e4m3");
  if (c.dtype == KvDType::fp8_e4m3 && (!c.k_scale || !c.v_scale))
    fail("paged KV cache: an fp8_e4m3 cache needs k_scale and v_scale ([num_pages][kv_heads])");
}

void check_block_table(std::span<const int> block_table, std::span<const int> context_lens, int max_pages_per_seq,
                       int page_size, int num_pages) {
  if (max_pages_per_seq < 1 || page_size < 1 || num_pages < 1)
    fail("block table: max_pages_per_seq, page_size and num_pages must be at least 1");
  const std::size_t batch = context_lens.size();
  if (block_table.size() < batch * std::size_t(max_pages_per_seq))
    fail("block table: " + str(std::int64_t(block_table.size())) + " entries for " + str(std::int64_t(batch)) +
         " sequences of " + str(max_pages_per_seq) + " pages");
  const std::int64_t capacity = std::int64_t(max_pages_per_seq) * page_size;
  for (std::size_t b = 0; b < batch; ++b) {
    const int len = context_lens[b];
    if (len < 0 || len > capacity)
      fail("block table: context_lens[" + str(std::int64_t(b)) + "] = " + str(len) + " is outside [0, " +
           str(capacity) + "]");
    const int used = (len + page_size - 1) / page_size;
    for (int i = 0; i < used; ++i) {
      const int page = block_table[b * std::size_t(max_pages_per_seq) + i];
      if (page < 0 || page >= num_pages)
        fail("block table: block_table[" + str(std::int64_t(b)) + "][" + str(i) + "] = " + str(page) +
             " is not a page (num_pages " + str(num_pages) + ")");
    }
  }
}

SplitPlan plan_splits(const SplitInputs& in) {
  if (in.sm_count < 1 || in.ctas_per_sm < 1 || in.ctas_per_split < 1 || in.tile_tokens < 1 || in.max_context < 0)
    fail("plan_splits: sm_count, ctas_per_sm, ctas_per_split and tile_tokens must be at least 1, max_context >= 0");
  if (in.requested < 0) fail("plan_splits: requested splits must be >= 0 (got " + str(in.requested) + ")");
  if (in.work_tokens < 0) fail("plan_splits: work_tokens must be >= 0");
  constexpr int kMinTilesPerSplit = 8;
  constexpr int kMaxSplits = 128;
  constexpr double kChunksPerSlot = 4;
  const int tiles = std::max(1, (in.max_context + in.tile_tokens - 1) / in.tile_tokens);
  int tiles_per_split = tiles;
  if (in.requested > 0) {
    const int splits = std::min({in.requested, tiles, kMaxSplits});
    tiles_per_split = (tiles + splits - 1) / splits;
  } else {
    // Each resident CTA slot's share of the work, cut into kChunksPerSlot chunks: the block scheduler then
    // balances a ragged batch to within about half a chunk per slot (1/8 of the time), while each chunk still
    // streams at least 8 tiles past its fixed cost (pipeline fill, merge, partial output).
    const double slots = double(in.sm_count) * in.ctas_per_sm;
    const double work = in.work_tokens > 0 ? double(in.work_tokens)
                                           : 0.75 * double(in.ctas_per_split) * double(in.max_context);
    const double chunk_tiles = work / slots / kChunksPerSlot / in.tile_tokens;
    tiles_per_split = std::clamp(int(std::ceil(chunk_tiles)), kMinTilesPerSplit, std::max(tiles, kMinTilesPerSplit));
    tiles_per_split = std::max(tiles_per_split, (tiles + kMaxSplits - 1) / kMaxSplits);
  }
  SplitPlan p;
  p.tokens_per_split = tiles_per_split * in.tile_tokens;
  p.num_splits = (tiles + tiles_per_split - 1) / tiles_per_split;  // no split left empty
  return p;
}

void check_decode_args(const DecodeArgs& a) {
  if (!a.q || !a.out) fail("decode: q and out must not be null");
  check_paged_kv(a.cache, a.batch);
  if (a.q_len < 1 || a.q_len > 4) fail("decode: q_len must be in [1, 4] (got " + str(a.q_len) + ")");
  if (a.heads < 1) fail("decode: heads must be at least 1 (got " + str(a.heads) + ")");
  if (a.heads % a.cache.kv_heads != 0)
    fail("decode: heads (" + str(a.heads) + ") must be a multiple of kv_heads (" + str(a.cache.kv_heads) + ")");
  if (a.batch > 65535) fail("decode: batch must be at most 65535 (got " + str(a.batch) + ")");
  if (a.max_context < 0 || a.max_context > a.cache.capacity())
    fail("decode: max_context (" + str(a.max_context) + ") must be in [0, max_pages_per_seq * page_size = " +
         str(a.cache.capacity()) + "]");
  if (a.window < 0) fail("decode: window must be >= 0 (got " + str(a.window) + ")");
  if (a.total_context < 0) fail("decode: total_context must be >= 0 (0: unknown)");
  if (a.q_row_stride != 0 &&
      (a.q_row_stride < std::int64_t(a.heads) * a.cache.d || a.q_row_stride % 8 != 0))
    fail("decode: q_row_stride (" + str(a.q_row_stride) + ") must be 0 or a multiple of 8 that is at least heads * d (" +
         str(std::int64_t(a.heads) * a.cache.d) + ")");
  if (!(a.scale >= 0.f)) fail("decode: scale must be >= 0 (0: 1/sqrt(d))");
  if (a.schedule.num_splits < 0) fail("decode: schedule.num_splits must be >= 0");
  if (a.schedule.stages != 0 && (a.schedule.stages < 2 || a.schedule.stages > 4))
    fail("decode: schedule.stages must be 0 (default), 2, 3 or 4 (got " + str(a.schedule.stages) + ")");
  if (!aligned16(a.q) || !aligned16(a.out)) fail("decode: q and out must be 16-byte aligned");
  if (a.workspace && !aligned16(a.workspace)) fail("decode: workspace must be 16-byte aligned");
}

void check_append_kv_args(const AppendKvArgs& a) {
  if (!a.k_new || !a.v_new || !a.slot_mapping || !a.k_cache || !a.v_cache)
    fail("append_kv: k_new, v_new, slot_mapping, k_cache and v_cache must not be null");
  if (a.tokens < 0) fail("append_kv: tokens must be >= 0 (got " + str(a.tokens) + ")");
  if (a.num_pages < 1 || a.page_size < 1 || a.kv_heads < 1)
    fail("append_kv: num_pages, page_size and kv_heads must be at least 1");
  if (a.d < 8 || a.d % 8 != 0) fail("append_kv: d must be a positive multiple of 8 (got " + str(a.d) + ")");
  if (a.kv_row_stride != 0 &&
      (a.kv_row_stride < std::int64_t(a.kv_heads) * a.d || a.kv_row_stride % 8 != 0))
    fail("append_kv: kv_row_stride (" + str(a.kv_row_stride) + ") must be 0 or a multiple of 8 that is at least "
         "kv_heads * d (" + str(std::int64_t(a.kv_heads) * a.d) + ")");
  for (const void* p : {static_cast<const void*>(a.k_new), static_cast<const void*>(a.v_new),
                        static_cast<const void*>(a.k_cache), static_cast<const void*>(a.v_cache)})
    if (!aligned16(p)) fail("append_kv: the K/V pointers must be 16-byte aligned");
}

}  // namespace aipe::kernels::attention
