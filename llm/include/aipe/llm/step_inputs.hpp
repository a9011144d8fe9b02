#pragma once
// A step's inputs on the device, at fixed addresses (what a captured decode graph reads), for every model family:
// the StepBatch checked against the model's limits and cache, staged through pinned memory and copied on the
// step's stream; plus the error flag the embedding, RoPE and routing kernels raise on an out-of-range id.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/llm/model.hpp"

namespace aipe::llm {

struct StepGeometry {
  int max_tokens = 0, max_seqs = 0, max_pages_per_seq = 0;  // ModelLimits, resolved
  int page_size = 0, num_pages = 0;                         // the KV cache
  int max_positions = 0;                                    // the model's context
};

// The checks of Model::step and Model::upload (std::invalid_argument naming the problem: limits, array lengths,
// q_len and context of each sequence, positions = the newest q_len of context_len, the block table, the slots).
// Returns, per sequence, the flat index of its last token (the row its logits come from). CPU-testable.
std::vector<int> check_step_batch(const StepBatch& b, const StepGeometry& g);

class StepInputs {
 public:
  StepInputs(const StepGeometry& g, cudaStream_t stream);

  // check_step_batch, then the copies (after the previous step's have left the stage).
  void upload(const StepBatch& b, cudaStream_t stream);
  // Reads and clears the error flag (synchronizes the stream).
  bool take_error(cudaStream_t stream);

  const StepGeometry& geometry() const { return g_; }
  const int* tokens() const { return tokens_.get(); }        // [T]
  const int* positions() const { return positions_.get(); }  // [T]
  const std::int64_t* slots() const { return slots_.get(); } // [T]
  const int* q_lens() const { return q_lens_.get(); }        // [S]
  const int* context_lens() const { return context_lens_.get(); }  // [S]
  const int* block_table() const { return block_table_.get(); }    // [S][max_pages_per_seq]
  const int* last() const { return last_.get(); }            // [S] each sequence's last token
  int* error() const { return error_.get(); }

 private:
  StepGeometry g_;
  DeviceBuffer<int> tokens_, positions_, q_lens_, context_lens_, block_table_, last_, error_;
  DeviceBuffer<std::int64_t> slots_;
  PinnedBuffer<unsigned char> stage_;
};

}  // namespace aipe::llm
