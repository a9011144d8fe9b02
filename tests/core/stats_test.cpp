#include "aipe/stats.hpp"

#include <gtest/gtest.h>

#include <cmath>

using namespace aipe;

TEST(Stats, SummaryOfKnownSamples) {
  const Summary s = summarize({5, 1, 4, 2, 3});
  EXPECT_EQ(s.n, 5u);
  EXPECT_DOUBLE_EQ(s.median, 3);
  EXPECT_DOUBLE_EQ(s.min, 1);
  EXPECT_DOUBLE_EQ(s.max, 5);
  EXPECT_DOUBLE_EQ(s.mean, 3);
  EXPECT_NEAR(s.stdev, std::sqrt(2.5), 1e-12);
  EXPECT_NEAR(s.noise, std::sqrt(2.5) / 3, 1e-12);
  EXPECT_NEAR(s.p90, 4.6, 1e-12);  // linear interpolation between ranks 3 and 4
  EXPECT_NEAR(s.p10, 1.4, 1e-12);
}

TEST(Stats, MedianOfEvenCountInterpolates) {
  EXPECT_DOUBLE_EQ(summarize({4, 1, 3, 2}).median, 2.5);
}

TEST(Stats, SingleSampleHasNoNoise) {
  const Summary s = summarize({7});
  EXPECT_DOUBLE_EQ(s.median, 7);
  EXPECT_DOUBLE_EQ(s.noise, 0);
}

TEST(Stats, EmptyThrows) { EXPECT_THROW(summarize({}), std::invalid_argument); }

TEST(Stats, MedianResistsOneOutlier) {
  const Summary s = summarize({1.0, 1.0, 1.0, 1.0, 100.0});
  EXPECT_DOUBLE_EQ(s.median, 1.0);
  EXPECT_GT(s.noise, 1.0);  // but the noise shows it
}

TEST(StoppingRule, NeedsMinSamplesEvenWhenQuiet) {
  StopCriteria c;
  c.min_samples = 10;
  c.min_time_s = 0;
  c.max_noise = 0.01;
  c.budget_s = 100;
  StoppingRule r(c);
  for (int i = 0; i < 9; ++i) {
    r.add(1.0, 0.001 * i);
    EXPECT_FALSE(r.done()) << "stopped after " << i + 1 << " samples";
  }
  r.add(1.0, 0.01);
  EXPECT_TRUE(r.done());
  EXPECT_EQ(r.reason(), "converged");
}

TEST(StoppingRule, NoisySamplesRunToTheBudget) {
  StopCriteria c;
  c.min_samples = 5;
  c.min_time_s = 0;
  c.max_noise = 0.01;
  c.budget_s = 1.0;
  StoppingRule r(c);
  double t = 0;
  for (int i = 0; i < 1000; ++i) {
    t += 0.009;
    r.add(i % 2 ? 1.0 : 2.0, t);  // 33% noise never converges
    if (r.done()) break;
  }
  EXPECT_EQ(r.reason(), "budget");
  EXPECT_GE(t, 1.0);
  EXPECT_LT(t, 1.01);
}

TEST(StoppingRule, MinTimeDelaysConvergence) {
  StopCriteria c;
  c.min_samples = 2;
  c.min_time_s = 0.5;
  c.max_noise = 0.5;
  c.budget_s = 10;
  StoppingRule r(c);
  r.add(1, 0.1);
  r.add(1, 0.2);
  EXPECT_FALSE(r.done());
  r.add(1, 0.6);
  EXPECT_EQ(r.reason(), "converged");
}

TEST(StoppingRule, MaxSamplesCaps) {
  StopCriteria c;
  c.min_samples = 1;
  c.max_samples = 3;
  c.min_time_s = 100;
  c.budget_s = 100;
  StoppingRule r(c);
  r.add(1, 0);
  r.add(2, 0);
  EXPECT_FALSE(r.done());
  r.add(3, 0);
  EXPECT_EQ(r.reason(), "max_samples");
}

TEST(StoppingRule, NoiseMatchesSummary) {
  StoppingRule r(StopCriteria{});
  const std::vector<double> v = {1.0, 1.1, 0.9, 1.05, 0.95};
  for (double x : v) r.add(x, 0);
  EXPECT_NEAR(r.current_noise(), summarize(v).noise, 1e-12);
}
