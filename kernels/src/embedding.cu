// Host entry point of the embedding gather (aipe/kernels/embedding.hpp, embedding.cuh).
#include <algorithm>

#include "aipe/check.hpp"
#include "aipe/kernels/launch.cuh"
#include "aipe/kernels/embedding.cuh"
#include "aipe/kernels/embedding.hpp"
#include "aipe/kernels/vec.cuh"

namespace aipe::kernels {

void embedding(const int* ids, const __nv_bfloat16* table, __nv_bfloat16* out, int* error, int tokens, int vocab,
               int hidden, cudaStream_t stream) {
  check_embedding(ids, table, out, error, tokens, vocab, hidden);
  if (tokens == 0) return;
  const bool v8 = hidden % 8 == 0 && vec::aligned16(table) && vec::aligned16(out);
  const int vectors = v8 ? hidden / 8 : hidden;
  const int block = std::clamp((vectors + 31) / 32 * 32, 32, 512);
  if (v8)
    launch_pdl(embedding_detail::embedding_kernel<8>, dim3(tokens), dim3(block), 0, stream, ids, table, out, error, vocab, hidden);
  else
    launch_pdl(embedding_detail::embedding_kernel<1>, dim3(tokens), dim3(block), 0, stream, ids, table, out, error, vocab, hidden);
  AIPE_CHECK_LAUNCH();
}

}  // namespace aipe::kernels
