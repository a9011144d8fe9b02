// check_step_batch: what every model family checks before a step reaches the GPU (llm/step_inputs.hpp).
#include "aipe/llm/step_inputs.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "error_of.hpp"

namespace {

using aipe::llm::StepBatch;
using aipe::test::error_of;
using ::testing::HasSubstr;

// Pages of 4 tokens, 3 pages a sequence, 8 pages in the cache, context up to 10.
const aipe::llm::StepGeometry kGeo{.max_tokens = 16, .max_seqs = 4, .max_pages_per_seq = 3, .page_size = 4,
                                   .num_pages = 8, .max_positions = 10};

// A decode of sequence 0 (context 6, pages 0 1) then a 3-token chunk of sequence 1 over 2 cached tokens (pages 2 3).
StepBatch mixed() {
  StepBatch b;
  b.tokens = {7, 1, 2, 3};
  b.positions = {5, 2, 3, 4};
  b.slots = {4 * 1 + 1, 4 * 2 + 2, 4 * 2 + 3, 4 * 3 + 0};
  b.q_lens = {1, 3};
  b.context_lens = {6, 5};
  b.block_table = {0, 1, 0, 2, 3, 0};
  return b;
}

TEST(CheckStepBatch, ReturnsEachSequencesLastTokenRow) {
  EXPECT_EQ(aipe::llm::check_step_batch(mixed(), kGeo), (std::vector<int>{0, 3}));
}

TEST(CheckStepBatch, NamesEachProblem) {
  auto with = [](auto edit) {
    StepBatch b = mixed();
    edit(b);
    return error_of([&] { aipe::llm::check_step_batch(b, kGeo); });
  };
  EXPECT_THAT(with([](StepBatch& b) { b = StepBatch{}; }), HasSubstr("an empty step"));
  EXPECT_THAT(with([](StepBatch& b) { b.positions.pop_back(); }), HasSubstr("one entry per token"));
  EXPECT_THAT(with([](StepBatch& b) { b.block_table.pop_back(); }), HasSubstr("block_table must be"));
  EXPECT_THAT(with([](StepBatch& b) { b.q_lens[0] = 0; }), HasSubstr("sequence 0: no new token"));
  EXPECT_THAT(with([](StepBatch& b) { b.context_lens[1] = 2; }), HasSubstr("sequence 1: context_len 2 < q_len 3"));
  EXPECT_THAT(with([](StepBatch& b) { b.context_lens[0] = 11; }), HasSubstr("exceeds the model's limit of 10"));
  EXPECT_THAT(with([](StepBatch& b) { b.positions[2] = 9; }), HasSubstr("sequence 1: token 1 is at position 9, expected 3"));
  EXPECT_THAT(with([](StepBatch& b) {
                b.tokens.push_back(9);  // a token no sequence claims
                b.positions.push_back(5);
                b.slots.push_back(13);
              }),
              HasSubstr("q_lens must add up to the token count"));
  EXPECT_THAT(with([](StepBatch& b) { b.slots[3] = 32; }), HasSubstr("token 3: slot 32 outside the cache"));
  EXPECT_THAT(with([](StepBatch& b) { b.block_table[3] = 8; }), HasSubstr("8"));
}

TEST(CheckStepBatch, HoldsTheStepLimits) {
  aipe::llm::StepGeometry g = kGeo;
  g.max_tokens = 3;
  EXPECT_THAT(error_of([&] { aipe::llm::check_step_batch(mixed(), g); }), HasSubstr("a step of 4 tokens (limit 3)"));
  g = kGeo;
  g.max_seqs = 1;
  EXPECT_THAT(error_of([&] { aipe::llm::check_step_batch(mixed(), g); }), HasSubstr("a step of 2 sequences (limit 1)"));
}

}  // namespace
