// The Llama model and engine on the GPU, checked by invariants that hold only if every piece is right (the
// independent check against transformers is scripts/llama_oracle.py):
//  * decode after prefill == prefill of the longer prompt: the logits of token n computed by a decode step over
//    the paged cache (RoPE at position n, K/V appended to scattered pages, split-KV decode) match the logits of
//    the same position computed by prefilling all n + 1 tokens at once (contiguous attention);
//  * a CUDA-graph decode gives the same tokens as eager launches;
//  * a sequence's greedy tokens do not depend on the other sequences of its batch.
#include <cuda_bf16.h>
#include <gtest/gtest.h>

#include "../kernels/hopper_gpu.hpp"

#include <cmath>
#include <set>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/device.hpp"
#include "aipe/llm/engine.hpp"
#include "aipe/llm/llama.hpp"
#include "aipe/llm/loader.hpp"
#include "aipe/llm/weight_specs.hpp"

using namespace aipe::llm;

namespace {

std::optional<std::string> no_hopper() { return aipe::test::no_hopper("the Llama engine"); }

ModelConfig tiny() {
  ModelConfig c;
  c.name = "tiny";
  c.synthetic = true;
  c.hidden_size = 256;
  c.intermediate_size = 520;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;  // GQA
  c.head_dim = 64;
  c.vocab_size = 1003;        // not a multiple of any tile
  c.max_position_embeddings = 1024;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 500000;
  return c;
}

std::unique_ptr<LlamaModel> make(cudaStream_t st, int pages = 64) {
  const ModelConfig c = tiny();
  DeviceWeights w(weight_specs(c, DType::BF16));
  w.fill_synthetic({.seed = 5, .scale = 2.f}, st);
  return std::make_unique<LlamaModel>(llama_shape(c), std::move(w), KvCacheShape{pages, 16},
                                      ModelLimits{.max_tokens = 512, .max_seqs = 4, .max_pages_per_seq = 16}, st);
}

std::vector<float> logits_row(const LlamaModel& m, int row, cudaStream_t st) {
  const int V = m.shape().vocab;
  std::vector<__nv_bfloat16> h(V);
  AIPE_CUDA(cudaMemcpyAsync(h.data(), m.logits() + std::size_t(row) * V, V * 2, cudaMemcpyDeviceToHost, st));
  AIPE_CUDA(cudaStreamSynchronize(st));
  std::vector<float> f(V);
  for (int i = 0; i < V; ++i) f[i] = __bfloat162float(h[i]);
  return f;
}

// Prefill of `tokens` as one sequence on pages `pages` (in this order); returns the last row's logits.
std::vector<float> prefill(LlamaModel& m, const std::vector<int>& tokens, const std::vector<int>& pages, cudaStream_t st) {
  StepBatch b;
  const int n = int(tokens.size());
  for (int i = 0; i < n; ++i) {
    b.tokens.push_back(tokens[i]);
    b.positions.push_back(i);
    b.slots.push_back(std::int64_t(pages[i / 16]) * 16 + i % 16);
  }
  b.q_lens = {n};
  b.context_lens = {n};
  b.block_table.assign(16, 0);
  for (std::size_t i = 0; i < pages.size(); ++i) b.block_table[i] = pages[i];
  m.step(b, st);
  return logits_row(m, 0, st);
}

}  // namespace

