#include "aipe/verify.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
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

TEST(CheckElement, OneRuleForHostAndDevice) {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  for (auto [o, e] : {std::pair{nan, 1.0}, {1.0, nan}, {inf, inf}, {-inf, 1.0}}) {
    const auto x = detail::check_element(o, e, 1e9, 1e9);
    EXPECT_TRUE(x.bad && x.non_finite) << o << " vs " << e;
  }
  auto x = detail::check_element(1.0 + 1e-6, 1.0, 1e-5, 0);
  EXPECT_FALSE(x.bad);
  EXPECT_NEAR(x.abs, 1e-6, 1e-12);
  EXPECT_NEAR(x.rel, 1e-6, 1e-12);
  x = detail::check_element(-2.5, -2.0, 0.1, 0.2);  // bound 0.1 + 0.2 * 2 = 0.5: exactly on it passes
  EXPECT_FALSE(x.bad);
  x = detail::check_element(-2.6, -2.0, 0.1, 0.2);
  EXPECT_TRUE(x.bad);
  EXPECT_FALSE(x.non_finite);
  x = detail::check_element(0.05, 0.0, 0.1, 0);
  EXPECT_EQ(x.rel, -1) << "|ref| within the absolute tolerance has no relative error";
}

namespace {

// What the device compare's kernels produce for these inputs (one thread walking everything), turned
// into a VerifyResult by the same host function the device path uses.
VerifyResult as_device_would(const std::vector<double>& out, const std::vector<double>& ref, const Tolerance& tol) {
  detail::DeviceCompareLog log;
  double max_abs = 0, max_rel = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    const auto x = detail::check_element(out[i], ref[i], tol.abs, tol.rel);
    if (x.non_finite) {
      ++log.non_finite;
    } else {
      log.diff_sq += x.abs * x.abs;
      log.ref_sq += ref[i] * ref[i];
      max_abs = std::max(max_abs, x.abs);
      max_rel = std::max(max_rel, x.rel);
    }
    if (x.bad) {
      ++log.mismatches;
      log.first = std::min<unsigned long long>(log.first, i);
    }
  }
  log.max_abs_bits = std::bit_cast<unsigned long long>(max_abs);
  log.max_rel_bits = std::bit_cast<unsigned long long>(max_rel);
  std::vector<Mismatch> first;
  for (std::size_t i = 0; i < out.size() && first.size() < detail::kFirstMismatches; ++i)
    if (detail::check_element(out[i], ref[i], tol.abs, tol.rel).bad) first.push_back({i, ref[i], out[i]});
  return detail::finish_device_compare(log, out.size(), tol, first);
}

void expect_same(const VerifyResult& d, const VerifyResult& h) {
  EXPECT_EQ(d.ok, h.ok);
  EXPECT_EQ(d.checked, h.checked);
  EXPECT_EQ(d.mismatches, h.mismatches);
  EXPECT_EQ(d.non_finite, h.non_finite);
  EXPECT_DOUBLE_EQ(d.max_abs_error, h.max_abs_error);
  EXPECT_DOUBLE_EQ(d.max_rel_error, h.max_rel_error);
  EXPECT_DOUBLE_EQ(d.norm_rel_error, h.norm_rel_error);
  ASSERT_EQ(d.first.size(), h.first.size());
  for (std::size_t k = 0; k < d.first.size(); ++k) {
    EXPECT_EQ(d.first[k].index, h.first[k].index);
    EXPECT_EQ(d.first[k].expected, h.first[k].expected);
    if (!std::isnan(h.first[k].actual)) EXPECT_EQ(d.first[k].actual, h.first[k].actual);
  }
  EXPECT_EQ(d.message(), h.message());
}

}  // namespace

TEST(DeviceCompare, HostAssemblyMatchesTheHostCompare) {
  const Tolerance tol = tolerance_for(DType::bf16);
  std::vector<double> ref(10007), out(10007);
  for (std::size_t i = 0; i < ref.size(); ++i) out[i] = ref[i] = std::sin(0.37 * static_cast<double>(i)) * 3;
  auto host = [&] { return compare(std::span<const double>(out), std::span<const double>(ref), tol); };
  {
    SCOPED_TRACE("all within tolerance");
    for (std::size_t i = 0; i < out.size(); i += 3) out[i] *= 1.001;
    expect_same(as_device_would(out, ref, tol), host());
    EXPECT_TRUE(host().ok);
  }
  {
    SCOPED_TRACE("twelve wrong elements, one NaN: the first eight are named");
    for (std::size_t i = 5000; i < 5012; ++i) out[i] += 1.0;
    out[5003] = std::numeric_limits<double>::quiet_NaN();
    const VerifyResult d = as_device_would(out, ref, tol);
    expect_same(d, host());
    EXPECT_FALSE(d.ok);
    EXPECT_EQ(d.mismatches, 12u);
    EXPECT_EQ(d.non_finite, 1u);
    ASSERT_EQ(d.first.size(), 8u);
    EXPECT_EQ(d.first[0].index, 5000u);
  }
  {
    SCOPED_TRACE("a systematic error under the elementwise bound fails the norm");
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = ref[i] * 1.015;  // within 0.01 + 0.02|ref|
    const VerifyResult d = as_device_would(out, ref, tol);
    expect_same(d, host());
    EXPECT_FALSE(d.ok);
    EXPECT_EQ(d.mismatches, 0u);
  }
}

TEST(DeviceCompare, SparseMismatchesBeyondTheWindowAreListedInOrder) {
  // Two mismatches further apart than the 4096-element window: both counted and both named, in order.
  const Tolerance tol = tolerance_for(DType::exact);
  std::vector<double> ref(20000, 2.0), out(20000, 2.0);
  out[10] = 3;
  out[15000] = 4;
  const VerifyResult d = as_device_would(out, ref, tol);
  EXPECT_FALSE(d.ok);
  EXPECT_EQ(d.mismatches, 2u);
  ASSERT_EQ(d.first.size(), 2u);
  EXPECT_EQ(d.first[0].index, 10u);
  EXPECT_EQ(d.first[1].index, 15000u);
  EXPECT_EQ(d.max_abs_error, 2.0);
  EXPECT_NE(d.message().find("2 of 20000 elements wrong, first at [10]"), std::string::npos) << d.message();
}
