// Host entry points of soft-capping and log-softmax (aipe/kernels/logits.hpp, logits.cuh).
#include <algorithm>

#include "aipe/check.hpp"
#include "aipe/kernels/logits.cuh"
#include "aipe/kernels/logits.hpp"

namespace aipe::kernels {
namespace {

template <class T>
void softcap_impl(T* logits, std::int64_t ld, int batch, int vocab, float cap, cudaStream_t stream) {
  check_softcap(logits, ld, batch, vocab, cap);
  if (batch == 0) return;
  const std::int64_t n = std::int64_t(batch) * vocab;
  const int grid = int(std::clamp<std::int64_t>((n + 255) / 256, 1, 8192));
  logits_detail::softcap_kernel<<<grid, 256, 0, stream>>>(logits, ld, batch, vocab, cap);
  AIPE_CHECK_LAUNCH();
}

template <class T>
void log_softmax_impl(const T* logits, std::int64_t ld, int batch, int vocab, float* out, std::int64_t ld_out,
                      cudaStream_t stream) {
  check_log_softmax(logits, ld, batch, vocab, out, ld_out);
  if (batch == 0) return;
  logits_detail::log_softmax_kernel<<<batch, logits_detail::kRowThreads, 0, stream>>>(logits, ld, vocab, out, ld_out);
  AIPE_CHECK_LAUNCH();
}

}  // namespace

void softcap(float* logits, std::int64_t ld, int batch, int vocab, float cap, cudaStream_t stream) {
  softcap_impl(logits, ld, batch, vocab, cap, stream);
}
void softcap(__nv_bfloat16* logits, std::int64_t ld, int batch, int vocab, float cap, cudaStream_t stream) {
  softcap_impl(logits, ld, batch, vocab, cap, stream);
}
void log_softmax(const float* logits, std::int64_t ld, int batch, int vocab, float* out, std::int64_t ld_out,
                 cudaStream_t stream) {
  log_softmax_impl(logits, ld, batch, vocab, out, ld_out, stream);
}
void log_softmax(const __nv_bfloat16* logits, std::int64_t ld, int batch, int vocab, float* out, std::int64_t ld_out,
                 cudaStream_t stream) {
  log_softmax_impl(logits, ld, batch, vocab, out, ld_out, stream);
}

}  // namespace aipe::kernels