TEST(EngineGpu, DecodeStepMatchesPrefillOfTheLongerPrompt) {
  if (auto why = no_hopper()) GTEST_SKIP() << *why;
  aipe::Stream st;
  auto m = make(st.get());
  std::vector<int> prompt;
  for (int i = 0; i < 37; ++i) prompt.push_back((i * 37 + 11) % 1003);
  const std::vector<int> pages_a = {9, 3, 30};  // scattered, out of order
  prefill(*m, prompt, pages_a, st.get());
  // Decode token 37 (id 500) over the cache the prefill wrote.
  StepBatch d;
  d.tokens = {500};
  d.positions = {37};
  d.slots = {std::int64_t(pages_a[37 / 16]) * 16 + 37 % 16};
  d.q_lens = {1};
  d.context_lens = {38};
  d.block_table.assign(16, 0);
  for (std::size_t i = 0; i < pages_a.size(); ++i) d.block_table[i] = pages_a[i];
  m->step(d, st.get());
  const auto dec = logits_row(*m, 0, st.get());
  auto longer = prompt;
  longer.push_back(500);
  const auto pre = prefill(*m, longer, {40, 41, 50}, st.get());
  double max_abs = 0, ref = 0;
  int arg_d = 0, arg_p = 0;
  for (int i = 0; i < 1003; ++i) {
    ASSERT_TRUE(std::isfinite(dec[i])) << "decode logit " << i;
    max_abs = std::max(max_abs, double(std::fabs(dec[i] - pre[i])));
    ref = std::max(ref, double(std::fabs(pre[i])));
    if (dec[i] > dec[arg_d]) arg_d = i;
    if (pre[i] > pre[arg_p]) arg_p = i;
  }
  ASSERT_GT(ref, 0.1) << "logits are all near zero: the test would prove nothing";
  EXPECT_LT(max_abs, 0.03 * ref + 0.02) << "decode and prefill logits differ (max |diff| " << max_abs << ", max |logit| " << ref << ")";
  EXPECT_EQ(arg_d, arg_p);
}

TEST(EngineGpu, GraphsAndEagerGiveTheSameTokensAndBatchingDoesNotChangeThem) {
  if (auto why = no_hopper()) GTEST_SKIP() << *why;
  aipe::Stream st;
  auto m = make(st.get(), 200);
  std::vector<GenerationRequest> reqs(3);
  for (int s = 0; s < 3; ++s) {
    for (int i = 0; i < 5 + 40 * s; ++i) reqs[s].prompt.push_back((i * 13 + s * 101 + 7) % 1003);
    reqs[s].max_new_tokens = 20 + 7 * s;
  }
  Engine eager(*m, {.cuda_graphs = false}, st.get());
  const auto a = eager.generate(reqs);
  Engine graphs(*m, {.cuda_graphs = true}, st.get());
  const auto b = graphs.generate(reqs);
  EXPECT_GT(graphs.generation_stats().graphs_captured, 0);
  for (int s = 0; s < 3; ++s) {
    ASSERT_EQ(int(a[s].tokens.size()), reqs[s].max_new_tokens);
    // The split-KV plan differs between these runs (batch size, context bound), so the last bits of a logit may
    // differ and a near-tie could later fall the other way: the first 8 tokens must agree exactly.
    auto head = [](const std::vector<int>& t) { return std::vector<int>(t.begin(), t.begin() + 8); };
    EXPECT_EQ(head(a[s].tokens), head(b[s].tokens)) << "sequence " << s << ": graph replay changed the tokens";
    const auto alone = eager.generate({reqs[s]});
    EXPECT_EQ(head(alone[0].tokens), head(a[s].tokens)) << "sequence " << s << ": its tokens depend on its batch";
  }
  // Not a constant sequence: a broken model often repeats one token.
  std::set<int> distinct(a[2].tokens.begin(), a[2].tokens.end());
  EXPECT_GT(distinct.size(), 3u);
}

TEST(EngineGpu, BadRequestsAreErrorsNamingTheRequest) {
  if (auto why = no_hopper()) GTEST_SKIP() << *why;
  aipe::Stream st;
  auto m = make(st.get(), 8);
  Engine e(*m, {}, st.get());
  std::vector<GenerationRequest> r(1);
  EXPECT_THROW(e.generate(r), std::invalid_argument);  // empty prompt
  r[0].prompt = {5, 1003};
  EXPECT_THROW(e.generate(r), std::invalid_argument);  // id outside the vocabulary
  r[0].prompt.assign(200, 1);  // 200 tokens: 13 pages of the cache's 8
  EXPECT_THROW(e.generate(r), std::invalid_argument);
  // Nothing was left queued: a good request still runs, and one that reaches the context ends with "length".
  r[0].prompt.assign(100, 1);
  r[0].max_new_tokens = 100;
  const auto out = e.generate(r);
  EXPECT_EQ(out[0].finish_reason, "length");
  EXPECT_EQ(out[0].tokens.size(), 28u);  // 8 pages of 16: 128 tokens of context
}
