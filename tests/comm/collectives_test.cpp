#include "aipe/comm/collectives.hpp"

#include <gtest/gtest.h>

#include <set>

using namespace aipe::comm;

TEST(Collectives, TableHasEveryCollectiveOnceInOrder) {
  auto all = collectives();
  ASSERT_EQ(all.size(), 7u);
  const char* names[] = {"all_reduce", "all_gather", "reduce_scatter", "all_to_all", "broadcast", "reduce", "sendrecv"};
  for (std::size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].name, names[i]);
    EXPECT_EQ(static_cast<std::size_t>(all[i].id), i);
    EXPECT_EQ(&info(all[i].id), &all[i]);
    EXPECT_EQ(parse_collective(names[i]), all[i].id);
  }
  EXPECT_FALSE(parse_collective("allreduce"));
  EXPECT_FALSE(parse_collective("all"));
  EXPECT_EQ(parse_reduce_op("sum"), ReduceOp::sum);
  EXPECT_EQ(parse_reduce_op("min"), ReduceOp::min);
  EXPECT_EQ(parse_reduce_op("prod"), ReduceOp::prod);
  EXPECT_EQ(parse_reduce_op("avg"), ReduceOp::avg);
  EXPECT_FALSE(parse_reduce_op("mean"));
  EXPECT_FALSE(parse_reduce_op("Sum"));
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::prod, ReduceOp::max, ReduceOp::min, ReduceOp::avg})
    EXPECT_EQ(parse_reduce_op(reduce_op_name(op)), op);
}

TEST(Collectives, BusBandwidthFactorsAreNcclTests) {
  for (int n : {1, 2, 3, 8, 72}) {
    const double nm1 = n - 1.0;
    EXPECT_DOUBLE_EQ(info(Collective::all_reduce).bus_factor(n), 2 * nm1 / n) << n;
    EXPECT_DOUBLE_EQ(info(Collective::all_gather).bus_factor(n), nm1 / n) << n;
    EXPECT_DOUBLE_EQ(info(Collective::reduce_scatter).bus_factor(n), nm1 / n) << n;
    EXPECT_DOUBLE_EQ(info(Collective::all_to_all).bus_factor(n), nm1 / n) << n;
    EXPECT_DOUBLE_EQ(info(Collective::broadcast).bus_factor(n), 1.0) << n;
    EXPECT_DOUBLE_EQ(info(Collective::reduce).bus_factor(n), 1.0) << n;
    EXPECT_DOUBLE_EQ(info(Collective::sendrecv).bus_factor(n), 1.0) << n;
  }
  EXPECT_DOUBLE_EQ(info(Collective::all_reduce).bus_factor(8), 1.75);
  EXPECT_DOUBLE_EQ(info(Collective::all_gather).bus_factor(8), 0.875);
}

