// Host-side checks of attention::gather_kv (gather_kv.hpp); no CUDA runtime call, so the CPU tests reach them.
#include <cstdint>
#include <stdexcept>
#include <string>

#include "aipe/kernels/attention/gather_kv.hpp"

namespace aipe::kernels::attention {

void check_gather_kv_args(const GatherKvArgs& a) {
  auto fail = [](const std::string& what) { throw std::invalid_argument("attention::gather_kv: " + what); };
  if (a.cache.dtype != KvDType::bf16) fail("the cache must be BF16 (FP8 pages are read by decode only)");
  if (!a.cu_seqlens) fail("cu_seqlens must not be null");
  if (!a.k_out || !a.v_out) fail("k_out and v_out must not be null");
  if ((reinterpret_cast<std::uintptr_t>(a.k_out) | reinterpret_cast<std::uintptr_t>(a.v_out)) % 16 != 0)
    fail("k_out and v_out must be 16-byte aligned (rows are copied 16 bytes at a time)");
  if (a.batch < 1 || a.batch > 65535) fail("batch must be in [1, 65535] (got " + std::to_string(a.batch) + ")");
  // check_paged_kv wants context lengths; gather_kv takes its lengths from cu_seqlens instead.
  PagedKvCache c = a.cache;
  if (!c.context_lens) c.context_lens = a.cu_seqlens;
  check_paged_kv(c, a.batch);
  if (a.max_len < 1 || a.max_len > c.capacity())
    fail("max_len " + std::to_string(a.max_len) + " must be in [1, max_pages_per_seq * page_size = " +
         std::to_string(c.capacity()) + "]");
  if (a.total < a.max_len) fail("total " + std::to_string(a.total) + " must be >= max_len " + std::to_string(a.max_len));
}

}  // namespace aipe::kernels::attention
