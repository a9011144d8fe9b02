#pragma once
// What every decoder-only family of the engine shares (Llama, gpt-oss): the widths, depth, heads, vocabulary,
// context, norm epsilon and RoPE, read from a config and checked against what the kernels take, once.
#include <string>

#include "aipe/kernels/rope.hpp"
#include "aipe/llm/config.hpp"

namespace aipe::llm {

struct DecoderShape {
  int hidden = 0, intermediate = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, vocab = 0;
  float rms_eps = 1e-5f;
  kernels::RopeConfig rope{};
  int max_positions = 0;
};

// The config's fields (std::invalid_argument naming the file and key of a value outside 1..2^30).
DecoderShape decoder_shape(const ModelConfig& c);
// What the GEMM and attention kernels need of any family (positive sizes, heads % kv_heads, head_dim 64 or 128,
// rows of 16 bytes for TMA, the rotary dimension = head_dim, ...): std::invalid_argument "FAMILY: ..." naming the
// field. CPU-testable.
void check_decoder_shape(const DecoderShape& s, const std::string& family);

}  // namespace aipe::llm
