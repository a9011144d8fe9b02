#include "aipe/llm/step_inputs.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "aipe/check.hpp"
#include "aipe/kernels/attention/paged.hpp"

namespace aipe::llm {
namespace {

void need(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("step: " + what);
}

}  // namespace

std::vector<int> check_step_batch(const StepBatch& b, const StepGeometry& g) {
  const int T = b.num_tokens(), S = b.seqs();
  need(T > 0 && S > 0, "an empty step");
  need(T <= g.max_tokens, "a step of " + std::to_string(T) + " tokens (limit " + std::to_string(g.max_tokens) + ")");
  need(S <= g.max_seqs, "a step of " + std::to_string(S) + " sequences (limit " + std::to_string(g.max_seqs) + ")");
  need(b.positions.size() == std::size_t(T) && b.slots.size() == std::size_t(T),
       "positions and slots need one entry per token");
  need(b.context_lens.size() == std::size_t(S), "context_lens needs one entry per sequence");
  need(b.block_table.size() == std::size_t(S) * g.max_pages_per_seq,
       "block_table must be [seqs][max_pages_per_seq = " + std::to_string(g.max_pages_per_seq) + "]");
  const int context_limit = std::min(g.max_positions, g.max_pages_per_seq * g.page_size);
  int sum = 0;
  std::vector<int> last(S);
  for (int s = 0; s < S; ++s) {
    const int ql = b.q_lens[s], ctx = b.context_lens[s];
    const std::string who = "sequence " + std::to_string(s) + ": ";
    need(ql >= 1, who + "no new token");
    need(ctx >= ql, who + "context_len " + std::to_string(ctx) + " < q_len " + std::to_string(ql));
    need(ctx <= context_limit,
         who + "context " + std::to_string(ctx) + " exceeds the model's limit of " + std::to_string(context_limit));
    need(sum <= T - ql, "q_lens add up to more than the " + std::to_string(T) + " tokens");
    for (int i = 0; i < ql; ++i)
      need(b.positions[std::size_t(sum + i)] == ctx - ql + i,
           who + "token " + std::to_string(i) + " is at position " + std::to_string(b.positions[std::size_t(sum + i)]) +
               ", expected " + std::to_string(ctx - ql + i) + " (the newest q_len of context_len positions)");
    sum += ql;
    last[s] = sum - 1;
  }
  need(sum == T, "q_lens must add up to the token count");
  kernels::attention::check_block_table(b.block_table, b.context_lens, g.max_pages_per_seq, g.page_size, g.num_pages);
  for (int t = 0; t < T; ++t)
    need(b.slots[t] >= 0 && b.slots[t] < std::int64_t(g.num_pages) * g.page_size,
         "token " + std::to_string(t) + ": slot " + std::to_string(b.slots[t]) + " outside the cache");
  return last;
}

StepInputs::StepInputs(const StepGeometry& g, cudaStream_t stream) : g_(g) {
  need(g.max_tokens > 0 && g.max_seqs > 0 && g.max_pages_per_seq > 0 && g.page_size > 0 && g.num_pages > 0,
       "the step geometry needs positive limits");
  const std::size_t T = g.max_tokens, S = g.max_seqs;
  tokens_ = DeviceBuffer<int>(T);
  positions_ = DeviceBuffer<int>(T);
  slots_ = DeviceBuffer<std::int64_t>(T);
  q_lens_ = DeviceBuffer<int>(S);
  context_lens_ = DeviceBuffer<int>(S);
  block_table_ = DeviceBuffer<int>(S * g.max_pages_per_seq);
  last_ = DeviceBuffer<int>(S);
  error_ = DeviceBuffer<int>(1);
  AIPE_CUDA(cudaMemsetAsync(error_.get(), 0, sizeof(int), stream));
  stage_ = PinnedBuffer<unsigned char>(T * (2 * sizeof(int) + sizeof(std::int64_t)) +
                                       S * (3 + std::size_t(g.max_pages_per_seq)) * sizeof(int));
}

void StepInputs::upload(const StepBatch& b, cudaStream_t stream) {
  const std::vector<int> last = check_step_batch(b, g_);
  const int T = b.num_tokens(), S = b.seqs();
  // The stage is reused every step: the previous step's copies must have left it.
  AIPE_CUDA(cudaStreamSynchronize(stream));
  unsigned char* p = stage_.get();
  auto put = [&](void* dst, const void* src, std::size_t bytes) {
    std::memcpy(p, src, bytes);
    AIPE_CUDA(cudaMemcpyAsync(dst, p, bytes, cudaMemcpyHostToDevice, stream));
    p += bytes;
  };
  put(tokens_.get(), b.tokens.data(), T * sizeof(int));
  put(positions_.get(), b.positions.data(), T * sizeof(int));
  put(slots_.get(), b.slots.data(), T * sizeof(std::int64_t));
  put(q_lens_.get(), b.q_lens.data(), S * sizeof(int));
  put(context_lens_.get(), b.context_lens.data(), S * sizeof(int));
  put(block_table_.get(), b.block_table.data(), b.block_table.size() * sizeof(int));
  put(last_.get(), last.data(), S * sizeof(int));
}

bool StepInputs::take_error(cudaStream_t stream) {
  int e = 0;
  AIPE_CUDA(cudaMemcpyAsync(&e, error_.get(), sizeof(int), cudaMemcpyDeviceToHost, stream));
  AIPE_CUDA(cudaStreamSynchronize(stream));
  if (e) AIPE_CUDA(cudaMemsetAsync(error_.get(), 0, sizeof(int), stream));
  return e != 0;
}

}  // namespace aipe::llm
