// The engine's host side (CPU): the scheduler's plan as the model's StepBatch, the attention step's per-step plan
// (which sequences go to paged decode, the varlen offsets of the rest), and the scheduler limits a model allows.
#include <gtest/gtest.h>

#include <vector>

#include "aipe/llm/attention_step.hpp"
#include "aipe/llm/engine.hpp"
#include "aipe/llm/scheduler.hpp"
#include "error_of.hpp"

using namespace aipe::llm;
using aipe::test::error_of;

namespace {

Request req(RequestId id, int len, int first) {
  Request r;
  r.id = id;
  for (int i = 0; i < len; ++i) r.prompt.push_back(first + i);
  r.max_tokens = 4;
  return r;
}

// Checks what every StepBatch the engine builds must satisfy, against the plan it came from.
void expect_matches(const StepPlan& plan, const StepBatch& b, int width) {
  ASSERT_EQ(b.seqs(), int(plan.seqs.size()));
  ASSERT_EQ(b.num_tokens(), plan.num_tokens);
  ASSERT_EQ(b.block_table.size(), plan.seqs.size() * std::size_t(width));
  int t = 0;
  for (int s = 0; s < b.seqs(); ++s) {
    const ScheduledSeq& q = plan.seqs[std::size_t(s)];
    EXPECT_EQ(b.q_lens[std::size_t(s)], q.end - q.begin);
    EXPECT_EQ(b.context_lens[std::size_t(s)], q.end);
    for (int i = 0; i < q.end - q.begin; ++i, ++t) {
      EXPECT_EQ(b.tokens[std::size_t(t)], q.tokens[std::size_t(i)]);
      EXPECT_EQ(b.positions[std::size_t(t)], q.end - (q.end - q.begin) + i);
      EXPECT_EQ(b.slots[std::size_t(t)], q.slots[std::size_t(i)]);
    }
    for (int j = 0; j < width; ++j) {
      const int want = j < int(q.block_table.size()) ? q.block_table[std::size_t(j)] : 0;
      EXPECT_EQ(b.block_table[std::size_t(s) * width + j], want) << "sequence " << s << " block " << j;
    }
  }
}

}  // namespace

TEST(Engine, StepBatchOfAPlanWithChunksAndDecodes) {
  // Budget 24 tokens, pages of 8: a 20-token prompt runs in one step, a 30-token one in chunks behind it.
  Scheduler sch({.max_num_batched_tokens = 24, .max_num_seqs = 4, .max_model_len = 64},
                {.num_pages = 32, .page_size = 8, .watermark = 0});
  sch.add_request(req(1, 20, 100));
  sch.add_request(req(2, 30, 200));
  const int width = 8;
  std::vector<int> sample;
  for (int step = 0; step < 4; ++step) {
    const StepPlan plan = sch.schedule(0);
    const StepBatch b = to_step_batch(plan, width, &sample);
    expect_matches(plan, b, width);
    std::vector<int> want_sample;
    for (std::size_t s = 0; s < plan.seqs.size(); ++s)
      if (plan.seqs[s].sample) want_sample.push_back(int(s));
    EXPECT_EQ(sample, want_sample);
    // The attention plan of the same batch: the leading one-token sequences are the decodes.
    const AttentionStepPlan ap = plan_attention_step(b);
    int lead = 0;
    while (lead < b.seqs() && b.q_lens[std::size_t(lead)] == 1) ++lead;
    EXPECT_EQ(ap.decodes, lead);
    EXPECT_EQ(ap.decodes + ap.cu_q.back(), b.num_tokens());
    if (step == 1) {
      // Request 1 decodes its first token while request 2 continues its prompt from token 4 (24 - 20).
      ASSERT_EQ(b.seqs(), 2);
      EXPECT_EQ(b.q_lens, (std::vector<int>{1, 23}));
      EXPECT_EQ(b.context_lens, (std::vector<int>{21, 27}));
      EXPECT_EQ(ap.decodes, 1);
      EXPECT_FALSE(ap.from_start);
      EXPECT_EQ(ap.cu_q, (std::vector<int>{0, 23}));
      EXPECT_EQ(ap.cu_kv, (std::vector<int>{0, 27}));
    }
    std::vector<TokenId> tokens(sample.size(), 7);
    sch.update(plan, tokens, 0);
  }
  EXPECT_THROW(to_step_batch(sch.schedule(0), 1), std::invalid_argument);  // rows longer than the table
}

