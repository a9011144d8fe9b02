// Host entry points of the sampling kernels (aipe/kernels/sampling.hpp, sampling.cuh).
#include <stdexcept>

#include "aipe/check.hpp"
#include "aipe/kernels/launch.cuh"
#include "aipe/kernels/sampling.cuh"
#include "aipe/kernels/sampling.hpp"

namespace aipe::kernels {
namespace {

template <class T>
void launch(const T* logits, std::int64_t ld, int batch, int vocab, const SamplingParams* params, int* tokens,
            cudaStream_t stream) {
  check_sampling(logits, ld, batch, vocab, tokens);
  if (batch == 0) return;
  launch_pdl(sampling::sample_kernel<T>, dim3(batch), dim3(sampling::kThreads), 0, stream, logits, ld, vocab, params, tokens);
  AIPE_CHECK_LAUNCH();
}

}  // namespace

void argmax(const float* logits, std::int64_t ld, int batch, int vocab, int* tokens, cudaStream_t stream) {
  launch(logits, ld, batch, vocab, nullptr, tokens, stream);
}
void argmax(const __nv_bfloat16* logits, std::int64_t ld, int batch, int vocab, int* tokens, cudaStream_t stream) {
  launch(logits, ld, batch, vocab, nullptr, tokens, stream);
}
void sample(const float* logits, std::int64_t ld, int batch, int vocab, const SamplingParams* params, int* tokens,
            cudaStream_t stream) {
  if (params == nullptr && batch > 0) throw std::invalid_argument("kernels::sample: params is null");
  launch(logits, ld, batch, vocab, params, tokens, stream);
}
void sample(const __nv_bfloat16* logits, std::int64_t ld, int batch, int vocab, const SamplingParams* params,
            int* tokens, cudaStream_t stream) {
  if (params == nullptr && batch > 0) throw std::invalid_argument("kernels::sample: params is null");
  launch(logits, ld, batch, vocab, params, tokens, stream);
}

}  // namespace aipe::kernels
