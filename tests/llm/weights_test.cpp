// The weights arena's layout (CPU): alignment, order, overflow and duplicate checks.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "aipe/llm/weights.hpp"

using aipe::llm::DType;
using aipe::llm::plan_arena;
using aipe::llm::TensorSpec;

TEST(WeightsArena, AlignsEveryTensorAndKeepsOrder) {
  const auto l = plan_arena({{"a", DType::BF16, {3}}, {"b", DType::F32, {5, 7}}, {"c", DType::BF16, {}}}, 256);
  EXPECT_EQ(l.offset.at("a"), 0u);
  EXPECT_EQ(l.offset.at("b"), 256u);          // 6 bytes of a, rounded up
  EXPECT_EQ(l.offset.at("c"), 256u + 256u);   // b is 140 bytes
  EXPECT_EQ(l.total, 512u + 2u);              // a scalar BF16 is one element
}

TEST(WeightsArena, ZeroSizedTensorTakesNoSpace) {
  const auto l = plan_arena({{"a", DType::BF16, {0, 4}}, {"b", DType::BF16, {4}}}, 128);
  EXPECT_EQ(l.offset.at("a"), 0u);
  EXPECT_EQ(l.offset.at("b"), 0u);
  EXPECT_EQ(l.total, 8u);
}

TEST(WeightsArena, RejectsDuplicatesEmptyNamesBadAlignAndOverflow) {
  EXPECT_THROW(plan_arena({{"a", DType::BF16, {1}}, {"a", DType::BF16, {1}}}), std::invalid_argument);
  EXPECT_THROW(plan_arena({{"", DType::BF16, {1}}}), std::invalid_argument);
  EXPECT_THROW(plan_arena({{"a", DType::BF16, {1}}}, 48), std::invalid_argument);
  EXPECT_THROW(plan_arena({{"a", DType::BF16, {-1}}}), std::invalid_argument);
  const std::int64_t big = std::numeric_limits<std::int64_t>::max() / 2;
  EXPECT_THROW(plan_arena({{"a", DType::F32, {big, big}}}), std::invalid_argument);
  try {
    plan_arena({{"x.weight", DType::BF16, {1}}, {"x.weight", DType::BF16, {2}}});
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("x.weight"), std::string::npos) << e.what();
  }
}
