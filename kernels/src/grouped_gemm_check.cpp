// Host side of aipe::kernels::grouped_gemm that needs no GPU: the argument checks (tested on the CPU in
// tests/kernels/grouped_gemm_check_test.cpp).
#include <cstdint>
#include <stdexcept>
#include <string>

#include "aipe/kernels/grouped_gemm.hpp"

namespace aipe::kernels {
namespace {

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument("kernels::grouped_gemm: " + what); }

bool aligned(const void* p, std::uintptr_t bytes) { return reinterpret_cast<std::uintptr_t>(p) % bytes == 0; }

}  // namespace

void check_grouped_gemm_args(const GroupedGemmArgs& g) {
  if (g.experts < 1 || g.experts > 1024) bad("experts must be in 1..1024, got " + std::to_string(g.experts));
  if (g.n < 1) bad("n must be >= 1, got " + std::to_string(g.n));
  if (g.k < 1) bad("k must be >= 1, got " + std::to_string(g.k));
  if (g.rows < 0) bad("rows must be >= 0, got " + std::to_string(g.rows));
  if (!g.offsets) bad("offsets is null");
  const bool bf16_w = g.w != nullptr, mx = g.w_blocks != nullptr || g.w_scales != nullptr;
  if (bf16_w == mx) bad("give the weights either as w (BF16) or as w_blocks and w_scales (MXFP4), one of the two");
  if (mx && (!g.w_blocks || !g.w_scales)) bad(std::string(g.w_blocks ? "w_scales" : "w_blocks") + " is null");
  if (bf16_w) {
    if (g.k % 8 != 0) bad("k must be a multiple of 8 with BF16 weights (16-byte TMA rows), got " + std::to_string(g.k));
    if (!aligned(g.w, 16)) bad("w must be 16-byte aligned");
    const std::int64_t nk = std::int64_t(g.n) * g.k;
    if (g.w_expert_stride != 0 && (g.w_expert_stride < nk || g.w_expert_stride % 8 != 0))
      bad("w_expert_stride must be 0 or a multiple of 8 of at least n * k = " + std::to_string(nk) + ", got " +
          std::to_string(g.w_expert_stride));
  } else {
    if (g.k % 32 != 0) bad("k must be a multiple of 32 with MXFP4 weights (blocks of 32), got " + std::to_string(g.k));
    if (!aligned(g.w_blocks, 16)) bad("w_blocks must be 16-byte aligned");
    if (g.w_expert_stride != 0) bad("w_expert_stride applies to BF16 weights only (MXFP4 experts are packed)");
  }
  if (g.rows == 0) return;  // nothing is read or written
  if (!g.a.data) bad("a is null");
  if (g.a.cols != g.k) bad("a has " + std::to_string(g.a.cols) + " columns, k is " + std::to_string(g.k));
  if (g.a.ld < g.a.cols) bad("a's ld (" + std::to_string(g.a.ld) + ") is below its columns");
  if (!aligned(g.a.data, 16) || g.a.ld % 8 != 0) bad("a's base and row pitch must be 16-byte aligned (ld % 8 == 0)");
  if (g.gather) {
    if (g.a.rows < 1) bad("a has no rows for gather to read");
  } else if (g.a.rows < g.rows) {
    bad("a has " + std::to_string(g.a.rows) + " rows, fewer than rows = " + std::to_string(g.rows));
  }
  if (!g.c.data) bad("c is null");
  if (g.c.rows < g.rows)
    bad("c has " + std::to_string(g.c.rows) + " rows, fewer than rows = " + std::to_string(g.rows));
  if (g.c.cols != g.n) bad("c has " + std::to_string(g.c.cols) + " columns, n is " + std::to_string(g.n));
  if (g.c.ld < g.c.cols) bad("c's ld (" + std::to_string(g.c.ld) + ") is below its columns");
  if (!aligned(g.c.data, 4)) bad("c must be 4-byte aligned");
  if (g.bias && !aligned(g.bias, 2)) bad("bias must be 2-byte aligned");
}

}  // namespace aipe::kernels
