#include "aipe/llm/decoder_shape.hpp"

#include <cstdint>
#include <stdexcept>

namespace aipe::llm {

DecoderShape decoder_shape(const ModelConfig& c) {
  auto narrow = [&](std::int64_t v, const char* key) {
    if (v <= 0 || v > (1 << 30)) throw std::invalid_argument(c.name + ": " + key + " " + std::to_string(v) + " is out of range");
    return int(v);
  };
  DecoderShape s;
  s.hidden = narrow(c.hidden_size, "hidden_size");
  s.intermediate = narrow(c.intermediate_size, "intermediate_size");
  s.layers = narrow(c.num_hidden_layers, "num_hidden_layers");
  s.heads = narrow(c.num_attention_heads, "num_attention_heads");
  s.kv_heads = narrow(c.num_key_value_heads, "num_key_value_heads");
  s.head_dim = narrow(c.head_dim, "head_dim");
  s.vocab = narrow(c.vocab_size, "vocab_size");
  s.max_positions = narrow(c.max_position_embeddings, "max_position_embeddings");
  s.rms_eps = float(c.rms_norm_eps);
  s.rope = rope_config(c);
  return s;
}

void check_decoder_shape(const DecoderShape& s, const std::string& family) {
  auto need = [&](bool ok, const std::string& what) {
    if (!ok) throw std::invalid_argument(family + ": " + what);
  };
  need(s.hidden > 0 && s.intermediate > 0 && s.layers > 0 && s.heads > 0 && s.kv_heads > 0 && s.vocab > 0,
       "hidden, intermediate, layers, heads, kv_heads and vocab must be positive");
  need(s.heads % s.kv_heads == 0, "heads (" + std::to_string(s.heads) + ") must be a multiple of kv_heads (" +
                                      std::to_string(s.kv_heads) + ")");
  need(s.head_dim == 64 || s.head_dim == 128,
       "head_dim " + std::to_string(s.head_dim) + " (the attention kernels take 64 and 128)");
  // TMA reads every GEMM operand row: rows must be a multiple of 16 bytes (8 BF16).
  need(s.hidden % 8 == 0, "hidden " + std::to_string(s.hidden) + " must be a multiple of 8");
  need(s.intermediate % 8 == 0, "intermediate " + std::to_string(s.intermediate) + " must be a multiple of 8");
  need(s.max_positions > 0, "max_positions must be positive");
  need(s.rms_eps >= 0.f, "rms_norm_eps must be >= 0");
  need(s.rope.dim == s.head_dim, "the rotary dimension must be head_dim (partial rotary is not supported)");
}

}  // namespace aipe::llm
