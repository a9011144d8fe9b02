// CPU tests of the MoE pieces' host side: the MXFP4 format (every E2M1 code and the E8M0 range against the OCP MX
// v1.0 definitions written out here, the nibble order, a whole random matrix against an independent decoding), the
// routing workspace size, and every entry point's argument rules (std::invalid_argument naming the argument, before
// any CUDA call).
#include <gtest/gtest.h>

#include <bit>
#include <climits>
#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "aipe/kernels/moe.hpp"
#include "aipe/kernels/moe_checks.hpp"

namespace {

namespace moe = aipe::kernels::moe;

template <class F>
void expect_invalid(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one mentioning '" << needle << "'";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
  }
}

// OCP MX v1.0, FP4 E2M1: sign, 2 exponent bits (bias 1), 1 mantissa bit; exponent 0 is subnormal (m * 2^-1).
double e2m1_by_fields(unsigned code) {
  const unsigned sign = (code >> 3) & 1u, e = (code >> 1) & 3u, m = code & 1u;
  const double mag = e == 0 ? 0.5 * m : std::ldexp(1.0 + 0.5 * m, int(e) - 1);
  return sign ? -mag : mag;
}

TEST(Mxfp4, EveryE2m1CodeMatchesItsBitFields) {
  const double table[16] = {0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6};
  for (unsigned c = 0; c < 16; ++c) {
    EXPECT_EQ(double(moe::e2m1_value(c)), e2m1_by_fields(c)) << "code " << c;
    EXPECT_EQ(double(moe::e2m1_value(c)), table[c]) << "code " << c;
    EXPECT_EQ(std::signbit(moe::e2m1_value(c)), c >= 8) << "code " << c << " (8 is -0)";
  }
  EXPECT_EQ(moe::e2m1_value(0x17u), moe::e2m1_value(7u)) << "only the low 4 bits are the code";
}

TEST(Mxfp4, E8m0CoversItsRangeExactly) {
  // 2^-127 is below FP32's normal range: the subnormal 0.5 * 2^-126, mantissa bit 22 alone.
  EXPECT_EQ(std::bit_cast<std::uint32_t>(moe::e8m0_value(0)), 0x00400000u);
  EXPECT_EQ(std::bit_cast<std::uint32_t>(moe::e8m0_value(1)), 0x00800000u);  // 2^-126, the smallest normal
  EXPECT_EQ(moe::e8m0_value(126), 0.5f);
  EXPECT_EQ(moe::e8m0_value(127), 1.0f);
  EXPECT_EQ(moe::e8m0_value(128), 2.0f);
  EXPECT_EQ(std::bit_cast<std::uint32_t>(moe::e8m0_value(254)), 0x7f000000u);  // 2^127
  EXPECT_TRUE(std::isnan(moe::e8m0_value(255)));
  for (int s = 0; s < 255; ++s) EXPECT_EQ(double(moe::e8m0_value(std::uint8_t(s))), std::ldexp(1.0, s - 127)) << s;
}

TEST(Mxfp4, ElementTwoIIsTheLowNibbleOfByteI) {
  std::vector<std::uint8_t> blocks(16, 0), scales = {128};  // scale 2
  blocks[0] = 0x21;   // element 0: code 1 (0.5), element 1: code 2 (1)
  blocks[15] = 0xf9;  // element 30: code 9 (-0.5), element 31: code 15 (-6)
  std::vector<float> out(32, -1.f);
  moe::dequantize_mxfp4_host({.blocks = blocks.data(), .scales = scales.data(), .rows = 1, .cols = 32}, out.data());
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], 2.0f);
  EXPECT_EQ(out[30], -1.0f);
  EXPECT_EQ(out[31], -12.0f);
  for (int i = 2; i < 30; ++i) EXPECT_EQ(out[std::size_t(i)], 0.0f) << i;
}

