// Rotary position embeddings as Hugging Face's Llama (and gpt-oss) apply them: the NeoX "rotate-half" layout, in place
// on Q [tokens][heads][d] and K [tokens][kv_heads][d], from a cos/sin table computed once per model.
//
// Frequencies (host, kernels/src/rope_freq.cpp): inv_freq[j], j < d/2, exactly as transformers'
// modeling_rope_utils computes them in FP32: _compute_default_rope_parameters (plain theta),
// _compute_llama3_parameters (rope_type "llama3": factor, low/high_freq_factor, original_max_position_embeddings)
// and _compute_yarn_parameters (rope_type "yarn", gpt-oss: the ramp between interpolation and extrapolation, and the
// attention scaling factor that multiplies cos and sin).
// Table (device): cos_sin[p][j] = (cos(p inv_freq[j]), sin(p inv_freq[j])) * attention_scaling, float2, for
// p < max_positions; the angle is the FP32 product p * inv_freq[j], as HF forms it, its cosine taken in FP64.
// Apply (device, kernels/src/rope.cu), for every head of token t at position p = positions[t] and j < d/2:
//   x1 = x[j], x2 = x[j + d/2]:   x[j] = x1 cos - x2 sin,   x[j + d/2] = x2 cos + x1 sin
// in FP32 with one BF16 rounding per element (HF casts cos and sin to BF16 and rounds after each product; vLLM keeps
// FP32: within one BF16 ulp of each other). A position outside [0, max_positions) leaves that token's heads
// untouched and sets *error to 1 (when error is not null), never reading outside the table.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>
#include <vector_types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "aipe/buffer.hpp"

namespace aipe::kernels {

inline constexpr int kRopeMaxHeadDim = 512;

// The fields of a Hugging Face config that decide the frequencies (config.json: rope_theta, head_dim,
// rope_scaling{...}). Designated initializers read best: RopeConfig{.type = RopeType::llama3, .theta = 500000, ...}.
enum class RopeType { plain, llama3, yarn };
struct RopeConfig {
  RopeType type = RopeType::plain;
  double theta = 10000.0;  // rope_theta
  int dim = 128;           // rotary dimension: head_dim * partial_rotary_factor (even)
  // llama3 and yarn
  double factor = 1.0;
  int original_max_positions = 8192;  // rope_scaling.original_max_position_embeddings
  // llama3
  double low_freq_factor = 1.0, high_freq_factor = 4.0;
  // yarn
  double beta_fast = 32.0, beta_slow = 1.0;
  bool truncate = true;              // rope_scaling.truncate (HF's default true; gpt-oss's config sets false)
  double attention_factor = 0.0;     // rope_scaling.attention_factor; 0: derived from factor (and mscale)
  double mscale = 0.0, mscale_all_dim = 0.0;
};

struct RopeFrequencies {
  std::vector<float> inv_freq;     // [dim / 2]
  float attention_scaling = 1.0f;  // multiplies cos and sin (1 except for yarn)
};

// Throws std::invalid_argument naming the field: theta <= 1, dim odd or outside [2, kRopeMaxHeadDim], factor < 1
// (llama3, yarn), original_max_positions < 1, high_freq_factor <= low_freq_factor (llama3), beta_fast <= beta_slow
// or either <= 0 (yarn).
void check_rope_config(const RopeConfig& c);
RopeFrequencies rope_frequencies(const RopeConfig& c);
std::string to_string(RopeType t);

// The cos/sin table on the device, [max_positions][dim / 2] float2, built once (asynchronously on `stream`).
class RopeTable {
 public:
  RopeTable() = default;
  RopeTable(const RopeFrequencies& f, int max_positions, cudaStream_t stream = nullptr);
  const float2* data() const { return table_.get(); }
  int max_positions() const { return max_positions_; }
  int dim() const { return half_ * 2; }

 private:
  DeviceBuffer<float2> table_;
  int max_positions_ = 0, half_ = 0;
};

// Q and K of `tokens` tokens with row pitches q_stride and k_stride (elements from one token to the next, at least
// heads * dim and kv_heads * dim: the Q and K parts of a fused QKV GEMM output pass with their offsets and the QKV
// pitch). K may be null with kv_heads == 0. positions: int32 [tokens] on the device.
struct RopeArgs {
  __nv_bfloat16* q = nullptr;
  std::int64_t q_stride = 0;
  int heads = 0;
  __nv_bfloat16* k = nullptr;
  std::int64_t k_stride = 0;
  int kv_heads = 0;
  const int* positions = nullptr;
  int tokens = 0;
  int* error = nullptr;  // optional: set to 1 on a position outside the table (never cleared here)
  int head_dim = 0;      // optional: the caller's head dimension, checked against the table's (0: the table's)
};
// Throws std::invalid_argument naming the argument (null pointers, counts < 0, strides below a token's heads,
// table empty, a.head_dim set and not the table's dim).
void check_rope(const RopeArgs& a, const float2* table, int max_positions, int dim);
// 16-byte accesses when dim % 16 == 0, both strides % 8 == 0 and q, k 16-byte aligned; 2-byte accesses otherwise.
void apply_rope(const RopeArgs& a, const RopeTable& table, cudaStream_t stream = nullptr);

}  // namespace aipe::kernels
