// Continuous batching on the GPU (a small random Llama, awkward sizes): the engine's scheduling must never change
// what a request generates, and chunked or cached prefill must compute what one-shot prefill computes.
//  * staggered arrivals, a token budget smaller than the prompts (chunked prefill, chunks mixed with decodes in
//    one step) and a cache too small for all of them (preemption by recomputation): greedy tokens equal each
//    request's tokens run alone on an engine with room to spare;
//  * a prefix-cache hit (two requests sharing a 64-token prefix) gives the tokens of a cold run;
//  * the logits after a prompt prefilled in chunks over scattered pages (continuing chunks read their keys
//    gathered from the pages) equal one-shot prefill's within BF16 rounding, also with a decode in the same step.
#include <cuda_bf16.h>
#include <gtest/gtest.h>

#include "../kernels/hopper_gpu.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <set>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/llm/block_manager.hpp"
#include "aipe/llm/engine.hpp"
#include "aipe/llm/llama.hpp"
#include "aipe/llm/loader.hpp"
#include "aipe/llm/weight_specs.hpp"

using namespace aipe::llm;

namespace {

constexpr int kVocab = 1003, kPage = 16, kWidth = 16;

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
  c.vocab_size = kVocab;      // not a multiple of any tile
  c.max_position_embeddings = 1024;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 500000;
  return c;
}

std::unique_ptr<LlamaModel> make(cudaStream_t st, int pages) {
  const ModelConfig c = tiny();
  DeviceWeights w(weight_specs(c, DType::BF16));
  w.fill_synthetic({.seed = 5, .scale = 2.f}, st);
  return std::make_unique<LlamaModel>(llama_shape(c), std::move(w), KvCacheShape{pages, kPage},
                                      ModelLimits{.max_tokens = 512, .max_seqs = 4, .max_pages_per_seq = kWidth}, st);
}

std::vector<int> prompt(int len, int salt) {
  std::vector<int> p;
  for (int i = 0; i < len; ++i) p.push_back((i * 37 + salt * 101 + 11) % kVocab);
  return p;
}

// The first 8 tokens must agree exactly: a different split of the work (batch, chunks, split-KV plan) may move
// the last bits of a logit, so a near-tie much later could fall the other way.
std::vector<int> head(const std::vector<int>& t) { return std::vector<int>(t.begin(), t.begin() + std::min<std::size_t>(8, t.size())); }

std::vector<float> logits_row(const Model& m, int row, cudaStream_t st) {
  const int V = m.info().vocab;
  std::vector<__nv_bfloat16> h(V);
  AIPE_CUDA(cudaMemcpyAsync(h.data(), m.logits() + std::size_t(row) * V, V * 2, cudaMemcpyDeviceToHost, st));
  AIPE_CUDA(cudaStreamSynchronize(st));
  std::vector<float> f(V);
  for (int i = 0; i < V; ++i) {
    f[i] = __bfloat162float(h[i]);
    EXPECT_TRUE(std::isfinite(f[i])) << "logit " << i << " of row " << row;
  }
  return f;
}

// Appends sequence rows to a batch: tokens [begin, end) of `toks` on `pages`.
void add_seq(StepBatch& b, const std::vector<int>& toks, int begin, int end, const std::vector<int>& pages) {
  for (int i = begin; i < end; ++i) {
    b.tokens.push_back(toks[std::size_t(i)]);
    b.positions.push_back(i);
    b.slots.push_back(std::int64_t(pages[std::size_t(i / kPage)]) * kPage + i % kPage);
  }
  b.q_lens.push_back(end - begin);
  b.context_lens.push_back(end);
  for (int j = 0; j < kWidth; ++j) b.block_table.push_back(j < int(pages.size()) ? pages[std::size_t(j)] : 0);
}

void expect_close(const std::vector<float>& got, const std::vector<float>& want, const char* what) {
  double max_abs = 0, ref = 0;
  int arg_g = 0, arg_w = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    max_abs = std::max(max_abs, double(std::fabs(got[i] - want[i])));
    ref = std::max(ref, double(std::fabs(want[i])));
    if (got[i] > got[std::size_t(arg_g)]) arg_g = int(i);
    if (want[i] > want[std::size_t(arg_w)]) arg_w = int(i);
  }
  ASSERT_GT(ref, 0.1) << what << ": logits are all near zero, the test would prove nothing";
  EXPECT_LT(max_abs, 0.03 * ref + 0.02) << what << ": max |diff| " << max_abs << ", max |logit| " << ref;
  EXPECT_EQ(arg_g, arg_w) << what;
}

}  // namespace