TEST(Mxfp4, RandomMatrixMatchesAnIndependentDecoding) {
  const int rows = 7, cols = 96, nb = cols / 32;
  std::mt19937 rng(2121);
  std::vector<std::uint8_t> blocks(std::size_t(rows) * nb * 16), scales(std::size_t(rows) * nb);
  for (auto& b : blocks) b = std::uint8_t(rng());
  for (auto& s : scales) s = std::uint8_t(rng());
  // The extremes, whatever the generator gave: the subnormal end, the overflow end, NaN.
  scales[0] = 0;
  scales[1] = 1;
  scales[2] = 254;
  scales[3] = 253;
  scales[4] = 255;
  scales[5] = 127;
  std::vector<float> out(std::size_t(rows) * cols);
  moe::dequantize_mxfp4_host({.blocks = blocks.data(), .scales = scales.data(), .rows = rows, .cols = cols},
                             out.data());
  const double bf16_max = std::ldexp(2.0 - std::ldexp(1.0, -7), 127);
  int overflows = 0, subnormals = 0;
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      const std::size_t blk = std::size_t(r) * nb + std::size_t(c / 32);
      const std::uint8_t byte = blocks[blk * 16 + std::size_t(c % 32) / 2];
      const unsigned code = c % 2 ? byte >> 4 : byte & 0xfu;
      const float got = out[std::size_t(r) * cols + std::size_t(c)];
      const std::string where = "row " + std::to_string(r) + ", col " + std::to_string(c);
      if (scales[blk] == 255) {
        EXPECT_TRUE(std::isnan(got)) << where;
        continue;
      }
      double want = e2m1_by_fields(code) * std::ldexp(1.0, int(scales[blk]) - 127);
      if (std::abs(want) > bf16_max) {
        want = want > 0 ? INFINITY : -INFINITY;
        ++overflows;
      }
      if (want != 0 && std::abs(want) < std::ldexp(1.0, -126)) ++subnormals;
      EXPECT_EQ(double(got), want) << where;
      EXPECT_EQ(std::signbit(got), std::signbit(want)) << where;
    }
  EXPECT_GT(overflows, 0) << "the scale-254 block has codes 4 and 6 past BF16's range";
  EXPECT_GT(subnormals, 0) << "the scale-0 block has values below FP32's normal range";
}

TEST(Mxfp4, DequantizeRejectsBadShapes) {
  std::uint8_t b[16] = {}, s[1] = {};
  float out[32];
  expect_invalid([&] { moe::dequantize_mxfp4_host({.blocks = b, .scales = s, .rows = 1, .cols = 33}, out); }, "cols");
  expect_invalid([&] { moe::dequantize_mxfp4_host({.blocks = b, .scales = s, .rows = -1, .cols = 32}, out); }, "rows");
  expect_invalid([&] { moe::dequantize_mxfp4_host({.blocks = nullptr, .scales = s, .rows = 1, .cols = 32}, out); },
                 "blocks");
  expect_invalid([&] { moe::dequantize_mxfp4_host({.blocks = b, .scales = nullptr, .rows = 1, .cols = 32}, out); },
                 "scales");
  expect_invalid([&] { moe::dequantize_mxfp4({.blocks = b, .scales = s, .rows = 1, .cols = 32}, nullptr, nullptr); },
                 "out");
  moe::dequantize_mxfp4_host({.rows = 0, .cols = 64}, nullptr);  // empty: nothing to read or write
}

// ---------------------------------------------------------------------------------------------------- routing
TEST(MoeRouting, WorkspaceIsOneCountPerSegmentAndExpert) {
  EXPECT_EQ(moe::routing_workspace_bytes(0, 4, 128), 0u);
  EXPECT_EQ(moe::routing_workspace_bytes(1, 4, 128), 128u * 4);
  EXPECT_EQ(moe::routing_workspace_bytes(256, 4, 32), 32u * 4);  // 1024 pairs: one segment
  EXPECT_EQ(moe::routing_workspace_bytes(257, 4, 32), 2u * 32 * 4);
  EXPECT_EQ(moe::routing_workspace_bytes(65536, 8, 1024), 512u * 1024 * 4);
}

