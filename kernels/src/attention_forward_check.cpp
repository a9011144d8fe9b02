// check_forward_args: every rule aipe::kernels::attention::forward needs of its arguments, host-only so the
// CPU tests (tests/kernels/attention_forward_check_test.cpp) reach each one. A problem the kernel cannot take
// throws std::invalid_argument naming the rule; nothing is ever launched on a problem it would get wrong.
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "aipe/kernels/attention/forward.hpp"

namespace aipe::kernels::attention {
namespace {

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument("attention::forward: " + what); }

void check_pointer(const void* p, const char* name) {
  if (!p) bad(std::string(name) + " is null");
  if (reinterpret_cast<std::uintptr_t>(p) % 16 != 0)
    bad(std::string(name) + " is not 16-byte aligned (TMA reads the tensors)");
}

// Strides in elements: non-negative, multiples of 8 (16 bytes of BF16 / FP16, TMA's rule), below 2^39.
void check_stride(std::int64_t s, const char* name) {
  if (s < 0) bad(std::string(name) + " stride " + std::to_string(s) + " is negative");
  if (s % 8 != 0) bad(std::string(name) + " stride " + std::to_string(s) + " is not a multiple of 8 elements (16 bytes)");
  if (s >= (std::int64_t(1) << 39)) bad(std::string(name) + " stride " + std::to_string(s) + " is not below 2^39");
}

}  // namespace

void check_forward_args(const ForwardArgs& a) {
  if (a.dtype != DType::bf16 && a.dtype != DType::fp16) bad("unknown dtype " + std::to_string(int(a.dtype)));
  if (a.dtype == DType::bf16 && a.d != 64 && a.d != 128 && a.d != 256)
    bad("head dimension d = " + std::to_string(a.d) + " is not built for BF16; the kernel has d = 64, 128 and 256");
  if (a.dtype == DType::fp16 && a.d != 64 && a.d != 128)
    bad("head dimension d = " + std::to_string(a.d) + " is not built for FP16; the kernel has d = 64 and 128");
  if (a.batch < 1 || a.heads < 1 || a.kv_heads < 1 || a.seq_q < 1 || a.seq_kv < 1)
    bad("batch, heads, kv_heads, seq_q and seq_kv must each be at least 1 (got " + std::to_string(a.batch) + ", " +
        std::to_string(a.heads) + ", " + std::to_string(a.kv_heads) + ", " + std::to_string(a.seq_q) + ", " +
        std::to_string(a.seq_kv) + ")");
  if (a.heads % a.kv_heads != 0)
    bad("heads (" + std::to_string(a.heads) + ") must be a multiple of kv_heads (" + std::to_string(a.kv_heads) + ")");
  if (a.seq_q >= (1 << 30) || a.seq_kv >= (1 << 30)) bad("sequence lengths must be below 2^30");
  const bool varlen = a.cu_seqlens_q || a.cu_seqlens_kv;
  if (varlen) {
    if (!a.cu_seqlens_q || !a.cu_seqlens_kv)
      bad("variable-length batches need both cu_seqlens_q and cu_seqlens_kv (one is null)");
    if (a.total_q < a.seq_q || a.total_kv < a.seq_kv)
      bad("variable-length batches need total_q >= seq_q and total_kv >= seq_kv (the packed tensors' rows; got " +
          std::to_string(a.total_q) + " and " + std::to_string(a.total_kv) + ")");
    if (a.total_q >= (1 << 30) || a.total_kv >= (1 << 30)) bad("total_q and total_kv must be below 2^30");
  }
  check_pointer(a.q, "q");
  check_pointer(a.k, "k");
  check_pointer(a.v, "v");
  check_pointer(a.o, "o");
  if (a.lse && reinterpret_cast<std::uintptr_t>(a.lse) % 4 != 0) bad("lse is not 4-byte aligned");
  if (!varlen) {
    check_stride(a.q_batch, "q_batch");
    check_stride(a.kv_batch, "kv_batch");
  }
  check_stride(a.q_row, "q_row");
  check_stride(a.q_head, "q_head");
  check_stride(a.kv_row, "kv_row");
  check_stride(a.kv_head, "kv_head");
  // A stride that is used (more than one index along it) must step past a whole head vector, else the rows overlap.
  auto used = [&](std::int64_t s, int count, const char* name) {
    if (count > 1 && s < a.d)
      bad(std::string(name) + " stride " + std::to_string(s) + " is smaller than d = " + std::to_string(a.d) +
          " (rows would overlap)");
  };
  if (!varlen) {  // packed batches ignore the batch strides
    used(a.q_batch, a.batch, "q_batch");
    used(a.kv_batch, a.batch, "kv_batch");
  }
  used(a.q_row, varlen ? a.total_q : a.seq_q, "q_row");
  used(a.q_head, a.heads, "q_head");
  used(a.kv_row, varlen ? a.total_kv : a.seq_kv, "kv_row");
  used(a.kv_head, a.kv_heads, "kv_head");
  if (!std::isfinite(a.scale) || a.scale < 0.f)
    bad("scale must be finite and positive (0 selects 1 / sqrt(d)); got " + std::to_string(a.scale));
  switch (a.mask) {
    case MaskKind::none:
    case MaskKind::causal: break;
    case MaskKind::sliding_window:
      if (a.window < 1) bad("a sliding window needs window >= 1; got " + std::to_string(a.window));
      break;
    default: bad("unknown mask kind " + std::to_string(static_cast<int>(a.mask)));
  }
  const std::int64_t tiles = (std::int64_t(a.seq_q) + 127) / 128 * a.heads * a.batch;
  if (tiles >= (std::int64_t(1) << 31)) bad("batch x heads x row blocks of 128 must stay below 2^31");
}

}  // namespace aipe::kernels::attention
