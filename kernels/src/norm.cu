// Host entry points of the RMSNorm kernels (aipe/kernels/norm.hpp, norm.cuh).
#include <algorithm>

#include "aipe/check.hpp"
#include "aipe/kernels/launch.cuh"
#include "aipe/kernels/norm.cuh"
#include "aipe/kernels/norm.hpp"

namespace aipe::kernels {

using bf16 = __nv_bfloat16;  // as in aipe/kernels/gemm.hpp
namespace {

// A thread per vector, rounded up to whole warps, 64..1024: hidden 4096 with 16-byte vectors is 512 threads.
int block_for(int vectors) { return std::clamp((vectors + 31) / 32 * 32, 64, 1024); }

template <int VEC, bool kFused>
void launch(const bf16* x, bf16* hidden, const bf16* delta, const bf16* w, bf16* y, int tokens, int cols,
            float eps, cudaStream_t stream) {
  auto* kernel = norm::rmsnorm_kernel<VEC, kFused>;
  const std::size_t smem = std::size_t(cols) * sizeof(float);
  // Above the 48 KiB every kernel may use, an opt-in (made once per device): hidden > 12288.
  if (smem > 48 * 1024) set_max_dynamic_smem(kernel, smem);
  launch_pdl(kernel, dim3(tokens), dim3(block_for(cols / VEC)), smem, stream, x, hidden, delta, w, y, cols, eps);
  AIPE_CHECK_LAUNCH();
}

}  // namespace

void rmsnorm(const bf16* x, const bf16* weight, bf16* y, int tokens, int hidden, float eps, cudaStream_t stream) {
  check_rmsnorm(x, weight, y, tokens, hidden, eps);
  if (tokens == 0) return;
  if (hidden % 8 == 0 && vec::aligned16(x) && vec::aligned16(weight) && vec::aligned16(y))
    launch<8, false>(x, nullptr, nullptr, weight, y, tokens, hidden, eps, stream);
  else
    launch<1, false>(x, nullptr, nullptr, weight, y, tokens, hidden, eps, stream);
}

void fused_add_rmsnorm(bf16* hidden, const bf16* delta, const bf16* weight, bf16* y, int tokens,
                       int hidden_size, float eps, cudaStream_t stream) {
  check_rmsnorm(hidden, weight, y, tokens, hidden_size, eps);
  check_fused_add_rmsnorm(hidden, delta, y, tokens);
  if (tokens == 0) return;
  if (hidden_size % 8 == 0 && vec::aligned16(hidden) && vec::aligned16(delta) && vec::aligned16(weight) &&
      vec::aligned16(y))
    launch<8, true>(nullptr, hidden, delta, weight, y, tokens, hidden_size, eps, stream);
  else
    launch<1, true>(nullptr, hidden, delta, weight, y, tokens, hidden_size, eps, stream);
}

}  // namespace aipe::kernels
