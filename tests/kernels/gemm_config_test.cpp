// aipe::kernels::gemm's host side, without a GPU: the operand checks (every bad shape, pointer and pitch is a
// std::invalid_argument that names the operand and the rule) and the choice of tile configuration from the shape
// (waves of the persistent grid and tile quantization at awkward M and N).
#include "aipe/kernels/gemm.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <tuple>

namespace {

using aipe::kernels::bf16;
using aipe::kernels::DeviceSlots;
using aipe::kernels::Epilogue;
using aipe::kernels::Matrix;
using aipe::kernels::TileConfig;

// Device pointers that are never dereferenced (check_gemm reads only their values), 256-byte aligned as
// cudaMalloc's are.
bf16* fake(std::uintptr_t i) { return reinterpret_cast<bf16*>(std::uintptr_t(1) << 32 | (i << 24)); }

struct Operands {
  Matrix<const bf16> a, b;
  Matrix<bf16> c;
};
Operands packed(std::int64_t m, std::int64_t n, std::int64_t k) {
  return {aipe::kernels::matrix<const bf16>(fake(1), m, k), aipe::kernels::matrix<const bf16>(fake(2), n, k),
          aipe::kernels::matrix(fake(3), m, n)};
}

// The message of the std::invalid_argument that check_gemm throws ("" when it throws none).
std::string error_of(const Operands& o, const Epilogue& e = Epilogue::none()) {
  try {
    aipe::kernels::check_gemm(o.a, o.b, o.c, e);
  } catch (const std::invalid_argument& ex) {
    return ex.what();
  }
  return "";
}

TEST(GemmCheck, AcceptsAwkwardShapesWhoseRowsTmaCanRead) {
  for (auto [m, n, k] : {std::tuple{8191, 4097, 2056}, {37, 12289, 4104}, {3001, 4097, 1000}, {1, 1, 8}, {129, 257, 64}}) {
    const Operands o = packed(m, n, k);
    EXPECT_EQ(error_of(o), "") << m << " x " << n << " x " << k;
    const auto s = aipe::kernels::check_gemm(o.a, o.b, o.c, Epilogue::bias_gelu(fake(4)));
    EXPECT_EQ(s.m, m);
    EXPECT_EQ(s.n, n);
    EXPECT_EQ(s.k, k);
    // C's rows are 16-byte aligned exactly when N % 8 == 0: TMA stores, else stores from registers.
    EXPECT_EQ(s.tma_store, n % 8 == 0) << n;
  }
}

TEST(GemmCheck, KWhoseRowPitchTmaCannotReadIsAClearError) {
  for (int k : {1, 7, 12, 1001}) {
    const std::string e = error_of(packed(64, 64, k));
    EXPECT_NE(e.find("A's row pitch"), std::string::npos) << e;
    EXPECT_NE(e.find("multiple of 16 bytes"), std::string::npos) << e;
    EXPECT_NE(e.find("K % 8 == 0"), std::string::npos) << e;
  }
  // A padded pitch makes any K readable: K = 1001 in rows of 1008.
  Operands o = packed(64, 64, 1001);
  o.a.ld = o.b.ld = 1008;
  EXPECT_EQ(error_of(o), "");
  o.b.ld = 1004;  // B alone unaligned: named as B
  EXPECT_NE(error_of(o).find("B's row pitch (ld = 1004 BF16 = 2008 bytes)"), std::string::npos) << error_of(o);
}

TEST(GemmCheck, UnalignedBasePointersAreNamed) {
  Operands o = packed(64, 64, 64);
  o.a.data = fake(1) + 1;  // 2 bytes off
  EXPECT_NE(error_of(o).find("A's base pointer must be 16-byte aligned"), std::string::npos) << error_of(o);
  o = packed(64, 64, 64);
  o.b.data = fake(2) + 4;  // 8 bytes off
  EXPECT_NE(error_of(o).find("B's base pointer must be 16-byte aligned"), std::string::npos) << error_of(o);
  // C needs only 4-byte alignment (BF16 pairs); short of 16 it leaves through stores from registers.
  o = packed(64, 64, 64);
  o.c.data = fake(3) + 1;
  EXPECT_NE(error_of(o).find("C's base pointer must be 4-byte aligned"), std::string::npos) << error_of(o);
  o.c.data = fake(3) + 2;
  EXPECT_EQ(error_of(o), "");
  EXPECT_FALSE(aipe::kernels::check_gemm(o.a, o.b, o.c, Epilogue::none()).tma_store);
  o.c.data = fake(3);
  o.c.ld = 65;  // odd pitch
  EXPECT_FALSE(aipe::kernels::check_gemm(o.a, o.b, o.c, Epilogue::none()).tma_store);
}

TEST(GemmCheck, NullPointersNegativeSizesAndMismatchesAreClearErrors) {
  Operands o = packed(64, 64, 64);
  o.a.data = nullptr;
  EXPECT_NE(error_of(o).find("A is a null pointer"), std::string::npos);
  o = packed(64, 64, 64);
  o.c.data = nullptr;
  EXPECT_NE(error_of(o).find("C is a null pointer"), std::string::npos);
  EXPECT_NE(error_of(packed(-1, 64, 64)).find("A must have positive sizes, got -1 x 64"), std::string::npos);
  EXPECT_NE(error_of(packed(64, 0, 64)).find("B must have positive sizes"), std::string::npos);
  EXPECT_NE(error_of(packed(64, 64, -8)).find("positive sizes"), std::string::npos);
  EXPECT_NE(error_of(packed(std::int64_t(1) << 31, 64, 64)).find("below 2^31"), std::string::npos);
  o = packed(64, 64, 64);
  o.b.cols = 72;
  o.b.ld = 72;
  EXPECT_NE(error_of(o).find("B (N x K, nn.Linear's weight layout) needs K = 64 columns, got 64 x 72"),
            std::string::npos)
      << error_of(o);
  o = packed(64, 64, 64);
  o.c.rows = 65;
  EXPECT_NE(error_of(o).find("C must be M x N = 64 x 64"), std::string::npos) << error_of(o);
  o = packed(64, 64, 64);
  o.a.ld = 56;
  EXPECT_NE(error_of(o).find("A's leading dimension (56) is smaller than its row (64 elements)"), std::string::npos);
}

TEST(GemmCheck, TheEntryPointChecksBeforeItTouchesTheGpu) {
  // No GPU is needed to be told that K = 12 gives rows TMA cannot read, or that the bias is missing.
  const Operands o = packed(64, 64, 12);
  EXPECT_THROW(aipe::kernels::gemm(o.a, o.b, o.c, Epilogue::bias_gelu(fake(4))), std::invalid_argument);
  const Operands ok = packed(64, 64, 16);
  EXPECT_THROW(aipe::kernels::gemm(ok.a, ok.b, ok.c, Epilogue::bias_gelu(nullptr)), std::invalid_argument);
  EXPECT_THROW(aipe::kernels::plan_gemm(o.a, o.b, o.c), std::invalid_argument);
}

TEST(GemmCheck, EpilogueOperandsAreChecked) {
  const Operands o = packed(64, 96, 64);
  EXPECT_NE(error_of(o, Epilogue::bias_gelu(nullptr)).find("bias is a null pointer"), std::string::npos);
  EXPECT_EQ(error_of(o, Epilogue::bias_silu(fake(4)).with_scale(0.5f)), "");
  EXPECT_EQ(error_of(o, Epilogue::residual(aipe::kernels::matrix<const bf16>(fake(5), 64, 96, 101))), "");
  EXPECT_NE(error_of(o, Epilogue::residual(aipe::kernels::matrix<const bf16>(fake(5), 96, 64))).find(
                "residual R must be M x N = 64 x 96, got 96 x 64"),
            std::string::npos);
  EXPECT_NE(error_of(o, Epilogue::residual(aipe::kernels::matrix<const bf16>(nullptr, 64, 96))).find(
                "the residual R is a null pointer"),
            std::string::npos);
}

TEST(GemmEpilogue, NamedConstructorsComposeInOrder) {
  const Epilogue e = Epilogue::bias_gelu(fake(4)).with_scale(0.25f).with_residual(
      aipe::kernels::matrix<const bf16>(fake(5), 8, 8), 2.f);
  EXPECT_EQ(e.alpha(), 0.25f);
  EXPECT_TRUE(e.has_bias());
  EXPECT_EQ(e.activation(), aipe::kernels::Activation::gelu_tanh);
  EXPECT_TRUE(e.has_residual());
  EXPECT_EQ(e.beta(), 2.f);
  EXPECT_EQ(e.describe(), "alpha=0.250000, bias, gelu_tanh, residual*2.000000");
  EXPECT_EQ(Epilogue::none().describe(), "none");
  EXPECT_EQ(Epilogue::silu().describe(), "silu");
  EXPECT_FALSE(Epilogue::gelu().has_bias());
}

// The activation runs as the tile leaves (under the next tile's tensor work) only where that path exists: TMA
// stores, an activation, no residual, and the caller did not ask for the serial epilogue.
TEST(GemmEpilogue, ActivationOverlapsOnlyOnTheTmaStorePathWithoutResidual) {
  using aipe::kernels::ActivationTiming;
  using aipe::kernels::activation_overlapped;
  const Operands tma = packed(8192, 8192, 1024), regs = packed(4097, 3001, 1000);
  const auto st = aipe::kernels::check_gemm(tma.a, tma.b, tma.c, Epilogue::none());
  const auto sr = aipe::kernels::check_gemm(regs.a, regs.b, regs.c, Epilogue::none());
  ASSERT_TRUE(st.tma_store);
  ASSERT_FALSE(sr.tma_store);
  const auto r = aipe::kernels::matrix<const bf16>(fake(5), 8192, 8192);
  EXPECT_TRUE(activation_overlapped(st, Epilogue::bias_gelu(fake(4))));
  EXPECT_TRUE(activation_overlapped(st, Epilogue::gelu().with_scale(2.f)));
  EXPECT_TRUE(activation_overlapped(st, Epilogue::bias_silu(fake(4))));
  EXPECT_FALSE(activation_overlapped(st, Epilogue::bias(fake(4))));  // nothing to overlap
  EXPECT_FALSE(activation_overlapped(st, Epilogue::none()));
  EXPECT_FALSE(activation_overlapped(st, Epilogue::bias_gelu(fake(4)).with_residual(r)));
  EXPECT_FALSE(activation_overlapped(sr, Epilogue::bias_gelu(fake(4))));  // stores from registers
  const Epilogue serial = Epilogue::bias_gelu(fake(4)).with_activation_timing(ActivationTiming::serial);
  EXPECT_FALSE(activation_overlapped(st, serial));
  EXPECT_EQ(serial.describe(), "bias, gelu_tanh, serial activation");
  EXPECT_EQ(Epilogue::bias_gelu(fake(4)).describe(), "bias, gelu_tanh");
  EXPECT_EQ(Epilogue::bias(fake(4)).with_activation_timing(ActivationTiming::serial).describe(), "bias");
}

// The FP8 entry point: E4M3 rows are 16-byte aligned at K % 16 == 0; block scales need K % 128 == 0; no fused
// operations yet; C packed.
TEST(GemmCheck, Fp8OperandsAndScales) {
  using aipe::kernels::e4m3;
  using aipe::kernels::Fp8Scales;
  auto a = [](std::int64_t m, std::int64_t k) {
    return aipe::kernels::matrix<const e4m3>(reinterpret_cast<const e4m3*>(fake(1)), m, k);
  };
  auto b = [](std::int64_t n, std::int64_t k) {
    return aipe::kernels::matrix<const e4m3>(reinterpret_cast<const e4m3*>(fake(2)), n, k);
  };
  const float* sa = reinterpret_cast<const float*>(fake(6));
  const float* sb = reinterpret_cast<const float*>(fake(7));
  const auto tensor = Fp8Scales::per_tensor(sa, sb), block = Fp8Scales::blockwise(sa, sb);
  auto err = [&](std::int64_t m, std::int64_t n, std::int64_t k, const Fp8Scales& sc,
                 const Epilogue& e = Epilogue::none(), std::int64_t ldc = 0) -> std::string {
    try {
      aipe::kernels::check_gemm(a(m, k), b(n, k), aipe::kernels::matrix(fake(3), m, n, ldc ? ldc : n), sc, e);
    } catch (const std::invalid_argument& ex) {
      return ex.what();
    }
    return "";
  };
  EXPECT_EQ(err(8191, 4097, 2064, tensor), "");
  EXPECT_EQ(err(37, 12289, 4096, block), "");
  EXPECT_NE(err(64, 64, 200, tensor).find("A's row pitch (ld = 200 E4M3 = 200 bytes)"), std::string::npos)
      << err(64, 64, 200, tensor);
  EXPECT_NE(err(64, 64, 200, tensor).find("K % 16 == 0"), std::string::npos);
  EXPECT_NE(err(64, 64, 208, block).find("block scales need K % 128 == 0, got K = 208"), std::string::npos);
  EXPECT_NE(err(64, 64, 256, tensor, Epilogue::bias_gelu(fake(4))).find("no fused epilogue"), std::string::npos);
  EXPECT_NE(err(64, 64, 256, tensor, Epilogue::none(), 72).find("writes C packed"), std::string::npos);
  EXPECT_NE(err(64, 64, 256, Fp8Scales::per_tensor(nullptr, sb)).find("scales of A and B"), std::string::npos);
}

// H100 / H200: 132 SMs, 66 resident clusters of two.
const DeviceSlots kH200{132, 66};

using aipe::kernels::GemmOptions;
using aipe::kernels::Schedule;
constexpr TileConfig kCoop256{.bm = 128, .bn = 256, .cluster_m = 2};
constexpr TileConfig kCoop128{.bm = 128, .bn = 128, .cluster_m = 2};
constexpr TileConfig kPing256{.bm = 64, .bn = 256, .cluster_m = 2, .schedule = Schedule::pingpong};

TEST(GemmTileChoice, WavesRoundUp) {
  const TileConfig t = kCoop256;
  // At K = 8192 (128 steps) a cooperative tile takes its 128 steps plus the exposed epilogue.
  const double unit = (128 + aipe::kernels::kCooperativeEpilogueSteps) / 128;
  // 66 units of 2 x 128 rows by 256 columns: exactly one wave; one more unit costs a second wave.
  EXPECT_DOUBLE_EQ(aipe::kernels::estimated_cost(2 * 128 * 66, 256, 8192, t, kH200), 1.0 * unit);
  EXPECT_DOUBLE_EQ(aipe::kernels::estimated_cost(2 * 128 * 66 + 1, 256, 8192, t, kH200), 2.0 * unit);
  // An odd tile row count leaves the last cluster row's second CTA idle, but its unit still takes a slot.
  // Three tile rows make two cluster rows: 2 x 33 units are one wave, 2 x 34 two.
  EXPECT_DOUBLE_EQ(aipe::kernels::estimated_cost(3 * 128, 256 * 33, 8192, t, kH200), 1.0 * unit);
  EXPECT_DOUBLE_EQ(aipe::kernels::estimated_cost(3 * 128, 256 * 34, 8192, t, kH200), 2.0 * unit);
  // A configuration that does not fit is never chosen.
  EXPECT_EQ(aipe::kernels::estimated_cost(8192, 8192, 8192, t, DeviceSlots{132, 0}),
            std::numeric_limits<double>::infinity());
  EXPECT_EQ(aipe::kernels::choose_tile(8192, 8192, 8192, DeviceSlots{132, 0}).cluster_m, 1);
  EXPECT_EQ(aipe::kernels::choose_tile(8192, 8192, 1024, DeviceSlots{132, 0}).cluster_m, 1);
}

TEST(GemmTileChoice, EpilogueIsExposedPerCooperativeTileAndHiddenByPingPong) {
  const TileConfig pp1{.bm = 64, .bn = 256, .cluster_m = 1, .schedule = Schedule::pingpong};
  for (std::int64_t k : {8, 64, 1000, 1024, 8192}) {
    EXPECT_EQ(aipe::kernels::exposed_epilogue_steps(k, kCoop256), aipe::kernels::kCooperativeEpilogueSteps) << k;
    EXPECT_EQ(aipe::kernels::exposed_epilogue_steps(k, kCoop128), aipe::kernels::kCooperativeEpilogueSteps) << k;
  }
  // Ping-pong: the epilogue runs under the other warpgroup's main loop, exposed only where that loop is shorter.
  EXPECT_EQ(aipe::kernels::exposed_epilogue_steps(64, pp1), aipe::kernels::kCooperativeEpilogueSteps - 1);
  EXPECT_EQ(aipe::kernels::exposed_epilogue_steps(1024, pp1), 0.0);
  EXPECT_EQ(aipe::kernels::exposed_epilogue_steps(1024, kPing256), 0.0);
  // Cost at K = 1024 (16 steps): a 64 x 256 ping-pong unit is half a cooperative one's area at 0.97 throughput.
  EXPECT_DOUBLE_EQ(aipe::kernels::estimated_cost(2 * 64 * 66, 256, 1024, kPing256, kH200),
                   0.5 / aipe::kernels::tile_throughput(kPing256));
  EXPECT_DOUBLE_EQ(aipe::kernels::estimated_cost(2 * 128 * 66, 256, 1024, kCoop256, kH200),
                   (16 + aipe::kernels::kCooperativeEpilogueSteps) / 16);
}

TEST(GemmTileChoice, LargeSquareShapesAtLongKTakeTheLargeCooperativeTileInClusters) {
  // 8192 x 8192 x 8192: 1024 units in 15.5 waves of 66 clusters, the epilogue 2 steps in 130; 128 x 128 tiles
  // would take 31.03 waves of half units, 64 x 256 ping-pong tiles 31.03 waves at 0.97 of the throughput.
  EXPECT_EQ(aipe::kernels::choose_tile(8192, 8192, 8192, kH200), kCoop256);
  EXPECT_EQ(aipe::kernels::choose_tile(8192, 4096, 8192, kH200), kCoop256);
}

TEST(GemmTileChoice, ShortKTakesThePingPongSchedule) {
  // ch09's default, 8192 x 8192 x 1024: 16 K steps a tile, so the cooperative tile's exposed epilogue costs
  // 2 / 16 of it (16 waves x 18 / 16 = 18), against 32 waves of half-size ping-pong tiles (32 x 0.5 / 0.97 = 16.5).
  EXPECT_EQ(aipe::kernels::choose_tile(8192, 8192, 1024, kH200), kPing256);
  EXPECT_EQ(aipe::kernels::choose_tile(8192, 8192, 2048, kH200), kPing256);
  // Asked for one schedule, the tile is chosen among its configurations.
  EXPECT_EQ(aipe::kernels::choose_tile(8192, 8192, 1024, kH200, Schedule::cooperative), kCoop256);
  EXPECT_EQ(aipe::kernels::choose_tile(8192, 8192, 8192, kH200, Schedule::pingpong), kPing256);
  // ch09's awkward shape (3001 tokens x 4097 outputs x 1000): ping-pong too, in 128 x 192 tiles: 12 x 22 = 264
  // units are exactly 4 waves of 3/4 units (3.26), where 64 x 256 tiles make 24 x 17 = 408 units, 7 waves of half
  // units (3.61), and 128 x 128 cooperative 6 waves at 0.85 with the epilogue exposed (3.97).
  EXPECT_EQ(aipe::kernels::choose_tile(3001, 4097, 1000, kH200),
            (TileConfig{.bm = 128, .bn = 192, .cluster_m = 2, .schedule = Schedule::pingpong}));
  EXPECT_EQ(aipe::kernels::choose_tile(3001, 4097, 1000, kH200, Schedule::cooperative), kCoop128);
}

TEST(GemmTileChoice, AwkwardShapesTakeTheTileThatQuantizesBetter) {
  // Among the cooperative tiles, at long K: ch09's awkward shape, 3001 tokens x 4097 outputs: with 128 x 256
  // tiles 12 x 17 = 204 units make 3.09 waves (4 to pay for); with 128 x 128, 12 x 33 = 396 units are exactly 6
  // waves of half the work.
  EXPECT_EQ(aipe::kernels::choose_tile(3001, 4097, 8192, kH200, Schedule::cooperative), kCoop128);
  // A decode-like M = 37: one tile row, so a cluster's second CTA would have nothing to do, and 97 tiles of
  // 128 columns fill 132 SMs better than 49 of 256 (both schedules: a 64-row ping-pong tile is one row too).
  EXPECT_EQ(aipe::kernels::choose_tile(37, 12289, 4104, kH200, Schedule::cooperative),
            (TileConfig{.bm = 128, .bn = 128, .cluster_m = 1}));
  EXPECT_EQ(aipe::kernels::choose_tile(37, 12289, 4104, kH200).cluster_m, 1);
  // Tiny problems: one wave whatever the tile; the smaller tile finishes it soonest, and with one tile row a
  // cluster would leave its second CTA without a tile.
  EXPECT_EQ(aipe::kernels::choose_tile(1, 1, 8192, kH200, Schedule::cooperative),
            (TileConfig{.bm = 128, .bn = 128, .cluster_m = 1}));
  EXPECT_EQ(aipe::kernels::estimated_cost(128, 8192, 1024, kCoop256, kH200), std::numeric_limits<double>::infinity());
  EXPECT_LT(aipe::kernels::estimated_cost(129, 8192, 1024, kCoop256, kH200), std::numeric_limits<double>::infinity());
  EXPECT_EQ(aipe::kernels::estimated_cost(64, 8192, 1024, kPing256, kH200), std::numeric_limits<double>::infinity());
  EXPECT_LT(aipe::kernels::estimated_cost(65, 8192, 1024, kPing256, kH200), std::numeric_limits<double>::infinity());
}

TEST(GemmTileChoice, ChoiceIsTheLeastEstimatedCost) {
  for (std::int64_t k : {8, 64, 136, 1000, 1024, 4096, 8192})
    for (std::int64_t m : {1, 37, 129, 1000, 3001, 4097, 8191, 16384})
      for (std::int64_t n : {1, 257, 1480, 4097, 8192, 12289}) {
        const TileConfig best = aipe::kernels::choose_tile(m, n, k, kH200);
        const double c = aipe::kernels::estimated_cost(m, n, k, best, kH200);
        for (const TileConfig& t : aipe::kernels::kTileConfigs)
          EXPECT_LE(c, aipe::kernels::estimated_cost(m, n, k, t, kH200))
              << m << " x " << n << " x " << k << ": " << to_string(t);
      }
}

TEST(GemmTileChoice, FixedConfigurationsAreCheckedAndNamed) {
  aipe::kernels::GemmShape s;
  s.m = 8192;
  s.n = 8192;
  s.k = 1024;
  EXPECT_EQ(aipe::kernels::select_tile(s, {}, kH200), kPing256);
  EXPECT_EQ(aipe::kernels::select_tile(s, {.schedule = Schedule::cooperative}, kH200), kCoop256);
  EXPECT_EQ(aipe::kernels::select_tile(s, {.tile = kCoop128}, kH200), kCoop128);
  // Every listed configuration is a kernel; a tile of no kernel is refused, naming it and the ones there are.
  for (const TileConfig& t : aipe::kernels::kTileConfigs) EXPECT_TRUE(aipe::kernels::is_kernel_config(t)) << to_string(t);
  auto error = [&](const GemmOptions& o, const DeviceSlots& d) -> std::string {
    try {
      aipe::kernels::select_tile(s, o, d);
    } catch (const std::invalid_argument& ex) {
      return ex.what();
    }
    return "";
  };
  const std::string e = error({.tile = TileConfig{.bm = 64, .bn = 128, .cluster_m = 2}}, kH200);
  EXPECT_NE(e.find("no kernel for the tile configuration 64x128, clusters of 2"), std::string::npos) << e;
  EXPECT_NE(e.find("64x256, clusters of 2, ping-pong"), std::string::npos) << e;
  EXPECT_NE(error({.schedule = Schedule::cooperative, .tile = kPing256}, kH200).find("cooperative schedule"),
            std::string::npos);
  EXPECT_NE(error({.tile = kCoop256}, DeviceSlots{132, 0}).find("does not fit"), std::string::npos);
  EXPECT_EQ(to_string(kPing256), "64x256, clusters of 2, ping-pong");
}

// The ping-pong kernel applies the whole epilogue on the FP32 accumulators: no activation is deferred there.
TEST(GemmTileChoice, OnlyTheCooperativeKernelDefersTheActivation) {
  aipe::kernels::GemmShape s;
  s.m = s.n = s.k = 1024;
  s.tma_store = true;
  const Epilogue e = Epilogue::bias_gelu(fake(4));
  EXPECT_TRUE(aipe::kernels::activation_overlapped(s, e, kCoop256));
  EXPECT_FALSE(aipe::kernels::activation_overlapped(s, e, kPing256));
  EXPECT_FALSE(aipe::kernels::activation_overlapped(s, e.with_activation_timing(aipe::kernels::ActivationTiming::serial), kCoop256));
}


// ---------------------------------------------------------------------------------------------------------------
// The skinny (swap-AB) kernel: which shapes gemm() sends to it, and its token tile and K split.
using aipe::kernels::SkinnyConfig;
using aipe::kernels::SkinnyOptions;
using aipe::kernels::SkinnySplit;

TEST(GemmSkinnyChoice, TokenTilesArePowersOfTwoFrom8To256) {
  EXPECT_EQ(aipe::kernels::skinny_token_tile(1), 8);
  EXPECT_EQ(aipe::kernels::skinny_token_tile(8), 8);
  EXPECT_EQ(aipe::kernels::skinny_token_tile(9), 16);
  EXPECT_EQ(aipe::kernels::skinny_token_tile(17), 32);
  EXPECT_EQ(aipe::kernels::skinny_token_tile(64), 64);
  EXPECT_EQ(aipe::kernels::skinny_token_tile(100), 128);
  EXPECT_EQ(aipe::kernels::skinny_token_tile(256), 256);
  // Multicast gives each CTA of a pair half of the tile: at least 8 rows, so a tile of at least 16.
  EXPECT_EQ(aipe::kernels::choose_skinny(3, 4096, 4096, 132, {.multicast = true}).token_tile, 16);
}

TEST(GemmSkinnyChoice, DispatchTakesFewTokensWithAlphaAndBiasOnly) {
  const bf16* bias = fake(4);
  for (std::int64_t m : {1, 8, 17, 64}) {
    EXPECT_TRUE(aipe::kernels::prefers_skinny(m, Epilogue::none())) << m;
    EXPECT_TRUE(aipe::kernels::prefers_skinny(m, Epilogue::bias(bias).with_scale(0.5f))) << m;
    EXPECT_FALSE(aipe::kernels::prefers_skinny(m, Epilogue::bias_gelu(bias))) << m;
    EXPECT_FALSE(aipe::kernels::prefers_skinny(m, Epilogue::silu())) << m;
    const auto r = aipe::kernels::matrix<const bf16>(fake(5), m, 4096);
    EXPECT_FALSE(aipe::kernels::prefers_skinny(m, Epilogue::residual(r))) << m;
  }
  for (std::int64_t m : {65, 100, 256, 4096}) EXPECT_FALSE(aipe::kernels::prefers_skinny(m, Epilogue::none())) << m;
}

TEST(GemmSkinnyChoice, DispatchSplitsKOnlyWhereItGivesThreeSplitsOrMore) {
  using aipe::kernels::dispatch_skinny_options;
  EXPECT_EQ(dispatch_skinny_options(4096, 132).split, SkinnySplit::reduce);   // 32 CTAs: 4 splits
  EXPECT_EQ(dispatch_skinny_options(1000, 132).split, SkinnySplit::reduce);   // 8 CTAs
  EXPECT_EQ(dispatch_skinny_options(5632, 132).split, SkinnySplit::reduce);   // 44 CTAs: 3 splits
  EXPECT_EQ(dispatch_skinny_options(5633, 132).split, SkinnySplit::none);     // 45 CTAs: 2
  EXPECT_EQ(dispatch_skinny_options(8192, 132).split, SkinnySplit::none);     // 64 CTAs: measured, no split wins
  EXPECT_EQ(dispatch_skinny_options(128256, 132).split, SkinnySplit::none);   // the LM head: 1002 CTAs
  EXPECT_FALSE(dispatch_skinny_options(4096, 132).multicast);
}

TEST(GemmSkinnyChoice, KIsSplitUntilTheGridCoversTheSms) {
  // N = 4096: 32 CTAs of 128 rows; 132 / 32 = 4 splits of 16 K steps at K = 4096: 128 CTAs in one wave.
  const SkinnyConfig c = aipe::kernels::choose_skinny(8, 4096, 4096, 132);
  EXPECT_EQ(c.token_tile, 8);
  EXPECT_EQ(c.splits, 4);
  EXPECT_EQ(c.kt_per_split, 16);
  EXPECT_EQ(c.grid_ctas, 128);
  EXPECT_FALSE(c.dsmem);
  // N = 1000: 8 CTAs; K = 1416: 23 K steps of 64 (the last one 8 deep): min(132 / 8, 23 / 4) = 5 splits of 5
  // steps, the last one 3.
  const SkinnyConfig odd = aipe::kernels::choose_skinny(3, 1000, 1416, 132);
  EXPECT_EQ(odd.splits, 5);
  EXPECT_EQ(odd.kt_per_split, 5);
  // The LM head at M = 1: 1002 CTAs along N are 7.6 waves already: no split, no partials.
  const SkinnyConfig head = aipe::kernels::choose_skinny(1, 128256, 4096, 132);
  EXPECT_EQ(head.splits, 1);
  EXPECT_EQ(head.grid_ctas, 1002);
  // No split leaves a split empty, and every grid of a split shape fits in one wave.
  for (std::int64_t n : {1, 1000, 4096, 4099, 8192, 14336, 128256})
    for (std::int64_t k : {8, 64, 1416, 4096, 4104, 14336})
      for (bool mc : {false, true}) {
        const SkinnyConfig s = aipe::kernels::choose_skinny(17, n, k, 132, {.multicast = mc});
        const std::int64_t ktiles = (k + 63) / 64;
        EXPECT_LT(std::int64_t(s.splits - 1) * s.kt_per_split, ktiles) << n << " x " << k;
        EXPECT_GE(std::int64_t(s.splits) * s.kt_per_split, ktiles) << n << " x " << k;
        if (s.splits > 1) EXPECT_LE(s.grid_ctas, 132) << n << " x " << k;
        // The split-K workspace (one per device and stream) holds splits x M x N floats <= CTAs x 128 x 256.
        if (s.splits > 1) EXPECT_LE(std::int64_t(s.splits) * n, 132 * 128) << n << " x " << k;
      }
}

TEST(GemmSkinnyChoice, SwitchesSelectTheRungs) {
  const SkinnyConfig none = aipe::kernels::choose_skinny(64, 8192, 8192, 132, {.split = SkinnySplit::none});
  EXPECT_EQ(none.splits, 1);
  EXPECT_EQ(none.kt_per_split, 128);
  EXPECT_EQ(none.grid_ctas, 64);
  const SkinnyConfig ds = aipe::kernels::choose_skinny(64, 8192, 8192, 132, {.split = SkinnySplit::dsmem});
  EXPECT_TRUE(ds.dsmem);
  EXPECT_EQ(ds.splits, 2);
  EXPECT_EQ(ds.kt_per_split, 64);
  EXPECT_EQ(ds.grid_ctas, 128);
  // Multicast pairs CTAs along N: 1000 rows are 8 CTAs, 4099 rows 33, rounded up to 34.
  const SkinnyConfig mc = aipe::kernels::choose_skinny(256, 4099, 4096, 132, {.multicast = true});
  EXPECT_TRUE(mc.multicast);
  EXPECT_EQ(mc.splits, 3);  // 132 / 34
  EXPECT_EQ(mc.grid_ctas, 34 * 3);
}

TEST(GemmSkinnyChoice, BadTokenCountsAndSwitchesAreClearErrors) {
  auto msg = [](std::int64_t m, SkinnyOptions o) {
    try {
      aipe::kernels::choose_skinny(m, 4096, 4096, 132, o);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(msg(257, {}).find("M = 1..256"), std::string::npos) << msg(257, {});
  EXPECT_NE(msg(0, {}).find("M = 0"), std::string::npos);
  EXPECT_NE(msg(8, {.split = SkinnySplit::dsmem, .multicast = true}).find("not both"), std::string::npos);
  EXPECT_EQ(msg(256, {}), "");
}

}  // namespace
