// Next-token selection over logits [batch][vocab] (FP32 or BF16, row pitch ld), one CTA per row
// (device code: aipe/kernels/sampling.cuh; entry points: kernels/src/sampling.cu).
//
// argmax: the index of the largest logit; ties go to the lowest index; NaN logits are ignored (a row of NaN or
// -inf gives 0).
// sample: per row, with that row's SamplingParams, in the order Hugging Face's logits warpers apply them:
//   z = logits / temperature                           (temperature == 0: argmax instead)
//   p = softmax(z) in FP32
//   top-k   keep the k largest z                       (k == 0 or k >= vocab: all; ties at the k-th value all kept)
//   top-p   of those, keep the fewest largest whose mass reaches top_p of the kept mass (top_p == 1: all)
//   min-p   of those, keep p >= min_p * max p          (min_p == 0: all)
//   draw    one token from the kept p renormalized, with the row's counter-based random number
// No sort: each threshold is a radix select over the 32-bit order-preserving key of z, three digits (11, 11 and
// 10 bits) of histograms in shared memory, each a pass over the row (the first from DRAM, the rest from L2). The
// top-p pass histograms probability mass instead of counts; masses are the fixed-point weights
// w = floor(exp(z - max z) 2^40) in 64-bit integers, so every sum is exact and the same on every run (a weight of
// zero, a probability below e^-27.7 relative to the top token's, is never drawn). The draw is the inverse CDF over
// the kept weights in index order: u = floor(r M / 2^64), r 64 random bits of (seed, counter), M the kept mass.
// The same (logits, params) give the same token on every run and every GPU.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace aipe::kernels {

struct SamplingParams {
  float temperature = 1.0f;   // >= 0; 0: greedy (argmax)
  int top_k = 0;              // >= 0; 0: off
  float top_p = 1.0f;         // (0, 1]; 1: off
  float min_p = 0.0f;         // [0, 1]; 0: off
  std::uint64_t seed = 0;     // the request's seed
  std::uint64_t counter = 0;  // which draw of the seed's stream: e.g. the number of tokens generated so far
};

// Largest vocabulary the kernels index (an int32 token id); gpt-oss's o200k vocabulary is 201088.
inline constexpr int kSamplingMaxVocab = 1 << 30;

// Throws std::invalid_argument naming the field: temperature negative or not finite, top_k < 0, top_p outside (0, 1],
// min_p outside [0, 1]. The kernel cannot throw: a row whose device-side params fail these rules gets token -1.
void check_sampling_params(const SamplingParams& p);
// The shape rules of argmax and sample: null pointers (unless batch == 0), batch < 0, vocab outside
// [1, kSamplingMaxVocab], ld < vocab.
void check_sampling(const void* logits, std::int64_t ld, int batch, int vocab, const void* tokens);

void argmax(const float* logits, std::int64_t ld, int batch, int vocab, int* tokens, cudaStream_t stream = nullptr);
void argmax(const __nv_bfloat16* logits, std::int64_t ld, int batch, int vocab, int* tokens,
            cudaStream_t stream = nullptr);
// params: device array [batch]; tokens: device int32 [batch].
void sample(const float* logits, std::int64_t ld, int batch, int vocab, const SamplingParams* params, int* tokens,
            cudaStream_t stream = nullptr);
void sample(const __nv_bfloat16* logits, std::int64_t ld, int batch, int vocab, const SamplingParams* params,
            int* tokens, cudaStream_t stream = nullptr);

}  // namespace aipe::kernels
