// check_flex_args and alibi_slopes: forward_flex's host-only rules (CPU-tested in
// tests/kernels/attention_flex_test.cpp). The tensor rules are forward()'s (check_forward_args); these are the
// limits of the functor kernels and the block map's shape.
#include <cmath>
#include <stdexcept>
#include <string>

#include "aipe/kernels/attention/forward_flex.hpp"

namespace aipe::kernels::attention {
namespace {

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument("attention::forward_flex: " + what); }

}  // namespace

void check_flex_args(const FlexArgs& args) {
  const ForwardArgs& a = args.attn;
  if (a.dtype != DType::bf16) bad("the functor kernels are built for BF16 only");
  if (a.d != 64 && a.d != 128)
    bad("head dimension d = " + std::to_string(a.d) + " is not built; the functor kernels have d = 64 and 128");
  if (a.mask != MaskKind::none) bad("attn.mask must be none: the mask is the functor");
  if (a.cu_seqlens_q || a.cu_seqlens_kv)
    bad("variable-length batches are not taken; pack the documents and use a Document mask");
  check_forward_args(a);  // pointers, strides, sizes, scale (its messages name attention::forward)
  const BlockMap& m = args.block_map;
  if (!m.classes) return;
  const BlockMap want = BlockMap::shape(a.batch, 1, a.seq_q, a.seq_kv);
  if (m.batch != a.batch || (m.heads != 1 && m.heads != a.heads) || m.q_blocks != want.q_blocks ||
      m.kv_blocks != want.kv_blocks)
    bad("block_map is " + std::to_string(m.batch) + " x " + std::to_string(m.heads) + " x " +
        std::to_string(m.q_blocks) + " x " + std::to_string(m.kv_blocks) + "; this problem needs " +
        std::to_string(a.batch) + " x (1 or " + std::to_string(a.heads) + ") x " + std::to_string(want.q_blocks) +
        " x " + std::to_string(want.kv_blocks) + " (blocks of " + std::to_string(kMapRows) + " queries x " +
        std::to_string(kMapKeys) + " keys)");
}

std::vector<float> alibi_slopes(int heads) {
  if (heads < 1) throw std::invalid_argument("alibi_slopes: heads must be at least 1; got " + std::to_string(heads));
  // Slopes of a power of two n: the geometric sequence starting at 2^(-8 / n) with that ratio.
  auto pow2_slopes = [](int n) {
    std::vector<float> s(n);
    for (int i = 0; i < n; ++i) s[i] = float(std::exp2(-8.0 * (i + 1) / n));
    return s;
  };
  int n = 1;
  while (n * 2 <= heads) n *= 2;
  std::vector<float> s = pow2_slopes(n);
  const std::vector<float> extra = pow2_slopes(2 * n);
  for (int i = 0; int(s.size()) < heads; i += 2) s.push_back(extra[i]);
  return s;
}

}  // namespace aipe::kernels::attention
