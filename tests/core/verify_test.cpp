#include "aipe/verify.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

using namespace aipe;

TEST(Verify, IdenticalPasses) {
  std::vector<float> a = {1, 2, 3};
  auto r = compare(std::span<const float>(a), std::span<const float>(a), tolerance_for(DType::f32));
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.checked, 3u);
  EXPECT_EQ(r.norm_rel_error, 0);
}

TEST(Verify, WithinCombinedTolerancePasses) {
  std::vector<double> ref = {1000.0, 0.0};
  std::vector<float> out = {1000.009f, 0.000009f};  // rel term covers the first, abs term the second
  auto r = compare(std::span<const float>(out), std::span<const double>(ref), Tolerance{1e-5, 1e-5, 1e-3});
  EXPECT_TRUE(r.ok) << r.message();
}

TEST(Verify, OneWrongElementFailsAndIsNamed) {
  std::vector<double> ref(100, 1.0);
  std::vector<double> out(100, 1.0);
  out[42] = 1.5;
  auto r = compare(std::span<const double>(out), std::span<const double>(ref), tolerance_for(DType::f32));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.mismatches, 1u);
  ASSERT_EQ(r.first.size(), 1u);
  EXPECT_EQ(r.first[0].index, 42u);
  EXPECT_DOUBLE_EQ(r.first[0].expected, 1.0);
  EXPECT_DOUBLE_EQ(r.first[0].actual, 1.5);
  EXPECT_NE(r.message().find("[42]"), std::string::npos) << r.message();
}

TEST(Verify, NaNNeverPassesEvenWithHugeTolerance) {
  std::vector<float> ref = {1, 2};
  std::vector<float> out = {1, std::numeric_limits<float>::quiet_NaN()};
  auto r = compare(std::span<const float>(out), std::span<const float>(ref), Tolerance{1e30, 1e30, 1e30});
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.non_finite, 1u);
}

TEST(Verify, InfNeverPasses) {
  std::vector<float> ref = {1};
  std::vector<float> out = {std::numeric_limits<float>::infinity()};
  EXPECT_FALSE(compare(std::span<const float>(out), std::span<const float>(ref), Tolerance{1e30, 1e30, 1e30}).ok);
}

TEST(Verify, NormBoundCatchesSmallSystematicError) {
  // Every element inside the elementwise bound, but all biased the same way: the norm test fails.
  std::vector<double> ref(1000, 1.0);
  std::vector<double> out(1000, 1.0 + 9e-3);
  auto r = compare(std::span<const double>(out), std::span<const double>(ref), Tolerance{0, 1e-2, 1e-3});
  EXPECT_EQ(r.mismatches, 0u);
  EXPECT_FALSE(r.ok);
  EXPECT_NEAR(r.norm_rel_error, 9e-3, 1e-9);
}

TEST(Verify, SizeMismatchFails) {
  std::vector<float> a = {1, 2, 3}, b = {1, 2};
  auto r = compare(std::span<const float>(a), std::span<const float>(b), tolerance_for(DType::f32));
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.message().find("size mismatch"), std::string::npos);
}

TEST(Verify, ExactToleranceRejectsOneUlp) {
  EXPECT_FALSE(compare_scalar(1.0 + 1e-15, 1.0, tolerance_for(DType::exact)).ok);
  EXPECT_TRUE(compare_scalar(7, 7, tolerance_for(DType::exact)).ok);
}

TEST(Verify, TolerancesOrderedByPrecision) {
  EXPECT_LT(tolerance_for(DType::f64).rel, tolerance_for(DType::f32).rel);
  EXPECT_LT(tolerance_for(DType::f32).rel, tolerance_for(DType::f16).rel);
  EXPECT_LT(tolerance_for(DType::f16).rel, tolerance_for(DType::bf16).rel);
  EXPECT_LT(tolerance_for(DType::bf16).rel, tolerance_for(DType::fp8_e4m3).rel);
}

TEST(Verify, MergeKeepsWorst) {
  std::vector<float> ref = {1, 1}, good = {1, 1}, bad = {1, 3};
  auto a = compare(std::span<const float>(good), std::span<const float>(ref), tolerance_for(DType::f32));
  auto b = compare(std::span<const float>(bad), std::span<const float>(ref), tolerance_for(DType::f32));
  a.merge(b);
  EXPECT_FALSE(a.ok);
  EXPECT_EQ(a.checked, 4u);
  EXPECT_DOUBLE_EQ(a.max_abs_error, 2.0);
}

// iterate_exact stops at a fixed point or a 2-cycle; its answer must equal the plain loop's for every
// iteration count, including the parity of a 2-cycle.
TEST(IterateExact, MatchesThePlainLoop) {
  auto plain = [](float v, int iters, auto step) {
    for (int k = 0; k < iters; ++k) v = step(v);
    return v;
  };
  auto contract = [](float v) { return std::fma(v, 0.5f, 1.0f); };   // converges to the fixed point 2
  auto flip = [](float v) { return -v; };                             // 2-cycle from the start
  auto to_cycle = [](float v) { return v > 3.0f ? -1.0f : v + 1.0f; };  // a cycle of length 6: -1, 0, 1, 2, 3, 4
  for (int iters : {0, 1, 2, 3, 7, 30, 31, 200, 201}) {
    SCOPED_TRACE(iters);
    EXPECT_EQ(iterate_exact(0.3f, iters, contract), plain(0.3f, iters, contract));
    EXPECT_EQ(iterate_exact(1.5f, iters, flip), plain(1.5f, iters, flip));
    EXPECT_EQ(iterate_exact(0.0f, iters, to_cycle), plain(0.0f, iters, to_cycle));
  }
  EXPECT_EQ(iterate_exact(0.3f, 1000, contract), 2.0f);
  EXPECT_EQ(iterate_exact(1.5f, 1001, flip), -1.5f);
}
