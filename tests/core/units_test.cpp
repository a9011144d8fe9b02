#include "aipe/units.hpp"
#include "aipe/work.hpp"

#include <gtest/gtest.h>

using namespace aipe;

TEST(Units, PlainAndSuffixed) {
  EXPECT_EQ(parse_size("4096"), 4096);
  EXPECT_EQ(parse_size("64K"), 64 * 1024);
  EXPECT_EQ(parse_size("16M"), 16ll << 20);
  EXPECT_EQ(parse_size("1g"), 1ll << 30);
}

TEST(Units, RejectsMalformed) {
  std::string why;
  EXPECT_FALSE(parse_size("", &why));
  EXPECT_FALSE(parse_size("abc", &why));
  EXPECT_NE(why.find("not a size"), std::string::npos);
  EXPECT_FALSE(parse_size("12X", &why));
  EXPECT_NE(why.find("unknown suffix"), std::string::npos);
  EXPECT_FALSE(parse_size("12MB", &why));
  EXPECT_FALSE(parse_size("-5", &why));
  EXPECT_FALSE(parse_size("99999999999999999999", &why));
  EXPECT_FALSE(parse_size("9000000000000G", &why));
  EXPECT_NE(why.find("too large"), std::string::npos);
}

TEST(Units, Assignment) {
  auto kv = parse_size_assignment("n=2M");
  ASSERT_TRUE(kv);
  EXPECT_EQ(kv->first, "n");
  EXPECT_EQ(kv->second, 2 << 20);
  EXPECT_FALSE(parse_size_assignment("n"));
  EXPECT_FALSE(parse_size_assignment("=5"));
  EXPECT_FALSE(parse_size_assignment("n=x"));
}

TEST(WorkModel, RatesAreDecimal) {
  const Work w{3e9, 0, ComputeUnit::none};
  const Rates r = rates_for(w, 1.0, 3000, 0);  // 3e9 B in 1 s = 3 GB/s, 0.1% of 3000 GB/s
  EXPECT_DOUBLE_EQ(r.gbps, 3.0);
  EXPECT_DOUBLE_EQ(r.pct_of_roofline, 0.1);
  const Rates r2 = rates_for(Work{1.5e9, 0, ComputeUnit::none}, 1.0, 3.0, 0);
  EXPECT_DOUBLE_EQ(r2.gbps, 1.5);
  EXPECT_DOUBLE_EQ(r2.pct_of_roofline, 50.0);
}

TEST(WorkModel, RooflinePicksTheLowerRoof) {
  // Intensity 1 FLOP/B at 3000 GB/s: memory roof 3 TFLOP/s, far below a 1000 TFLOP/s compute peak.
  const Work low{1e9, 1e9, ComputeUnit::bf16};
  const Rates a = rates_for(low, 1e-3, 3000, 1000);  // 1 TFLOP/s attained
  EXPECT_STREQ(a.bound, "memory");
  EXPECT_NEAR(a.pct_of_roofline, 100.0 / 3.0, 1e-9);
  // Intensity 1000 FLOP/B: memory roof 3000 TFLOP/s, the compute peak is lower.
  const Work high{1e9, 1e12, ComputeUnit::bf16};
  const Rates b = rates_for(high, 2.0, 3000, 1000);  // 0.5 TFLOP/s
  EXPECT_STREQ(b.bound, "compute");
  EXPECT_NEAR(b.pct_of_roofline, 0.05, 1e-12);
  EXPECT_DOUBLE_EQ(high.intensity(), 1000.0);
}
