#pragma once
// What the engine (llm/engine.hpp) asks of a model family (llm/llama.hpp, llm/gpt_oss.hpp): one step over a batch
// of sequences, each computing its newest tokens over the paged KV cache, then the logits after each sequence's
// last token. A model holds its weights, its KV cache and its step buffers; it holds no scheduling.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace aipe::llm {

// A step as the host describes it (the engine builds it from the scheduler's plan). Sequence s computes its
// q_lens[s] newest tokens, at positions context_lens[s] - q_lens[s] .. context_lens[s] - 1; the K/V of the
// positions before them are already in the pages of its block-table row (a cached prefix, earlier prefill chunks,
// the tokens decoded so far). q_lens[s] == 1 is a decode (or a one-token prefill chunk); more is a prefill chunk,
// from position 0 or continuing over what is cached. The tokens of the sequences lie back to back in sequence
// order (the scheduler puts decodes first); a model accepts any mix and order.
struct StepBatch {
  std::vector<int> tokens;           // [T]
  std::vector<int> positions;        // [T]
  std::vector<std::int64_t> slots;   // [T] cache slot of each token: page * page_size + offset
  std::vector<int> q_lens;           // [S] new tokens of each sequence (>= 1)
  std::vector<int> context_lens;     // [S] tokens in the cache after this step
  std::vector<int> block_table;      // [S][max_pages_per_seq]; entries past a sequence's pages: any valid page (0)
  int seqs() const { return static_cast<int>(q_lens.size()); }
  int num_tokens() const { return static_cast<int>(tokens.size()); }
};

// The step geometry a model is built for.
struct ModelLimits {
  int max_tokens = 2048;      // tokens of one step
  int max_seqs = 256;         // sequences of one step
  int max_pages_per_seq = 0;  // block-table width; 0: the model's context / page_size, rounded up
};

struct ModelInfo {
  std::string name;                        // "synthetic:llama-3.1-8b" or the checkpoint folder
  std::string family;                      // "llama", "qwen2", "gpt_oss"
  bool synthetic = false;                  // random weights of the exact shapes
  int vocab = 0;                           // columns of the logits
  int max_positions = 0;                   // the context limit
  int page_size = 0, num_pages = 0;        // the KV cache
  std::size_t kv_bytes_per_token = 0;      // K and V of every layer, per cached token
  std::size_t weight_bytes = 0;            // all weights on the GPU
  std::size_t weight_bytes_per_token = 0;  // weight bytes one batch-1 decode step reads (MoE: the active experts)
  double flops_per_token = 0;              // 2 x the weights one token passes through (MoE: active), no attention
};

class Model {
 public:
  virtual ~Model() = default;
  virtual const ModelInfo& info() const = 0;
  virtual const ModelLimits& limits() const = 0;  // max_pages_per_seq resolved (never 0)
  // Checks the batch (std::invalid_argument naming the problem: limits, lengths, positions, slots, block table),
  // copies it to the device and runs the step on `stream`; logits() then holds [seqs][vocab] BF16, row s the
  // logits after sequence s's last token (asynchronously).
  virtual void step(const StepBatch& batch, cudaStream_t stream) = 0;
  // A decode-only step (every q_len 1) in two halves, for CUDA graphs: upload() checks and copies the batch to
  // buffers at fixed addresses; run_decode(seqs) launches the step's kernels from them and nothing else (what a
  // graph captures and replays). One eager run_decode of a batch size comes before its first capture (it sizes
  // every workspace).
  virtual void upload(const StepBatch& batch, cudaStream_t stream) = 0;
  virtual void run_decode(int seqs, cudaStream_t stream) = 0;
  virtual const __nv_bfloat16* logits() const = 0;
  // Set by the embedding and RoPE kernels on an out-of-range token id or position; reads and clears it.
  virtual bool take_error(cudaStream_t stream) = 0;
};

}  // namespace aipe::llm