TEST(MoeRouting, TopkSoftmaxRejectsBadArguments) {
  const auto* lg = reinterpret_cast<const moe::bf16*>(16);
  int* ids = reinterpret_cast<int*>(16);
  float* w = reinterpret_cast<float*>(16);
  expect_invalid([&] { moe::check_topk_softmax(lg, 257, 1, 257, 4, ids, w); }, "experts");
  expect_invalid([&] { moe::check_topk_softmax(lg, 32, 1, 0, 1, ids, w); }, "experts");
  expect_invalid([&] { moe::check_topk_softmax(lg, 32, 1, 32, 9, ids, w); }, "k must be");
  expect_invalid([&] { moe::check_topk_softmax(lg, 4, 1, 4, 5, ids, w); }, "k must be");
  expect_invalid([&] { moe::check_topk_softmax(lg, 32, 1, 32, 0, ids, w); }, "k must be");
  expect_invalid([&] { moe::check_topk_softmax(lg, 31, 1, 32, 4, ids, w); }, "ld");
  expect_invalid([&] { moe::check_topk_softmax(lg, 32, -1, 32, 4, ids, w); }, "tokens");
  expect_invalid([&] { moe::check_topk_softmax(nullptr, 32, 1, 32, 4, ids, w); }, "logits");
  expect_invalid([&] { moe::check_topk_softmax(lg, 32, 1, 32, 4, nullptr, w); }, "ids");
  expect_invalid([&] { moe::check_topk_softmax(lg, 32, 1, 32, 4, ids, nullptr); }, "weights");
  moe::check_topk_softmax(nullptr, 32, 0, 32, 4, nullptr, nullptr);  // no tokens: nothing is touched
  moe::check_topk_softmax(lg, 256, 5, 256, 8, ids, w);
  // The entry point checks before it launches.
  expect_invalid([&] { moe::topk_softmax(lg, 32, 1, 32, 9, ids, w, nullptr); }, "k must be");
}

TEST(MoeRouting, BuildRoutingRejectsBadArguments) {
  int buf[4];
  const moe::Routing r{.offsets = buf, .row_token = buf, .pair_row = buf};
  const std::size_t ws = moe::routing_workspace_bytes(10, 4, 64);
  auto check = [&](const int* ids, int tokens, int k, int experts, const moe::Routing& out, const void* w,
                   std::size_t bytes) { moe::check_build_routing(ids, tokens, k, experts, out, w, bytes); };
  check(buf, 10, 4, 64, r, buf, ws);
  expect_invalid([&] { check(buf, -1, 4, 64, r, buf, ws); }, "tokens");
  expect_invalid([&] { check(buf, 10, 0, 64, r, buf, ws); }, "k must be");
  expect_invalid([&] { check(buf, 10, 4, 0, r, buf, ws); }, "experts");
  expect_invalid([&] { check(buf, 10, 4, 1025, r, buf, 1 << 20); }, "experts");
  expect_invalid([&] { check(buf, 1 << 22, 8, 64, r, buf, std::size_t(1) << 30); }, "tokens * k");
  expect_invalid([&] { check(buf, 10, 4, 64, r, buf, ws - 1); }, "workspace_bytes");
  expect_invalid([&] { check(buf, 10, 4, 64, r, nullptr, ws); }, "workspace is null");
  expect_invalid([&] { check(buf, 10, 4, 64, r, reinterpret_cast<const char*>(buf) + 1, ws); }, "aligned");
  expect_invalid([&] { check(nullptr, 10, 4, 64, r, buf, ws); }, "ids");
  expect_invalid([&] { check(buf, 10, 4, 64, {.offsets = nullptr, .row_token = buf, .pair_row = buf}, buf, ws); },
                 "out.offsets");
  expect_invalid([&] { check(buf, 10, 4, 64, {.offsets = buf, .row_token = nullptr, .pair_row = buf}, buf, ws); },
                 "out.row_token");
  expect_invalid([&] { check(buf, 10, 4, 64, {.offsets = buf, .row_token = buf, .pair_row = nullptr}, buf, ws); },
                 "out.pair_row");
  check(nullptr, 0, 4, 64, {.offsets = buf}, nullptr, 0);  // no tokens: only the offsets are written
  expect_invalid([&] { moe::build_routing(buf, 10, 4, 64, r, buf, ws - 1, nullptr, nullptr); }, "workspace_bytes");
}

