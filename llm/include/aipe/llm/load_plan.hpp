#pragma once
// A checkpoint checked against its config: the tensors the Llama family needs (names, shapes, dtype), matched with
// what the safetensors files hold, and the plan the GPU loader streams (file, byte offset, bytes per tensor).
// A missing tensor, an unexpected one, a wrong shape or a wrong dtype is a std::invalid_argument naming the
// tensor and the file; all problems are listed (the first 8), not only the first.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "aipe/llm/config.hpp"
#include "aipe/llm/safetensors.hpp"

namespace aipe::llm {

// One weight the model needs. HF Linear weights are [out_features, in_features]:
//   model.embed_tokens.weight              [vocab, hidden]
//   model.layers.N.self_attn.q_proj.weight [heads*head_dim, hidden]     (+ .bias [heads*head_dim] with qkv_bias)
//   model.layers.N.self_attn.{k,v}_proj    [kv_heads*head_dim, hidden]  (+ .bias)
//   model.layers.N.self_attn.o_proj.weight [hidden, heads*head_dim]     (+ .bias [hidden] with o_bias)
//   model.layers.N.mlp.{gate,up}_proj      [intermediate, hidden]; mlp.down_proj [hidden, intermediate]
//   model.layers.N.{input,post_attention}_layernorm.weight, model.norm.weight  [hidden]
//   lm_head.weight                         [vocab, hidden] unless tie_word_embeddings
// gpt-oss (Family::GptOss) has no mlp.{gate,up,down}_proj; per layer instead:
//   model.layers.N.self_attn.{q,k,v,o}_proj.{weight,bias}, self_attn.sinks [heads]
//   model.layers.N.mlp.router.weight [experts, hidden], .bias [experts]
//   model.layers.N.mlp.experts.gate_up_proj_blocks [experts, 2*intermediate, hidden/32, 16] U8 (MXFP4 codes; the
//     rows interleave gate and up: row 2i is gate i, row 2i+1 up i), _scales [experts, 2*intermediate, hidden/32]
//     U8 (E8M0), gate_up_proj_bias [experts, 2*intermediate]
//   model.layers.N.mlp.experts.down_proj_blocks [experts, hidden, intermediate/32, 16] U8, _scales
//     [experts, hidden, intermediate/32] U8, down_proj_bias [experts, hidden]
struct ExpectedTensor {
  std::string name;
  std::vector<std::int64_t> shape;
  std::int64_t layer = -1;         // -1: not in a decoder layer
  std::optional<DType> dtype = {};  // fixed by its format (MXFP4 blocks and scales: U8); absent: the weight dtype
};
std::vector<ExpectedTensor> expected_tensors(const ModelConfig& c);

struct PlannedTensor {
  std::string name;
  std::vector<std::int64_t> shape;
  DType dtype{};
  std::string file;          // the shard's path
  std::uint64_t offset = 0;  // from the start of the file
  std::uint64_t bytes = 0;
  const std::byte* data = nullptr;  // the same bytes in the mapping, valid while the Checkpoint lives
};

struct LoadPlan {
  DType dtype{};                        // every weight's dtype
  std::vector<PlannedTensor> tensors;   // in expected_tensors order: embedding, layer 0 .. L-1, norm, lm_head
  std::vector<std::string> ignored;     // present, harmless, not loaded (rotary_emb.inv_freq, a tied lm_head)
  std::uint64_t total_bytes = 0;
};

// dtype: the config's torch_dtype when it names one, else the embedding's dtype in the checkpoint.
LoadPlan plan_checkpoint(const ModelConfig& c, const Checkpoint& ckpt);

}  // namespace aipe::llm