TEST(EngineCbGpu, ChunkedPrefillLogitsEqualOneShotPrefill) {
  if (auto why = aipe::test::no_hopper("the Llama engine")) GTEST_SKIP() << *why;
  aipe::Stream st;
  auto m = make(st.get(), 64);
  const auto p = prompt(77, 1);
  // One shot on pages 40..44.
  StepBatch one;
  add_seq(one, p, 0, 77, {40, 41, 42, 43, 44});
  m->step(one, st.get());
  const auto want = logits_row(*m, 0, st.get());

  // Chunks of 30, 25 (crossing page boundaries mid-page) and 22 on scattered pages out of order. The last chunk
  // shares its step with a decode of another sequence (ordered first, as the scheduler does) and with a fresh
  // 5-token prompt behind it.
  const std::vector<int> pages = {9, 3, 30, 17, 22};
  StepBatch c1;
  add_seq(c1, p, 0, 30, pages);
  m->step(c1, st.get());
  StepBatch c2;
  add_seq(c2, p, 30, 55, pages);
  m->step(c2, st.get());
  const auto other = prompt(20, 2);
  StepBatch pre_other;
  add_seq(pre_other, other, 0, 20, {50, 51});
  m->step(pre_other, st.get());
  auto other21 = other;
  other21.push_back(500);
  const auto fresh = prompt(5, 3);
  StepBatch c3;
  add_seq(c3, other21, 20, 21, {50, 51});  // decode of token 20
  add_seq(c3, p, 55, 77, pages);
  add_seq(c3, fresh, 0, 5, {60});
  m->step(c3, st.get());
  ASSERT_FALSE(m->take_error(st.get()));
  const auto got = logits_row(*m, 1, st.get());
  const auto dec = logits_row(*m, 0, st.get());
  const auto fr = logits_row(*m, 2, st.get());
  expect_close(got, want, "chunked prefill vs one shot");

  // The decode and the fresh prompt of the mixed step against each one alone.
  StepBatch alone;
  add_seq(alone, other21, 0, 21, {52, 53});
  m->step(alone, st.get());
  expect_close(dec, logits_row(*m, 0, st.get()), "decode in a mixed step vs its one-shot prefill");
  StepBatch fresh_alone;
  add_seq(fresh_alone, fresh, 0, 5, {61});
  m->step(fresh_alone, st.get());
  expect_close(fr, logits_row(*m, 0, st.get()), "fresh prompt in a mixed step vs alone");
}

TEST(EngineCbGpu, StaggeredChunkedPreemptedGivesEachRequestsTokensAlone) {
  if (auto why = aipe::test::no_hopper("the Llama engine")) GTEST_SKIP() << *why;
  aipe::Stream st;
  std::vector<GenerationRequest> reqs(5);
  for (int s = 0; s < 5; ++s) {
    reqs[std::size_t(s)].prompt = prompt(23 + 19 * s, 10 + s);  // 23 .. 99 tokens
    reqs[std::size_t(s)].max_new_tokens = 12 + 3 * s;
    reqs[std::size_t(s)].arrival_step = 2 * s;                 // joins while others prefill and decode
  }
  std::vector<std::vector<int>> alone(reqs.size());
  {
    auto big = make(st.get(), 200);
    Engine e(*big, {.cuda_graphs = false, .prefix_caching = false}, st.get());
    for (std::size_t s = 0; s < reqs.size(); ++s) {
      auto r = reqs[s];
      r.arrival_step = 0;
      alone[s] = e.generate({r})[0].tokens;
      ASSERT_EQ(int(alone[s].size()), r.max_new_tokens);
    }
  }
  // 14 pages of 16 = 224 tokens for 5 requests that reach 35 .. 123 tokens (445 together); a budget of 32 tokens
  // a step cuts every prompt but the first into chunks.
  auto small = make(st.get(), 14);
  for (bool graphs : {false, true}) {
    Engine e(*small, {.cuda_graphs = graphs, .max_batched_tokens = 32, .prefix_caching = false}, st.get());
    const auto out = e.generate(reqs);
    const GenerationStats& gs = e.generation_stats();
    EXPECT_GT(gs.preemptions, 0u) << "the cache was meant to force preemption";
    EXPECT_GT(gs.mixed_steps, 0);
    if (graphs) EXPECT_GT(gs.graphs_captured, 0);
    int preempted = 0;
    for (std::size_t s = 0; s < reqs.size(); ++s) {
      ASSERT_EQ(out[s].tokens.size(), alone[s].size()) << "request " << s;
      EXPECT_EQ(out[s].finish_reason, "length");
      EXPECT_EQ(head(out[s].tokens), head(alone[s])) << "request " << s << " (graphs " << graphs << ", "
                                                      << out[s].num_preemptions << " preemptions)";
      preempted += out[s].num_preemptions > 0;
    }
    EXPECT_GT(preempted, 0);
    EXPECT_EQ(e.stats().kv_pages_used, 0) << "pages leaked";
  }
  std::set<int> distinct(alone[4].begin(), alone[4].end());
  EXPECT_GT(distinct.size(), 3u) << "a broken model often repeats one token";
}

TEST(EngineCbGpu, PrefixCacheHitGivesTheTokensOfAColdRun) {
  if (auto why = aipe::test::no_hopper("the Llama engine")) GTEST_SKIP() << *why;
  if (!prefix_caching_available()) GTEST_SKIP() << "this build has no prefix cache (libxxhash was not found)";
  aipe::Stream st;
  auto m = make(st.get(), 64);
  const auto shared = prompt(64, 7);  // 4 full pages
  GenerationRequest a, b;
  a.prompt = shared;
  b.prompt = shared;
  for (int i = 0; i < 9; ++i) a.prompt.push_back((i * 5 + 1) % kVocab);
  for (int i = 0; i < 21; ++i) b.prompt.push_back((i * 11 + 3) % kVocab);
  a.max_new_tokens = b.max_new_tokens = 16;

  Engine cold(*m, {.cuda_graphs = false, .prefix_caching = false}, st.get());
  const auto want_b = cold.generate({b})[0].tokens;

  Engine warm(*m, {.cuda_graphs = false, .prefix_caching = true}, st.get());
  const auto got_a = warm.generate({a})[0];
  EXPECT_EQ(got_a.num_cached_tokens, 0);
  const auto got_b = warm.generate({b})[0];
  EXPECT_EQ(got_b.num_cached_tokens, 64) << "the shared 64-token prefix should come from the cache";
  EXPECT_EQ(head(got_b.tokens), head(want_b));
  EXPECT_EQ(got_b.tokens.size(), want_b.size());
}
