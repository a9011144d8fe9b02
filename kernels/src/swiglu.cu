// Host entry point of the SwiGLU kernel (aipe/kernels/swiglu.hpp, swiglu.cuh).
#include <algorithm>

#include "aipe/check.hpp"
#include "aipe/kernels/launch.cuh"
#include "aipe/kernels/swiglu.cuh"
#include "aipe/kernels/swiglu.hpp"

namespace aipe::kernels {

void swiglu(const __nv_bfloat16* gate_up, __nv_bfloat16* out, int tokens, int inter, cudaStream_t stream) {
  check_swiglu(gate_up, out, tokens, inter);
  if (tokens == 0) return;
  const bool v8 = inter % 8 == 0 && vec::aligned16(gate_up) && vec::aligned16(out);
  const std::int64_t vectors = std::int64_t(tokens) * (v8 ? inter / 8 : inter);
  // Enough CTAs to fill the GPU several times over, never more than there are vectors.
  const int grid = int(std::clamp<std::int64_t>((vectors + 255) / 256, 1, 65536));
  if (v8)
    launch_pdl(swiglu_detail::swiglu_kernel<8>, dim3(grid), dim3(256), 0, stream, gate_up, out, tokens, inter);
  else
    launch_pdl(swiglu_detail::swiglu_kernel<1>, dim3(grid), dim3(256), 0, stream, gate_up, out, tokens, inter);
  AIPE_CHECK_LAUNCH();
}

void swiglu_clamped_interleaved(const __nv_bfloat16* gate_up, __nv_bfloat16* out, int rows, int inter,
                                const ClampedSwiglu& act, cudaStream_t stream) {
  check_swiglu_clamped(gate_up, out, rows, inter, act);
  if (rows == 0) return;
  // Row r's inputs start at 4 r inter bytes and output i's at 4 i: 16-byte aligned when inter % 4 == 0.
  const bool v4 = inter % 4 == 0 && vec::aligned16(gate_up) && vec::aligned16(out);
  const std::int64_t items = std::int64_t(rows) * (v4 ? inter / 4 : inter);
  const int grid = int(std::clamp<std::int64_t>((items + 255) / 256, 1, 65536));
  if (v4)
    swiglu_detail::swiglu_clamped_kernel<4><<<grid, 256, 0, stream>>>(gate_up, out, rows, inter, act.alpha, act.limit);
  else
    swiglu_detail::swiglu_clamped_kernel<1><<<grid, 256, 0, stream>>>(gate_up, out, rows, inter, act.alpha, act.limit);
  AIPE_CHECK_LAUNCH();
}

}  // namespace aipe::kernels