TEST(MoeRouting, GatherAndCombineRejectBadArguments) {
  alignas(16) moe::bf16 a[64], b[64];
  int rows[4] = {};
  float w[4] = {};
  moe::check_gather_rows(a, 8, rows, 4, 8, b, 8);
  expect_invalid([&] { moe::check_gather_rows(a, 8, rows, -1, 8, b, 8); }, "rows");
  expect_invalid([&] { moe::check_gather_rows(a, 8, rows, 4, 0, b, 8); }, "cols");
  expect_invalid([&] { moe::check_gather_rows(a, 7, rows, 4, 8, b, 8); }, "ld_x");
  expect_invalid([&] { moe::check_gather_rows(a, 8, rows, 4, 8, b, 7); }, "ld_xg");
  expect_invalid([&] { moe::check_gather_rows(nullptr, 8, rows, 4, 8, b, 8); }, "x is null");
  expect_invalid([&] { moe::check_gather_rows(a, 8, nullptr, 4, 8, b, 8); }, "row_token");
  expect_invalid([&] { moe::check_gather_rows(a, 8, rows, 4, 8, nullptr, 8); }, "xg is null");
  expect_invalid([&] { moe::check_gather_rows(a, 8, rows, 4, 8, a, 8); }, "must not be x");
  expect_invalid([&] { moe::gather_rows(a, 7, rows, 4, 8, b, 8, nullptr); }, "ld_x");

  moe::check_combine(a, 8, rows, w, 2, 2, 8, nullptr, b, 8);
  moe::check_combine(a, 8, rows, w, 2, 2, 8, b, b, 8);  // out == residual
  expect_invalid([&] { moe::check_combine(a, 8, rows, w, -1, 2, 8, nullptr, b, 8); }, "tokens");
  expect_invalid([&] { moe::check_combine(a, 8, rows, w, 2, 0, 8, nullptr, b, 8); }, "k must be");
  expect_invalid([&] { moe::check_combine(a, 8, rows, w, 2, 2, 0, nullptr, b, 8); }, "cols");
  expect_invalid([&] { moe::check_combine(a, 7, rows, w, 2, 2, 8, nullptr, b, 8); }, "ld_yg");
  expect_invalid([&] { moe::check_combine(a, 8, rows, w, 2, 2, 8, nullptr, b, 7); }, "ld_out");
  expect_invalid([&] { moe::check_combine(nullptr, 8, rows, w, 2, 2, 8, nullptr, b, 8); }, "yg is null");
  expect_invalid([&] { moe::check_combine(a, 8, nullptr, w, 2, 2, 8, nullptr, b, 8); }, "pair_row");
  expect_invalid([&] { moe::check_combine(a, 8, rows, nullptr, 2, 2, 8, nullptr, b, 8); }, "weights");
  expect_invalid([&] { moe::check_combine(a, 8, rows, w, 2, 2, 8, nullptr, nullptr, 8); }, "out is null");
  expect_invalid([&] { moe::check_combine(a, 8, rows, w, 2, 2, 8, nullptr, a, 8); }, "must not be yg");
  expect_invalid([&] { moe::check_combine(a, 8, rows, w, 2, 2, 8, b + 8, b, 8); }, "residual overlaps");
  moe::check_combine(a, 8, rows, w, 2, 2, 8, b + 16, b, 8);  // the row after out's last: no overlap
  expect_invalid([&] { moe::combine(a, 8, rows, w, 2, 2, 8, nullptr, b, 7, nullptr); }, "ld_out");
}

}  // namespace
