#pragma once
// The weights arena's specs (aipe/llm/weights.hpp) of a Llama-family model: expected_tensors (load_plan.hpp) in
// one dtype, with, when `fuse` is set, each layer's q/k/v projections concatenated along the output dimension
// into self_attn.qkv_proj ([heads*hd + 2*kv_heads*hd, hidden], biases likewise) and gate/up into
// mlp.gate_up_proj ([2*intermediate, hidden]), so one GEMM reads each (the names vLLM uses).
#include <vector>

#include "aipe/llm/config.hpp"
#include "aipe/llm/weights.hpp"

namespace aipe::llm {

std::vector<TensorSpec> weight_specs(const ModelConfig& c, DType dtype, bool fuse = true);

}  // namespace aipe::llm
