#include "aipe/llm/weight_specs.hpp"

#include "aipe/llm/load_plan.hpp"

namespace aipe::llm {

std::vector<TensorSpec> weight_specs(const ModelConfig& c, DType dtype, bool fuse) {
  std::vector<TensorSpec> out;
  const auto want = expected_tensors(c);
  auto ends = [](const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  for (const auto& e : want) {
    if (!fuse || e.layer < 0) {
      out.push_back({e.name, e.dtype.value_or(dtype), e.shape, {}});
      continue;
    }
    const std::string p = "model.layers." + std::to_string(e.layer) + ".";
    // q starts a fused qkv (k and v are folded into it), gate starts gate_up (up is folded in).
    for (const char* kind : {"weight", "bias"}) {
      const std::string k = kind;
      if (e.name == p + "self_attn.q_proj." + k) {
        std::vector<std::int64_t> shape = e.shape;
        shape[0] = c.q_dim() + 2 * c.kv_dim();
        out.push_back({p + "self_attn.qkv_proj." + k, dtype, shape,
                       {p + "self_attn.q_proj." + k, p + "self_attn.k_proj." + k, p + "self_attn.v_proj." + k}});
      } else if (e.name == p + "mlp.gate_proj." + k) {
        std::vector<std::int64_t> shape = e.shape;
        shape[0] = 2 * c.intermediate_size;
        out.push_back({p + "mlp.gate_up_proj." + k, dtype, shape, {p + "mlp.gate_proj." + k, p + "mlp.up_proj." + k}});
      }
    }
    const bool folded = ends(e.name, "q_proj.weight") || ends(e.name, "k_proj.weight") ||
                        ends(e.name, "v_proj.weight") || ends(e.name, "q_proj.bias") || ends(e.name, "k_proj.bias") ||
                        ends(e.name, "v_proj.bias") || ends(e.name, "gate_proj.weight") ||
                        ends(e.name, "up_proj.weight") || ends(e.name, "gate_proj.bias") || ends(e.name, "up_proj.bias");
    if (!folded) out.push_back({e.name, e.dtype.value_or(dtype), e.shape, {}});
  }
  return out;
}

}  // namespace aipe::llm