TEST(Engine, AttentionPlanSplitsDecodesFromChunks) {
  StepBatch b;
  // Two decodes (contexts 9 and 40), a fresh 5-token prompt, a 3-token chunk over 10 cached tokens, then a
  // one-token sequence after a chunk: that one goes with the chunks (forward handles q_len 1 too).
  b.q_lens = {1, 1, 5, 3, 1};
  b.context_lens = {9, 40, 5, 13, 7};
  b.tokens.assign(11, 0);
  const AttentionStepPlan p = plan_attention_step(b);
  EXPECT_EQ(p.decodes, 2);
  EXPECT_EQ(p.decode_context, 49);
  EXPECT_EQ(p.decode_max_context, 40);
  EXPECT_EQ(p.prefills(), 3);
  EXPECT_EQ(p.cu_q, (std::vector<int>{0, 5, 8, 9}));
  EXPECT_EQ(p.cu_kv, (std::vector<int>{0, 5, 18, 25}));
  EXPECT_EQ(p.max_q, 5);
  EXPECT_EQ(p.max_kv, 13);
  EXPECT_FALSE(p.from_start);
  EXPECT_FALSE(p.decode_only());

  StepBatch fresh;
  fresh.q_lens = {4, 6};
  fresh.context_lens = {4, 6};
  fresh.tokens.assign(10, 0);
  const AttentionStepPlan f = plan_attention_step(fresh);
  EXPECT_EQ(f.decodes, 0);
  EXPECT_TRUE(f.from_start);
  EXPECT_EQ(f.cu_kv, f.cu_q);

  StepBatch bad = fresh;
  bad.tokens.assign(9, 0);
  EXPECT_NE(error_of([&] { plan_attention_step(bad); }).find("10 tokens"), std::string::npos);
  bad = fresh;
  bad.context_lens = {3, 6};
  EXPECT_NE(error_of([&] { plan_attention_step(bad); }).find("sequence 0"), std::string::npos);
  EXPECT_THROW(plan_attention_step(StepBatch{}), std::invalid_argument);
}

TEST(Engine, SchedulerLimitsComeFromTheModelAndItsCache) {
  ModelInfo info{.vocab = 1000, .max_positions = 4096, .page_size = 16, .num_pages = 100};
  const ModelLimits lim{.max_tokens = 512, .max_seqs = 64, .max_pages_per_seq = 128};
  const SchedulerConfig c = scheduler_config_for(info, lim, {});
  EXPECT_EQ(c.max_num_batched_tokens, 512);
  EXPECT_EQ(c.max_num_seqs, 64);
  EXPECT_EQ(c.max_model_len, 99 * 16);  // the cache less its 1% watermark (1 page)
  EXPECT_EQ(c.vocab_size, 1000);
  info.num_pages = 100000;
  EXPECT_EQ(scheduler_config_for(info, lim, {}).max_model_len, 128 * 16);  // the block table
  // A budget below max_seqs keeps every running decode within one step.
  EXPECT_EQ(scheduler_config_for(info, lim, {.max_batched_tokens = 32}).max_num_seqs, 32);
  EXPECT_NE(error_of([&] { scheduler_config_for(info, lim, {.max_batched_tokens = 513}); }).find("max_batched_tokens"),
            std::string::npos);
  EXPECT_NE(error_of([&] { scheduler_config_for(info, lim, {.max_seqs = 65}); }).find("max_seqs"), std::string::npos);
  const BlockManagerConfig kv = block_manager_config_for(info, {.prefix_caching = true});
  EXPECT_EQ(kv.num_pages, 100000);
  EXPECT_EQ(kv.enable_prefix_caching, prefix_caching_available());
}