TEST(Collectives, AlgbwAndBusbw) {
  // 1 GB in 10 ms: 100 GB/s algbw; all-reduce on 8 ranks: 175 GB/s busbw.
  EXPECT_DOUBLE_EQ(algbw_gbs(1'000'000'000, 0.01), 100.0);
  EXPECT_DOUBLE_EQ(busbw_gbs(Collective::all_reduce, 1'000'000'000, 0.01, 8), 175.0);
  EXPECT_DOUBLE_EQ(busbw_gbs(Collective::broadcast, 1'000'000'000, 0.01, 8), 100.0);
  EXPECT_DOUBLE_EQ(busbw_gbs(Collective::all_reduce, 1'000'000'000, 0.01, 1), 0.0);
  EXPECT_EQ(algbw_gbs(100, 0.0), 0.0);
}

TEST(Collectives, ElementCountsAndBytesPerRank) {
  // 1000 bytes of 4-byte elements on 3 ranks: 250 elements; the split collectives round to 249.
  EXPECT_EQ(element_count(Collective::all_reduce, 1000, 4, 3), 250);
  EXPECT_EQ(element_count(Collective::all_gather, 1000, 4, 3), 249);
  EXPECT_EQ(element_count(Collective::reduce_scatter, 1000, 4, 3), 249);
  EXPECT_EQ(element_count(Collective::all_to_all, 1000, 4, 3), 249);
  EXPECT_EQ(element_count(Collective::broadcast, 1001, 4, 3), 250);
  EXPECT_EQ(element_count(Collective::all_gather, 8, 4, 3), 0);  // too small to split
  EXPECT_EQ(element_count(Collective::all_reduce, 0, 4, 3), 0);
  EXPECT_EQ(element_count(Collective::all_reduce, 8, 0, 3), 0);

  auto ag = byte_counts(Collective::all_gather, 249, 4, 3);
  EXPECT_EQ(ag.send, 332);
  EXPECT_EQ(ag.recv, 996);
  auto rs = byte_counts(Collective::reduce_scatter, 249, 4, 3);
  EXPECT_EQ(rs.send, 996);
  EXPECT_EQ(rs.recv, 332);
  for (Collective c : {Collective::all_reduce, Collective::all_to_all, Collective::broadcast, Collective::reduce,
                       Collective::sendrecv}) {
    auto b = byte_counts(c, 249, 4, 3);
    EXPECT_EQ(b.send, 996) << info(c).name;
    EXPECT_EQ(b.recv, 996) << info(c).name;
  }
}

// The expected values against a direct simulation of each collective over every rank's input buffers.
TEST(Collectives, ExpectedValuesMatchASimulation) {
  for (int n : {1, 2, 3, 5}) {
    const std::int64_t count = 7 * n;  // awkward block size 7
    const std::int64_t block = count / n;
    std::vector<std::vector<std::int64_t>> in(n, std::vector<std::int64_t>(count));
    for (int r = 0; r < n; ++r)
      for (std::int64_t i = 0; i < count; ++i) in[r][i] = input_value(r, i);
    for (ReduceOp op : {ReduceOp::sum, ReduceOp::max, ReduceOp::min}) {
      auto red = [&](std::int64_t i) {
        std::int64_t a = in[0][i];
        for (int r = 1; r < n; ++r)
          a = op == ReduceOp::sum ? a + in[r][i] : op == ReduceOp::max ? std::max(a, in[r][i]) : std::min(a, in[r][i]);
        return a;
      };
      for (int r = 0; r < n; ++r) {
        for (std::int64_t i = 0; i < count; ++i) {
          EXPECT_EQ(expected_value(Collective::all_reduce, op, n, r, count, i), red(i));
          EXPECT_EQ(expected_value(Collective::broadcast, op, n, r, count, i), in[0][i]);
          EXPECT_EQ(expected_value(Collective::sendrecv, op, n, r, count, i), in[(r + n - 1) % n][i]);
          EXPECT_EQ(expected_value(Collective::all_gather, op, n, r, count, i), in[i / block][i % block]);
          EXPECT_EQ(expected_value(Collective::all_to_all, op, n, r, count, i), in[i / block][r * block + i % block]);
          auto reduced = expected_value(Collective::reduce, op, n, r, count, i);
          if (r == 0) {
            EXPECT_EQ(reduced, red(i));
          } else {
            EXPECT_FALSE(reduced);
          }
        }
        for (std::int64_t j = 0; j < block; ++j)
          EXPECT_EQ(expected_value(Collective::reduce_scatter, op, n, r, count, j), red(r * block + j));
      }
    }
  }
}

TEST(Collectives, InputsAreSmallIntegersThatVaryAcrossRanksAndElements) {
  std::set<std::int64_t> values;
  for (int r = 0; r < 4; ++r)
    for (std::int64_t i = 0; i < 16; ++i) {
      auto v = input_value(r, i);
      EXPECT_GE(v, 0);
      EXPECT_LT(v, 8);
      values.insert(v);
    }
  EXPECT_EQ(values.size(), 8u);
  EXPECT_NE(input_value(0, 0), input_value(1, 0));  // a collective that mixed up ranks is caught
  EXPECT_NE(input_value(0, 0), input_value(0, 1));  // ... and one that mixed up elements
  // A sum over 36 ranks stays <= 256, exact in BF16.
  std::int64_t worst = 0;
  for (std::int64_t i = 0; i < 8; ++i) worst = std::max(worst, *expected_value(Collective::all_reduce, ReduceOp::sum, 36, 0, 8, i));
  EXPECT_LE(worst, 256);
}

TEST(Collectives, SweepsFollowNcclTestsFlags) {
  std::string err;
  auto s = parse_sweep("8", "8G", std::nullopt, std::nullopt, &err);
  ASSERT_TRUE(s) << err;
  auto sizes = s->sizes();
  ASSERT_EQ(sizes.size(), 31u);  // 2^3 .. 2^33
  EXPECT_EQ(sizes.front(), 8);
  EXPECT_EQ(sizes.back(), 8ll << 30);
  s = parse_sweep("1K", "100K", std::string("4"), std::nullopt, &err);
  ASSERT_TRUE(s) << err;
  EXPECT_EQ(s->sizes(), (std::vector<std::int64_t>{1024, 4096, 16384, 65536}));
  s = parse_sweep("1M", "3M", std::nullopt, std::string("512K"), &err);
  ASSERT_TRUE(s) << err;
  EXPECT_EQ(s->sizes(), (std::vector<std::int64_t>{1 << 20, 3 << 19, 2 << 20, 5 << 19, 3 << 20}));
  s = parse_sweep("7", "7", std::nullopt, std::nullopt, &err);
  ASSERT_TRUE(s) << err;
  EXPECT_EQ(s->sizes(), (std::vector<std::int64_t>{7}));
  // Near the top of int64 the next step would overflow: the sweep stops instead of wrapping.
  s = parse_sweep("1", "8589934591G", std::string("4G"), std::nullopt, &err);
  ASSERT_TRUE(s) << err;
  EXPECT_EQ(s->sizes(), (std::vector<std::int64_t>{1, 4ll << 30}));
  s = parse_sweep("8589934590G", "8589934591G", std::nullopt, std::string("8589934590G"), &err);
  ASSERT_TRUE(s) << err;
  EXPECT_EQ(s->sizes(), (std::vector<std::int64_t>{8589934590ll << 30}));
}

TEST(Collectives, SweepErrorsNameTheFlag) {
  auto error = [](const char* b, const char* e, std::optional<std::string> f, std::optional<std::string> i) {
    std::string err;
    EXPECT_FALSE(parse_sweep(b, e, f, i, &err)) << b << " " << e;
    return err;
  };
  EXPECT_NE(error("x", "8G", {}, {}).find("-b 'x'"), std::string::npos);
  EXPECT_NE(error("8", "8Q", {}, {}).find("-e '8Q'"), std::string::npos);
  EXPECT_NE(error("0", "8", {}, {}).find("at least 1 byte"), std::string::npos);
  EXPECT_NE(error("1M", "1K", {}, {}).find("-e 1K is below -b 1M"), std::string::npos);
  EXPECT_NE(error("8", "8G", "2", "1M").find("-f and -i both given"), std::string::npos);
  EXPECT_NE(error("8", "8G", "1", {}).find("-f 1: the factor must be at least 2"), std::string::npos);
  EXPECT_NE(error("8", "8G", "two", {}).find("-f 'two'"), std::string::npos);
  EXPECT_NE(error("8", "8G", {}, "0").find("-i 0: the increment must be positive"), std::string::npos);
  EXPECT_NE(error("8", "8G", {}, "-5").find("-i"), std::string::npos);
}

// prod and avg, simulated the way NCCL computes them: prod multiplies the inputs (1s and 2s), avg sums inputs
// that are n times the base value and divides by n (NCCL's integer path; the floating path pre-multiplies by
// 1/n, which gives the same integers for these inputs, see exact_values.hpp).
TEST(Collectives, ProdAndAvgInputsAndExpectedValues) {
  for (int n : {1, 2, 3, 4, 7}) {
    const std::int64_t count = 5 * n;
    const std::int64_t block = count / n;
    for (std::int64_t i = 0; i < count; ++i) {
      std::int64_t prod = 1, sum = 0;
      for (int r = 0; r < n; ++r) {
        const auto p = input_for(Collective::all_reduce, ReduceOp::prod, n, r, i);
        EXPECT_TRUE(p == 1 || p == 2) << p;
        prod *= p;
        const auto a = input_for(Collective::all_reduce, ReduceOp::avg, n, r, i);
        EXPECT_EQ(a % n, 0) << "avg inputs are multiples of n";
        sum += a;
        // The collectives that do not reduce always move the base value.
        EXPECT_EQ(input_for(Collective::all_gather, ReduceOp::avg, n, r, i), input_value(r, i));
        EXPECT_EQ(input_for(Collective::all_reduce, ReduceOp::max, n, r, i), input_value(r, i));
      }
      EXPECT_EQ(expected_value(Collective::all_reduce, ReduceOp::prod, n, 0, count, i), prod) << n << " " << i;
      EXPECT_EQ(expected_value(Collective::all_reduce, ReduceOp::avg, n, 0, count, i), sum / n) << n << " " << i;
      EXPECT_EQ(sum % n, 0);
    }
    for (int r = 0; r < n; ++r)
      for (std::int64_t j = 0; j < block; ++j)
        EXPECT_EQ(expected_value(Collective::reduce_scatter, ReduceOp::prod, n, r, count, j),
                  expected_value(Collective::all_reduce, ReduceOp::prod, n, 0, count, r * block + j));
  }
  // prod is not all ones (a collective that did nothing would pass) nor all zeros.
  std::set<std::int64_t> seen;
  for (std::int64_t i = 0; i < 16; ++i) seen.insert(*expected_value(Collective::all_reduce, ReduceOp::prod, 3, 0, 16, i));
  EXPECT_GE(seen.size(), 3u);
}
