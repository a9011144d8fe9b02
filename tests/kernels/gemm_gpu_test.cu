// aipe::kernels::gemm on the GPU at shapes that are not tile multiples, for every epilogue, against a float
// reference: a float64 CPU GEMM for small shapes, cuBLAS with an FP32 output for large ones, the epilogue in float64
// on the host. C is poisoned (NaN) before every call, so an element the kernel never writes fails; NaN never passes.
// Both store paths run: TMA stores (N % 8 == 0, or a padded 16-byte pitch) and guarded stores from registers
// (odd N, or an odd pitch). With TMA stores the activation runs as each tile leaves (ActivationTiming::overlapped)
// and, for bias_gelu_serial and scale_silu_serial, on the accumulators after the last wgmma: both are checked.
// Every CTA's last tile leaves after its loop; the shapes with fewer tiles than CTAs give each CTA a single tile.
// Both schedules run every shape and epilogue: cooperative (both consumer warpgroups on one tile) and ping-pong
// (each warpgroup its own tile, the epilogue under the other's main loop; a CTA with a single tile leaves its
// second warpgroup idle, one with an odd count ends on the first), each with the tile chosen among its
// configurations; GemmPingPong runs every ping-pong configuration by name.
// Skipped, with the reason, without a Hopper GPU and an sm_90a build.
#include <cuda_bf16.h>
#include <gtest/gtest.h>

#include "hopper_gpu.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/cublas.hpp"
#include "aipe/device.hpp"
#include "aipe/kernels/gemm.hpp"
#include "aipe/random.hpp"
#include "aipe/verify.hpp"

namespace {

namespace k = aipe::kernels;
using k::bf16;

std::optional<std::string> no_hopper() { return aipe::test::no_hopper("kernels::gemm"); }

double bf16_value(std::uint64_t seed, std::size_t i) {
  return double(__bfloat162float(__float2bfloat16_rn(aipe::uniform_at(seed, i, -1.f, 1.f))));
}

double act_ref(k::Activation a, double t) {
  switch (a) {
    case k::Activation::gelu_tanh: return 0.5 * t * (1 + std::tanh(0.7978845608028654 * (t + 0.044715 * t * t * t)));
    case k::Activation::silu: return t / (1 + std::exp(-t));
    default: return t;
  }
}

struct Shape {
  std::int64_t m, n, k;
  std::int64_t lda = 0, ldb = 0, ldc = 0;  // 0: packed
};

// One problem: A, B, a bias and a residual on the device (uniform [-1, 1) BF16), and X = A B^T in double on the host.
class Problem {
 public:
  explicit Problem(const Shape& s, std::uint64_t seed) : s_(s) {
    lda_ = s.lda ? s.lda : s.k;
    ldb_ = s.ldb ? s.ldb : s.k;
    ldc_ = s.ldc ? s.ldc : s.n;
    sa_ = aipe::sub_seed(seed, 1);
    sb_ = aipe::sub_seed(seed, 2);
    sbias_ = aipe::sub_seed(seed, 3);
    sr_ = aipe::sub_seed(seed, 4);
    a_ = aipe::DeviceBuffer<bf16>(std::size_t(s.m * lda_));
    b_ = aipe::DeviceBuffer<bf16>(std::size_t(s.n * ldb_));
    c_ = aipe::DeviceBuffer<bf16>(std::size_t(s.m * ldc_));
    r_ = aipe::DeviceBuffer<bf16>(std::size_t(s.m * s.n));
    bias_ = aipe::DeviceBuffer<bf16>(std::size_t(s.n));
    aipe::fill_uniform(a_.get(), a_.size(), sa_, -1.f, 1.f, nullptr);
    aipe::fill_uniform(b_.get(), b_.size(), sb_, -1.f, 1.f, nullptr);
    aipe::fill_uniform(r_.get(), r_.size(), sr_, -1.f, 1.f, nullptr);
    aipe::fill_uniform(bias_.get(), bias_.size(), sbias_, -1.f, 1.f, nullptr);
    AIPE_CUDA(cudaDeviceSynchronize());
    x_.assign(std::size_t(s.m * s.n), 0.0);
    if (double(s.m) * s.n * s.k <= double(1 << 26)) {
      std::vector<double> A(std::size_t(s.m * s.k)), B(std::size_t(s.n * s.k));
      for (std::int64_t i = 0; i < s.m; ++i)
        for (std::int64_t p = 0; p < s.k; ++p) A[i * s.k + p] = bf16_value(sa_, std::size_t(i * lda_ + p));
      for (std::int64_t j = 0; j < s.n; ++j)
        for (std::int64_t p = 0; p < s.k; ++p) B[j * s.k + p] = bf16_value(sb_, std::size_t(j * ldb_ + p));
      for (std::int64_t i = 0; i < s.m; ++i)
        for (std::int64_t j = 0; j < s.n; ++j) {
          double acc = 0;
          for (std::int64_t p = 0; p < s.k; ++p) acc += A[i * s.k + p] * B[j * s.k + p];
          x_[i * s.n + j] = acc;
        }
      note_ = "CPU float64 reference";
    } else {
      // Row-major C = A B^T is the column-major C^T = op(B) A^T with (CUBLAS_OP_T, CUBLAS_OP_N).
      aipe::DeviceBuffer<float> ref(std::size_t(s.m * s.n));
      auto h = aipe::CublasHandle::create();
      const float one = 1.f, zero = 0.f;
      AIPE_CUBLAS(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, int(s.n), int(s.m), int(s.k), &one, b_.get(), CUDA_R_16BF,
                               int(ldb_), a_.get(), CUDA_R_16BF, int(lda_), &zero, ref.get(), CUDA_R_32F, int(s.n),
                               CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      const std::vector<float> hr = aipe::to_host(ref, nullptr);
      for (std::size_t i = 0; i < hr.size(); ++i) x_[i] = hr[i];
      note_ = "cuBLAS FP32-output reference";
    }
  }

  k::Epilogue with_operands(const std::string& name) const {
    const bf16* b = bias_.get();
    const auto r = k::matrix<const bf16>(r_.get(), s_.m, s_.n);
    if (name == "none") return k::Epilogue::none();
    if (name == "scale") return k::Epilogue::scale(0.375f);
    if (name == "bias") return k::Epilogue::bias(b);
    if (name == "gelu") return k::Epilogue::gelu();
    if (name == "silu") return k::Epilogue::silu();
    if (name == "bias_gelu") return k::Epilogue::bias_gelu(b);
    if (name == "bias_silu") return k::Epilogue::bias_silu(b);
    if (name == "residual") return k::Epilogue::residual(r, -0.5f);
    if (name == "scale_bias_gelu_residual") return k::Epilogue::bias_gelu(b).with_scale(2.f).with_residual(r);
    // The previous path, kept selectable: the whole epilogue on the FP32 accumulators after the last wgmma.
    if (name == "bias_gelu_serial") return k::Epilogue::bias_gelu(b).with_activation_timing(k::ActivationTiming::serial);
    if (name == "scale_silu_serial") return k::Epilogue::silu().with_scale(0.5f).with_activation_timing(k::ActivationTiming::serial);
    throw std::logic_error("unknown epilogue " + name);
  }

  // Runs the GEMM into a poisoned C and compares every element (and no element of C's padding is written).
  aipe::VerifyResult run(const k::Epilogue& e, const k::GemmOptions& o = {}) {
    AIPE_CUDA(cudaMemset(c_.get(), 0xFF, c_.bytes()));  // BF16 0xFFFF is a NaN
    const auto a = k::matrix<const bf16>(a_.get(), s_.m, s_.k, lda_);
    const auto b = k::matrix<const bf16>(b_.get(), s_.n, s_.k, ldb_);
    const auto c = k::matrix(c_.get(), s_.m, s_.n, ldc_);
    if (skinny_) k::gemm_skinny(a, b, c, e, *skinny_, nullptr);
    else k::gemm(a, b, c, e, o, nullptr);
    AIPE_CUDA(cudaDeviceSynchronize());
    const std::vector<bf16> out = aipe::to_host(c_, nullptr);
    for (std::int64_t i = 0; i < s_.m && ldc_ > s_.n; ++i)
      for (std::int64_t j = s_.n; j < ldc_; ++j)
        if (!std::isnan(__bfloat162float(out[std::size_t(i * ldc_ + j)]))) {
          aipe::VerifyResult bad;
          bad.ok = false;
          bad.note = "C's padding was written at row " + std::to_string(i) + ", column " + std::to_string(j);
          return bad;
        }
    // Reference epilogue in float64 on the host, in the order gemm.hpp states.
    auto ref = [&](std::size_t idx) {
      const std::int64_t i = std::int64_t(idx) / s_.n, j = std::int64_t(idx) % s_.n;
      double v = double(e.alpha()) * x_[idx];
      if (e.has_bias()) v += bf16_value(sbias_, std::size_t(j));
      v = act_ref(e.activation(), v);
      if (e.has_residual()) v += double(e.beta()) * bf16_value(sr_, std::size_t(i * s_.n + j));
      return v;
    };
    // BF16 output: 2^-8 relative rounding. The absolute term is one BF16 ulp of a typical element, the RMS of
    // alpha A B^T (sqrt(K)/3 for inputs uniform in [-1, 1]) plus the bias and residual (|values| < 1).
    const double u = std::ldexp(1.0, -8);
    aipe::Tolerance tol;
    tol.norm_rel = u;
    tol.rel = 2 * u;
    tol.abs = 2 * u * (std::abs(e.alpha()) * std::sqrt(double(s_.k)) / 3.0 + 1.0 + std::abs(e.beta()));
    auto r = aipe::compare(
        std::size_t(s_.m * s_.n),
        [&](std::size_t idx) {
          return double(__bfloat162float(out[std::size_t(std::int64_t(idx) / s_.n * ldc_ + std::int64_t(idx) % s_.n)]));
        },
        ref, tol);
    r.note = note_;
    return r;
  }

  // Runs the skinny kernel with these switches (gemm_skinny) instead of gemm(); nullopt: gemm().
  void use_skinny(std::optional<k::SkinnyOptions> o) { skinny_ = o; }

  k::GemmPlan plan(const k::Epilogue& e = k::Epilogue::none(), const k::GemmOptions& o = {}) const {
    return k::plan_gemm(k::matrix<const bf16>(a_.get(), s_.m, s_.k, lda_),
                        k::matrix<const bf16>(b_.get(), s_.n, s_.k, ldb_), k::matrix(c_.get(), s_.m, s_.n, ldc_), e, o);
  }

 private:
  Shape s_;
  std::int64_t lda_ = 0, ldb_ = 0, ldc_ = 0;
  std::uint64_t sa_ = 0, sb_ = 0, sbias_ = 0, sr_ = 0;
  aipe::DeviceBuffer<bf16> a_, b_, c_, r_, bias_;
  std::vector<double> x_;
  std::string note_;
  std::optional<k::SkinnyOptions> skinny_;
};

const char* const kEpilogues[] = {"none",      "scale",     "bias",     "gelu",
                                  "silu",      "bias_gelu", "bias_silu", "residual",
                                  "scale_bias_gelu_residual", "bias_gelu_serial", "scale_silu_serial"};

class GemmShapes : public ::testing::TestWithParam<Shape> {};

std::string shape_name(const ::testing::TestParamInfo<Shape>& i) {
  const Shape& s = i.param;
  std::string n = std::to_string(s.m) + "x" + std::to_string(s.n) + "x" + std::to_string(s.k);
  if (s.lda) n += "_lda" + std::to_string(s.lda);
  if (s.ldb) n += "_ldb" + std::to_string(s.ldb);
  if (s.ldc) n += "_ldc" + std::to_string(s.ldc);
  return n;
}

}  // namespace

TEST_P(GemmShapes, EveryEpilogueMatchesTheReference) {
  if (auto why = no_hopper()) GTEST_SKIP() << *why;
  const Shape s = GetParam();
  Problem p(s, 0x5EED ^ std::uint64_t(s.m * 31 + s.n * 7 + s.k));
  const k::GemmPlan chosen = p.plan();
  std::cout << "[ PLAN ] " << shape_name(::testing::TestParamInfo<Shape>(s, 0)) << ": chosen "
            << (chosen.kernel == k::GemmKernel::skinny ? std::string("skinny kernel (none epilogue)")
                                                       : k::to_string(chosen.tile))
            << "\n";
  for (const k::Schedule schedule : {k::Schedule::cooperative, k::Schedule::pingpong}) {
    const k::GemmOptions o{.schedule = schedule};
    const k::GemmPlan plan = p.plan(k::Epilogue::none(), o);
    EXPECT_EQ(plan.tile.schedule, schedule);
    std::cout << "[ PLAN ] " << k::to_string(schedule) << ": " << k::to_string(plan.tile) << ", " << plan.grid_ctas
              << " CTAs, " << (plan.tma_store ? "TMA stores" : "register stores") << "\n";
    for (const char* name : kEpilogues) {
      SCOPED_TRACE(std::string(name) + ", " + k::to_string(plan.tile));
      const k::Epilogue e = p.with_operands(name);
      // The cooperative kernel runs the activation of a TMA-stored tile without residual as the tile leaves
      // (unless asked for serial): the tests below check that path whenever the shape takes TMA stores. The
      // ping-pong kernel applies every epilogue on the FP32 accumulators.
      const bool overlapped = schedule == k::Schedule::cooperative && plan.tma_store &&
                              e.activation() != k::Activation::none && !e.has_residual() &&
                              e.activation_timing() == k::ActivationTiming::overlapped;
      EXPECT_EQ(p.plan(e, o).activation_overlapped, overlapped);
      const aipe::VerifyResult r = p.run(e, o);
      EXPECT_TRUE(r.ok) << r.message() << " (" << r.note << ")";
      EXPECT_EQ(r.non_finite, 0u);
    }
  }
}

// The shapes of issue 15 and the ones that reach each tile configuration and each store path.
INSTANTIATE_TEST_SUITE_P(
    Awkward, GemmShapes,
    ::testing::Values(Shape{8191, 4097, 2056},            // 128x256 in clusters; odd N: register stores
                      Shape{37, 12289, 4104},             // one tile row: 128x128 without clusters
                      Shape{4097, 3001, 1000},            // awkward in both, odd N
                      Shape{3001, 4097, 1000},            // ch09's awkward shape (tokens x out): 128x128 in clusters
                      Shape{3001, 4096, 1000},            // the same with TMA stores
                      Shape{1, 1, 8},                     // a single element, one K step of 8
                      Shape{129, 257, 64},                // one row and one column past a tile
                      Shape{1000, 1480, 520},             // N % 8 == 0: TMA stores, partial tiles in M, N and K
                      Shape{8192, 8192, 1024},            // ch09's default: whole tiles, TMA stores
                      Shape{300, 520, 1001, 1008, 1016, 0},  // K % 8 != 0 in padded rows; TMA stores
                      Shape{300, 512, 256, 0, 0, 520},    // padded C pitch, 16-byte aligned: TMA stores
                      Shape{300, 512, 256, 0, 0, 513},    // odd C pitch: register stores, scalar tails
                      // Fewer K steps than a tile has 64-column boxes, so some boxes of the parked tile leave with
                      // no K step over them: one K step and one tile per CTA; three K steps and 3 tiles per CTA.
                      Shape{200, 512, 64},
                      Shape{3000, 4096, 136}),
    shape_name);

// Every ping-pong configuration by name (64 x 256, 128 x 128 and 128 x 192 warpgroup tiles, with and without
// clusters; 128 x 192 stores three boxes a fragment, an odd count), at
// shapes whose M, N and K are not tile multiples, both store paths, and CTA tile counts odd and even.
class GemmPingPong : public ::testing::TestWithParam<Shape> {};

TEST_P(GemmPingPong, EveryConfigurationMatchesTheReference) {
  if (auto why = no_hopper()) GTEST_SKIP() << *why;
  const Shape s = GetParam();
  Problem p(s, 0xB1B0 ^ std::uint64_t(s.m * 31 + s.n * 7 + s.k));
  for (const k::TileConfig& t : k::kTileConfigs) {
    if (t.schedule != k::Schedule::pingpong) continue;
    const k::GemmOptions o{.tile = t};
    EXPECT_EQ(p.plan(k::Epilogue::none(), o).tile, t);
    for (const char* name : {"none", "bias_gelu", "scale_bias_gelu_residual", "bias_silu"}) {
      SCOPED_TRACE(std::string(name) + ", " + k::to_string(t));
      const aipe::VerifyResult r = p.run(p.with_operands(name), o);
      EXPECT_TRUE(r.ok) << r.message() << " (" << r.note << ")";
      EXPECT_EQ(r.non_finite, 0u);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Awkward, GemmPingPong,
                         ::testing::Values(Shape{3001, 4096, 1000},  // TMA stores, partial tiles in M and K
                                           Shape{4097, 3001, 1000},  // odd N: register stores
                                           Shape{8191, 4097, 2056},  // several tiles per CTA, odd and even counts
                                           Shape{65, 300, 72},       // a single tile per CTA: one consumer idle
                                           Shape{300, 520, 1001, 1008, 1016, 0}),  // padded K rows
                         shape_name);

// ---------------------------------------------------------------------------------------------
// The skinny (swap-AB) kernel: decode shapes, every switch, bias on and off
// ---------------------------------------------------------------------------------------------
namespace {

class GemmSkinnyShapes : public ::testing::TestWithParam<Shape> {};

// Token counts on both sides of every token tile (8, 16, 32, 64, 128, 256) and of gemm()'s dispatch limit (64);
// N a multiple of 128 rows of W, and not (1000, 4099: a last CTA with 104 and 3 rows, and with multicast an
// unpaired CTA past N); K a multiple of 64 and not (1416: a last K step 8 deep; 4104: 8 deep and 65 steps).
std::vector<Shape> skinny_shapes() {
  std::vector<Shape> v;
  for (std::int64_t m : {1, 3, 8, 17, 64, 100, 256})
    for (std::int64_t n : {1000, 4096, 4099})
      for (std::int64_t kk : {4096, 1416, 4104}) v.push_back({m, n, kk});
  v.push_back({1, 128256, 4096});          // the LM head of a 128K vocabulary at M = 1: 1002 CTAs, no split
  v.push_back({8, 1000, 1416, 0, 0, 1003});  // an odd C pitch (the skinny kernel stores from registers)
  v.push_back({3, 4096, 4104, 4112, 4112});  // padded rows of A and B
  return v;
}

}  // namespace

TEST_P(GemmSkinnyShapes, EverySwitchMatchesTheReference) {
  if (auto why = no_hopper()) GTEST_SKIP() << *why;
  const Shape s = GetParam();
  Problem p(s, 0x5C1 ^ std::uint64_t(s.m * 31 + s.n * 7 + s.k));
  // gemm()'s dispatch: the skinny kernel up to 64 tokens (with or without a bias), the square one with GELU.
  const k::GemmPlan plan = p.plan(p.with_operands("bias"));
  EXPECT_EQ(plan.kernel, s.m <= k::kSkinnyDispatchMaxM ? k::GemmKernel::skinny : k::GemmKernel::square);
  EXPECT_EQ(p.plan(p.with_operands("bias_gelu")).kernel, k::GemmKernel::square);
  // A schedule or tile fixed by the caller (GemmOptions) fixes the square kernel.
  EXPECT_EQ(p.plan(p.with_operands("bias"), {.schedule = k::Schedule::pingpong}).kernel, k::GemmKernel::square);
  if (plan.kernel == k::GemmKernel::skinny)
    std::cout << "[ PLAN ] " << shape_name(::testing::TestParamInfo<Shape>(s, 0)) << ": token tile "
              << plan.skinny.token_tile << ", " << plan.skinny.splits << " K splits, " << plan.grid_ctas << " CTAs\n";
  struct Switches {
    const char* name;
    std::optional<k::SkinnyOptions> o;
  };
  const Switches runs[] = {{"gemm() dispatch", std::nullopt},
                           {"split none", k::SkinnyOptions{.split = k::SkinnySplit::none}},
                           {"split reduce", k::SkinnyOptions{.split = k::SkinnySplit::reduce}},
                           {"split reduce + multicast", k::SkinnyOptions{.split = k::SkinnySplit::reduce, .multicast = true}},
                           {"split none + multicast", k::SkinnyOptions{.split = k::SkinnySplit::none, .multicast = true}},
                           {"split dsmem", k::SkinnyOptions{.split = k::SkinnySplit::dsmem}}};
  for (const Switches& sw : runs) {
    // The LM head's shape (1002 CTAs along N) is checked through gemm() and the two splits that apply to it.
    if (s.n > 100000 && sw.o && sw.o->multicast) continue;
    p.use_skinny(sw.o);
    for (const char* name : {"none", "bias", "scale"}) {
      SCOPED_TRACE(std::string(sw.name) + ", epilogue " + name);
      const aipe::VerifyResult r = p.run(p.with_operands(name));
      EXPECT_TRUE(r.ok) << r.message() << " (" << r.note << ")";
      EXPECT_EQ(r.non_finite, 0u);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Decode, GemmSkinnyShapes, ::testing::ValuesIn(skinny_shapes()), shape_name);

// What the skinny kernel cannot apply or hold is refused before any launch.
TEST(GemmSkinnyOnDevice, RefusesWhatItCannotApply) {
  if (auto why = no_hopper()) GTEST_SKIP() << *why;
  aipe::DeviceBuffer<bf16> a(257 * 64), b(64 * 64), c(257 * 64), bias(64);
  const auto w = k::matrix<const bf16>(b.get(), 64, 64);
  EXPECT_THROW(k::gemm_skinny(k::matrix<const bf16>(a.get(), 8, 64), w, k::matrix(c.get(), 8, 64),
                              k::Epilogue::bias_gelu(bias.get()), {}),
               std::invalid_argument);
  EXPECT_THROW(k::gemm_skinny(k::matrix<const bf16>(a.get(), 257, 64), w, k::matrix(c.get(), 257, 64),
                              k::Epilogue::none(), {}),
               std::invalid_argument);
  EXPECT_THROW(k::gemm_skinny(k::matrix<const bf16>(a.get(), 8, 64), w, k::matrix(c.get(), 8, 64), k::Epilogue::none(),
                              {.split = k::SkinnySplit::dsmem, .multicast = true}),
               std::invalid_argument);
  AIPE_CUDA(cudaDeviceSynchronize());
}

// A decode step is a CUDA graph: gemm()'s split-K path, captured (global mode) on a stream it has never seen, so
// that its workspace is allocated during the capture, replays to the same bits as the eager call.
TEST(GemmSkinnyOnDevice, SplitKInsideACapturedGraphMatchesTheEagerCall) {
  if (auto why = no_hopper()) GTEST_SKIP() << *why;
  const std::int64_t M = 8, N = 4096, K = 4104;
  aipe::DeviceBuffer<bf16> a{std::size_t(M * K)}, b{std::size_t(N * K)}, eager{std::size_t(M * N)},
      graphed{std::size_t(M * N)}, bias{std::size_t(N)};
  aipe::fill_uniform(a.get(), a.size(), 11, -1.f, 1.f, nullptr);
  aipe::fill_uniform(b.get(), b.size(), 12, -1.f, 1.f, nullptr);
  aipe::fill_uniform(bias.get(), bias.size(), 13, -1.f, 1.f, nullptr);
  AIPE_CUDA(cudaMemset(eager.get(), 0xFF, eager.bytes()));
  AIPE_CUDA(cudaMemset(graphed.get(), 0xFF, graphed.bytes()));
  const auto A = k::matrix<const bf16>(a.get(), M, K), B = k::matrix<const bf16>(b.get(), N, K);
  const k::Epilogue e = k::Epilogue::bias(bias.get());
  const k::GemmPlan plan = k::plan_gemm(A, B, k::matrix(eager.get(), M, N), e);
  ASSERT_EQ(plan.kernel, k::GemmKernel::skinny);
  ASSERT_GT(plan.skinny.splits, 1) << "the shape must take the split-K reduce";
  k::gemm(A, B, k::matrix(eager.get(), M, N), e, nullptr);
  AIPE_CUDA(cudaDeviceSynchronize());
  aipe::Stream stream;
  aipe::Graph g = aipe::Graph::capture(
      stream, [&](cudaStream_t s) { k::gemm(A, B, k::matrix(graphed.get(), M, N), e, s); },
      cudaStreamCaptureModeGlobal);
  aipe::GraphExec exec(g);
  exec.launch(stream);
  AIPE_CUDA(cudaStreamSynchronize(stream));
  const std::vector<bf16> x = aipe::to_host(eager, nullptr), y = aipe::to_host(graphed, nullptr);
  for (std::size_t i = 0; i < x.size(); ++i) {
    std::uint16_t bx, by;
    std::memcpy(&bx, &x[i], 2);
    std::memcpy(&by, &y[i], 2);
    ASSERT_FALSE(std::isnan(__bfloat162float(x[i]))) << "eager: element " << i << " (row " << i / N << ", column "
                                                     << i % N << ") was never written";
    ASSERT_EQ(bx, by) << "element " << i << " (row " << i / N << ", column " << i % N << "): eager "
                      << __bfloat162float(x[i]) << ", graph " << __bfloat162float(y[i]);
  }
}

// The launch itself rejects what TMA cannot read, before touching the GPU.
TEST(GemmOnDevice, BadOperandsThrowBeforeAnyLaunch) {
  if (auto why = no_hopper()) GTEST_SKIP() << *why;
  aipe::DeviceBuffer<bf16> a(64 * 12), b(64 * 12), c(64 * 64);
  EXPECT_THROW(k::gemm(k::matrix<const bf16>(a.get(), 64, 12), k::matrix<const bf16>(b.get(), 64, 12),
                       k::matrix(c.get(), 64, 64)),
               std::invalid_argument);
  EXPECT_THROW(k::gemm(k::matrix<const bf16>(a.get() + 1, 64, 8), k::matrix<const bf16>(b.get(), 64, 8),
                       k::matrix(c.get(), 64, 64)),
               std::invalid_argument);
  // A tile configuration no kernel has.
  EXPECT_THROW(k::gemm(k::matrix<const bf16>(a.get(), 64, 8), k::matrix<const bf16>(b.get(), 64, 8),
                       k::matrix(c.get(), 64, 64), k::Epilogue::none(), {.tile = k::TileConfig{.bm = 64, .bn = 64}}),
               std::invalid_argument);
  AIPE_CUDA(cudaDeviceSynchronize());
}

// ---------------------------------------------------------------------------------------------
// FP8 (E4M3) with per-tensor and 1 x 128 / 128 x 128 block scales
// ---------------------------------------------------------------------------------------------
namespace {

struct Fp8Case {
  std::int64_t m, n, k;
  bool block;
};

std::string fp8_name(const ::testing::TestParamInfo<Fp8Case>& i) {
  const Fp8Case& c = i.param;
  return std::to_string(c.m) + "x" + std::to_string(c.n) + "x" + std::to_string(c.k) + (c.block ? "_block" : "_tensor");
}

class GemmFp8Shapes : public ::testing::TestWithParam<Fp8Case> {};

}  // namespace

// Inputs as the ch10 FP8 ladders draw them: E4M3 codes over the whole range [-448, 448), scales of ~1/448. The
// reference multiplies the dequantized values (exact products of a code and a scale) in float64 on the CPU, or
// in FP32 with cuBLAS (pedantic math, no TF32) for large shapes. Tolerance as the ladders derive it
// (examples/ch10_tensor_cores/gemm_fp8_common.cuh): the absolute term relative to the output's RMS, 4% with the
// whole K accumulated in the tensor cores (per-tensor), 1% with per-128 promotion (block scales).
TEST_P(GemmFp8Shapes, MatchesTheDequantizedReference) {
  if (auto why = no_hopper()) GTEST_SKIP() << *why;
  const Fp8Case c = GetParam();
  const std::int64_t M = c.m, N = c.n, K = c.k, kb = (K + 127) / 128, nb = (N + 127) / 128;
  const std::uint64_t seed = 0xF8 ^ std::uint64_t(M * 131 + N * 17 + K);
  const auto s_a = aipe::sub_seed(seed, 1), s_b = aipe::sub_seed(seed, 2), s_sa = aipe::sub_seed(seed, 3),
             s_sb = aipe::sub_seed(seed, 4);
  aipe::DeviceBuffer<k::e4m3> a(std::size_t(M * K)), b(std::size_t(N * K));
  aipe::DeviceBuffer<bf16> cbuf(std::size_t(M * N));
  const std::size_t nsa = c.block ? std::size_t(kb * M) : 1, nsb = c.block ? std::size_t(nb * kb) : 1;
  aipe::DeviceBuffer<float> sa(nsa), sb(nsb);
  aipe::fill_uniform(a.get(), a.size(), s_a, -448.f, 448.f, nullptr);
  aipe::fill_uniform(b.get(), b.size(), s_b, -448.f, 448.f, nullptr);
  std::vector<float> hsa(nsa, 1.5f / 448), hsb(nsb, 0.75f / 448);
  if (c.block) {
    for (std::size_t i = 0; i < nsa; ++i) hsa[i] = aipe::uniform_at(s_sa, i, 0.25f / 448, 2.f / 448);
    for (std::size_t i = 0; i < nsb; ++i) hsb[i] = aipe::uniform_at(s_sb, i, 0.25f / 448, 2.f / 448);
  }
  AIPE_CUDA(cudaMemcpy(sa.get(), hsa.data(), nsa * 4, cudaMemcpyHostToDevice));
  AIPE_CUDA(cudaMemcpy(sb.get(), hsb.data(), nsb * 4, cudaMemcpyHostToDevice));
  // Dequantized operands, row-major, in FP32 (a code times its scale: one FP32 rounding).
  auto code = [](std::uint64_t s, std::size_t i) { return float(k::e4m3(aipe::uniform_at(s, i, -448.f, 448.f))); };
  std::vector<float> fa(std::size_t(M * K)), fb(std::size_t(N * K));
  for (std::int64_t i = 0; i < M; ++i)
    for (std::int64_t p = 0; p < K; ++p)
      fa[i * K + p] = code(s_a, std::size_t(i * K + p)) * (c.block ? hsa[std::size_t((p / 128) * M + i)] : hsa[0]);
  for (std::int64_t j = 0; j < N; ++j)
    for (std::int64_t p = 0; p < K; ++p)
      fb[j * K + p] = code(s_b, std::size_t(j * K + p)) * (c.block ? hsb[std::size_t((j / 128) * kb + p / 128)] : hsb[0]);
  std::vector<double> ref(std::size_t(M * N));
  if (double(M) * N * K <= double(1 << 26)) {
    for (std::int64_t i = 0; i < M; ++i)
      for (std::int64_t j = 0; j < N; ++j) {
        double acc = 0;
        for (std::int64_t p = 0; p < K; ++p) acc += double(fa[i * K + p]) * fb[j * K + p];
        ref[i * N + j] = acc;
      }
  } else {
    aipe::DeviceBuffer<float> da(fa.size()), db(fb.size()), dc(ref.size());
    AIPE_CUDA(cudaMemcpy(da.get(), fa.data(), fa.size() * 4, cudaMemcpyHostToDevice));
    AIPE_CUDA(cudaMemcpy(db.get(), fb.data(), fb.size() * 4, cudaMemcpyHostToDevice));
    auto h = aipe::CublasHandle::create();
    AIPE_CUBLAS(cublasSetMathMode(h, CUBLAS_PEDANTIC_MATH));
    const float one = 1.f, zero = 0.f;
    AIPE_CUBLAS(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, int(N), int(M), int(K), &one, db.get(), int(K), da.get(),
                            int(K), &zero, dc.get(), int(N)));
    const std::vector<float> hc = aipe::to_host(dc, nullptr);
    for (std::size_t i = 0; i < hc.size(); ++i) ref[i] = hc[i];
  }
  double sq = 0;
  for (double v : ref) sq += v * v;
  const double rms = std::sqrt(sq / double(ref.size()));

  AIPE_CUDA(cudaMemset(cbuf.get(), 0xFF, cbuf.bytes()));  // NaN
  const auto scales = c.block ? k::Fp8Scales::blockwise(sa.get(), sb.get()) : k::Fp8Scales::per_tensor(sa.get(), sb.get());
  k::gemm(k::matrix<const k::e4m3>(a.get(), M, K), k::matrix<const k::e4m3>(b.get(), N, K), k::matrix(cbuf.get(), M, N),
          scales);
  AIPE_CUDA(cudaDeviceSynchronize());
  const std::vector<bf16> out = aipe::to_host(cbuf, nullptr);
  aipe::Tolerance tol = aipe::tolerance_for(aipe::DType::bf16);
  tol.abs = (c.block ? 1e-2 : 4e-2) * rms;
  tol.rel = 2e-2;
  tol.norm_rel = 1e-2;
  const auto r = aipe::compare(
      out.size(), [&](std::size_t i) { return double(__bfloat162float(out[i])); }, [&](std::size_t i) { return ref[i]; },
      tol);
  EXPECT_TRUE(r.ok) << r.message();
  EXPECT_EQ(r.non_finite, 0u);
}

INSTANTIATE_TEST_SUITE_P(Awkward, GemmFp8Shapes,
                         ::testing::Values(Fp8Case{8191, 4097, 2064, false},  // odd N: stores from registers
                                           Fp8Case{4096, 3000, 2048, false},  // TMA stores, partial last tiles
                                           Fp8Case{37, 12289, 4096, false},   // one tile row, an unpaired CTA
                                           Fp8Case{129, 257, 16, false},      // a single K step of 16
                                           Fp8Case{1, 1, 128, true},
                                           Fp8Case{37, 12289, 4096, true},
                                           Fp8Case{1000, 1480, 512, true},    // TMA stores, partial M and N
                                           Fp8Case{8191, 4097, 2048, true}),
                         fp8_name);
