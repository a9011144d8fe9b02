// aipe::kernels::gemm: the production BF16 GEMM with fused epilogues, the one the ladders' techniques add up to
// (a persistent, warp-specialized TMA + WGMMA kernel; kernels/src/gemm_bf16.cu) behind a host call that takes
// any M and N, picks the tile configuration from the shape and says clearly what it cannot take. Decode shapes
// (M <= 64 tokens, alpha and bias only: prefers_skinny) go to the swap-AB kernel of kernels/src/gemm_bf16_skinny.cu
// instead, which streams the weight from every SM (GemmPlan::kernel says which ran).
//
// Layout: nn.Linear's, everything K-major and row-major with leading dimensions given:
//   C[M][N] = epilogue( A[M][K] . B[N][K]^T )       A: activations (tokens x in), B: weights (out x in)
// BF16 in, FP32 accumulate, BF16 out. The epilogue runs on the FP32 accumulators, before the one store:
//   v = alpha * acc  (+ bias[n])  -> activation (none, GELU tanh form, SiLU)  (+ beta * R[m][n])  -> BF16
// named at the call site:
//   kernels::gemm(a, b, c, kernels::Epilogue::bias_gelu(bias), stream);
//   kernels::gemm(a, b, c, kernels::Epilogue::bias(bias).with_residual(r), stream);
//
// What TMA needs (checked, std::invalid_argument naming the operand and the rule otherwise): A's and B's base
// pointers 16-byte aligned and their row pitches (lda, ldb) a multiple of 16 bytes (8 BF16), i.e. K % 8 == 0
// for packed operands. C may have any pitch (its base 4-byte aligned): with a 16-byte aligned base and pitch its
// tiles leave through TMA stores, otherwise through guarded stores from registers.
//
// Host-only header (no device code): the shape checks and the tile choice are plain C++ in
// kernels/src/gemm_config.cpp, tested on the CPU (tests/kernels/gemm_config_test.cpp).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>

#include "aipe/kernels/activation.hpp"

namespace aipe::kernels {

using bf16 = __nv_bfloat16;
using e4m3 = __nv_fp8_e4m3;

// A row-major matrix in device memory: `rows` x `cols`, `ld` elements from one row to the next (ld >= cols).
template <class T>
struct Matrix {
  T* data = nullptr;
  std::int64_t rows = 0, cols = 0, ld = 0;
  // A writable matrix passes where a read-only one is asked for.
  template <class U, class = std::enable_if_t<std::is_same_v<U, const T> && !std::is_const_v<T>>>
  operator Matrix<U>() const {
    return {data, rows, cols, ld};
  }
};
// A packed rows x cols matrix (ld = cols).
template <class T>
Matrix<T> matrix(T* data, std::int64_t rows, std::int64_t cols) {
  return {data, rows, cols, cols};
}
template <class T>
Matrix<T> matrix(T* data, std::int64_t rows, std::int64_t cols, std::int64_t ld) {
  return {data, rows, cols, ld};
}

const char* to_string(Activation a);

// Where an activation runs when the tile leaves through TMA stores (the result is the same within BF16 rounding):
//   overlapped  (default) the tile is parked in registers as BF16 t = alpha acc + bias, and the activation is
//               applied box by box as the tile leaves, under the next tile's first K steps: its MUFU and FMA work
//               overlaps the tensor cores instead of following them. t's BF16 rounding adds at most 2^-9 relative
//               error on t (GELU's slope is below 1.13) to the output's own rounding.
//   serial      the whole epilogue on the FP32 accumulators after the tile's last wgmma, one rounding.
// A residual, or C stored from registers, always takes the serial path (activation_overlapped).
enum class ActivationTiming : std::uint8_t { overlapped, serial };

// What happens to the FP32 accumulators before the BF16 store, in this order:
//   v = alpha * acc;  v += bias[n] (if a bias);  v = act(v);  v += beta * R[m][n] (if a residual).
// Build one with the named constructors and refine it with the with_* calls (each returns a copy).
class Epilogue {
 public:
  static Epilogue none() { return {}; }
  static Epilogue scale(float alpha) { return none().with_scale(alpha); }
  static Epilogue bias(const bf16* b) { return none().with_bias(b); }
  static Epilogue gelu() { return none().with_activation(Activation::gelu_tanh); }
  static Epilogue silu() { return none().with_activation(Activation::silu); }
  static Epilogue bias_gelu(const bf16* b) { return bias(b).with_activation(Activation::gelu_tanh); }
  static Epilogue bias_silu(const bf16* b) { return bias(b).with_activation(Activation::silu); }
  static Epilogue residual(Matrix<const bf16> r, float beta = 1.f) { return none().with_residual(r, beta); }

  Epilogue with_scale(float a) const { Epilogue e = *this; e.alpha_ = a; return e; }
  Epilogue with_bias(const bf16* b) const { Epilogue e = *this; e.bias_ = b; e.has_bias_ = true; return e; }
  Epilogue with_activation(Activation a) const { Epilogue e = *this; e.act_ = a; return e; }
  Epilogue with_activation_timing(ActivationTiming t) const { Epilogue e = *this; e.timing_ = t; return e; }
  Epilogue with_residual(Matrix<const bf16> r, float beta = 1.f) const {
    Epilogue e = *this;
    e.residual_ = r;
    e.has_residual_ = true;
    e.beta_ = beta;
    return e;
  }

  float alpha() const { return alpha_; }
  bool has_bias() const { return has_bias_; }
  const bf16* bias() const { return bias_; }  // bias[N], BF16
  Activation activation() const { return act_; }
  ActivationTiming activation_timing() const { return timing_; }
  bool has_residual() const { return has_residual_; }
  const Matrix<const bf16>& residual() const { return residual_; }  // M x N
  float beta() const { return beta_; }
  std::string describe() const;  // "alpha=1, bias, gelu_tanh" (+ ", serial activation"; for messages, test names)

 private:
  float alpha_ = 1.f, beta_ = 1.f;
  const bf16* bias_ = nullptr;
  bool has_bias_ = false, has_residual_ = false;
  Activation act_ = Activation::none;
  ActivationTiming timing_ = ActivationTiming::overlapped;
  Matrix<const bf16> residual_{};
};

// How the two consumer warpgroups of a CTA share its tensor cores:
//   cooperative  both work on one 128 x bn tile, 64 rows each; the tile's epilogue follows its last wgmma (the
//                TMA stores, and with ActivationTiming::overlapped the activation, under the next tile's first
//                K steps): alpha, bias, BF16 packing and the wgmma drain stay exposed once per tile.
//   pingpong     each warpgroup owns its own bm x bn tile (the CTA's tiles dealt out alternately) and the two take
//                turns on the tensor cores through ordered named barriers: while one runs its main loop, the
//                other runs its whole epilogue (bias, activation, residual, BF16 pack, TMA store) on the FP32
//                accumulators. The producer feeds both in tile order. (CUTLASS's
//                KernelTmaWarpSpecializedPingpong.) Half the tile per warpgroup: more L2 -> SM bytes per FLOP.
enum class Schedule : std::uint8_t { cooperative, pingpong };
const char* to_string(Schedule s);

// The kernel configurations that exist (each one kernel instantiation). Clusters of `cluster_m` CTAs on
// vertically adjacent tiles share the B tile through TMA multicast.
//   cooperative  bm = 128: the CTA's tile, 64 rows per consumer warpgroup (wgmma m64nBN)
//   pingpong     bm = rows of one warpgroup's tile: 64 x 256 (one m64n256 wgmma per K slice), 128 x 128 (two
//                m64n128; 128 FP32 accumulators per thread either way) or 128 x 192 (two m64n192, 192 of them:
//                fewer shared-memory bytes per FLOP than 64 x 256)
struct TileConfig {
  int bm = 128, bn = 256, cluster_m = 2;
  Schedule schedule = Schedule::cooperative;
  friend bool operator==(const TileConfig&, const TileConfig&) = default;
};
inline constexpr TileConfig kTileConfigs[] = {
    {.bm = 128, .bn = 256, .cluster_m = 2},
    {.bm = 128, .bn = 256, .cluster_m = 1},
    {.bm = 128, .bn = 128, .cluster_m = 2},
    {.bm = 128, .bn = 128, .cluster_m = 1},
    {.bm = 64, .bn = 256, .cluster_m = 2, .schedule = Schedule::pingpong},
    {.bm = 64, .bn = 256, .cluster_m = 1, .schedule = Schedule::pingpong},
    {.bm = 128, .bn = 128, .cluster_m = 2, .schedule = Schedule::pingpong},
    {.bm = 128, .bn = 128, .cluster_m = 1, .schedule = Schedule::pingpong},
    {.bm = 128, .bn = 192, .cluster_m = 2, .schedule = Schedule::pingpong},
    {.bm = 128, .bn = 192, .cluster_m = 1, .schedule = Schedule::pingpong},
};
std::string to_string(const TileConfig& t);  // "128x256, clusters of 2" (+ ", ping-pong")
bool is_kernel_config(const TileConfig& t);  // one of kTileConfigs

// How many CTAs (cluster_m = 1) and clusters of two (cluster_m = 2) of the GEMM kernels a device holds at once:
// the persistent grid. Queried once per device (kernels/src/gemm_bf16.cu); a plain struct so the choice below
// can be tested with the numbers of any GPU. Every configuration takes 384 threads and more than half an SM's
// shared memory: one CTA per SM.
struct DeviceSlots {
  int ctas = 0;      // kernels of one CTA resident at once (one per SM: ~227 KiB of shared memory each)
  int clusters = 0;  // clusters of 2 resident at once (GPCs with an odd SM count leave one SM idle)
  int slots(int cluster_m) const { return cluster_m == 1 ? ctas : clusters; }
};

// The estimate the tile choice minimises, in units of "the K loop of one 128 x 256 tile on one SM": waves of the
// persistent grid (work units over resident clusters, rounded up: a last wave that is mostly empty costs a whole
// wave) times the time one unit takes: its area over the configuration's relative throughput (tile_throughput),
// times (K steps + the epilogue's exposed K-step equivalents) / K steps (exposed_epilogue_steps).
// Infinite where the configuration does not apply: no slot on the device, or clusters taller than the problem.
// Relative throughput of one SM running the configuration on a long K loop, 128 x 256 cooperative in clusters
// of 2 = 1. ch10/gemm_bf16 measured its 128 x 256 kernel with and without clusters within ~1% of each other
// (rungs 6 and 7); a 128 x 128 tile loads twice the shared-memory bytes per FLOP and issues m64n128 wgmma: 0.85.
// A ping-pong tile has half the area: 1.5x the L2 -> SM bytes per FLOP, and a turn handoff per tile.
double tile_throughput(const TileConfig& t);
// The epilogue time the tensor cores wait for, per tile, in 64-deep K steps of that tile (both scale with the
// tile's area). Cooperative: kCooperativeEpilogueSteps every tile. Ping-pong: the same work runs under the
// other warpgroup's main loop, exposed only where that loop is shorter than it (K steps < the epilogue).
inline constexpr double kCooperativeEpilogueSteps = 2.0;
double exposed_epilogue_steps(std::int64_t k, const TileConfig& t);
double estimated_cost(std::int64_t m, std::int64_t n, std::int64_t k, const TileConfig& t, const DeviceSlots& d);
// The configuration of least estimated cost (among one schedule's, when `only` names it); ties go to the earlier
// one in kTileConfigs (cooperative, larger tiles, clusters).
TileConfig choose_tile(std::int64_t m, std::int64_t n, std::int64_t k, const DeviceSlots& d,
                       std::optional<Schedule> only = std::nullopt);

// What a caller may fix instead of leaving it to choose_tile: the schedule (the tile then chosen among that
// schedule's), or the whole configuration (one of kTileConfigs; std::invalid_argument otherwise).
//   kernels::gemm(a, b, c, epi, {.schedule = kernels::Schedule::pingpong}, stream);
struct GemmOptions {
  std::optional<Schedule> schedule;
  std::optional<TileConfig> tile;
};

// The problem after the checks, in the kernels' 32-bit terms.
struct GemmShape {
  int m = 0, n = 0, k = 0;
  bool tma_store = false;  // C's base and pitch allow TMA stores (16-byte aligned); else stores from registers
};
// Whether the cooperative kernel applies epi's activation as the tile leaves (ActivationTiming::overlapped): only
// with an activation, no residual (it comes after the activation, and its loads would need the registers the
// parked tile holds) and TMA stores (s.tma_store: the register path writes the tile straight from the
// accumulators). The ping-pong kernel never does: its whole epilogue already runs under the other warpgroup's
// main loop, on the FP32 accumulators (one rounding), whatever the timing asked.
bool activation_overlapped(const GemmShape& s, const Epilogue& epi);
bool activation_overlapped(const GemmShape& s, const Epilogue& epi, const TileConfig& t);

// Checks A, B, C and the epilogue's operands: every pointer non-null, every size positive and below 2^31, the
// shapes consistent (A M x K, B N x K, C M x N, bias N, residual M x N), every ld >= its row, and TMA's rules
// for A and B. Throws std::invalid_argument naming the operand and the rule.
GemmShape check_gemm(const Matrix<const bf16>& a, const Matrix<const bf16>& b, const Matrix<bf16>& c,
                     const Epilogue& epi);

// C = epilogue(A B^T) on `stream` (asynchronous). Needs an sm_90a build and a Hopper GPU (std::runtime_error
// otherwise); bad shapes and pointers are std::invalid_argument (check_gemm).
void gemm(Matrix<const bf16> a, Matrix<const bf16> b, Matrix<bf16> c, const Epilogue& epi = Epilogue::none(),
          cudaStream_t stream = nullptr);
// The same with the schedule or tile configuration fixed by the caller (GemmOptions). Either one fixes the square
// kernel: only gemm() with empty options sends decode shapes to the skinny kernel (prefers_skinny).
void gemm(Matrix<const bf16> a, Matrix<const bf16> b, Matrix<bf16> c, const Epilogue& epi, const GemmOptions& options,
          cudaStream_t stream = nullptr);

// FP8: C[M][N] = BF16( sum_k A8[m][k] sa(m, k) B8[n][k] sb(n, k) ), E4M3 operands, FP32 accumulate, through the
// warp-specialized FP8 kernel of the ch10 FP8 ladders (aipe/kernels/gemm_fp8.cuh) at the configuration of their
// best rungs. Scales, as cuBLASLt reads them:
//   per_tensor(sa, sb)  one float each (device pointers): C = sa[0] sb[0] A8 B8^T; 128 x 256 tiles in clusters
//                       of 2, the TMA-store epilogue overlapped with the next tile, K walked as a serpentine
//   blockwise(sa, sb)   DeepSeek-V3's 1 x 128 / 128 x 128: sa[kb M + m] per row of A and 128-wide K block,
//                       sb[nb ceil(K / 128) + kb] per 128 x 128 block of B (cuBLASLt's VEC128_32F and
//                       BLK128x128_32F); K % 128 == 0; 128 x 256 tiles in clusters of 2, TMA-store epilogue
struct Fp8Scales {
  enum class Kind : std::uint8_t { per_tensor, blockwise };
  Kind kind = Kind::per_tensor;
  const float* a = nullptr;
  const float* b = nullptr;
  static Fp8Scales per_tensor(const float* sa, const float* sb) { return {Kind::per_tensor, sa, sb}; }
  static Fp8Scales blockwise(const float* sa, const float* sb) { return {Kind::blockwise, sa, sb}; }
};
// The FP8 kernel has no fused operations yet: `epi` must be Epilogue::none(); anything else is refused, so that no
// caller believes it applied. A and B: rows TMA reads (16-byte aligned base, ld % 16
// == 0 bytes, i.e. K % 16 == 0 when packed); C packed (ld = N), base 16-byte aligned.
GemmShape check_gemm(const Matrix<const e4m3>& a, const Matrix<const e4m3>& b, const Matrix<bf16>& c,
                     const Fp8Scales& scales, const Epilogue& epi);
void gemm(Matrix<const e4m3> a, Matrix<const e4m3> b, Matrix<bf16> c, const Fp8Scales& scales,
          const Epilogue& epi = Epilogue::none(), cudaStream_t stream = nullptr);

// ---------------------------------------------------------------------------------------------------------------
// The decode-shaped GEMM (kernels/src/gemm_bf16_skinny.cu): few tokens (M = 1..256) against a large weight, where
// the time is the weight's bytes crossing DRAM. The same C = epilogue(A B^T), computed as C^T = W A^T ("swap-AB"):
// 128 rows of the weight B fill WGMMA's M side (two consumer warpgroups of 64), the tokens ride on its N side
// (M rounded up to a token tile of 8, 16, 32, 64, 128 or 256; TMA zero-fills the missing rows, which cost no
// DRAM bytes). One CTA per 128 rows of B, so N / 128 CTAs: at N = 4096 that is 32 of 132 SMs, and K is split
// across CTAs until the grid covers the SMs, FP32 partials summed (plus alpha and the bias, once) by a second
// kernel. Fused operations: alpha and the bias only; gemm() keeps the square kernel for anything else.
enum class SkinnySplit : std::uint8_t {
  none,    // one CTA per 128 rows of B walks all of K, BF16 straight out
  reduce,  // K split so that (N / 128) x splits covers the SMs (each split >= 4 K steps of 64); FP32 partials in
           // a workspace, summed by a second kernel (splits = 1 when N / 128 CTAs already fill the device)
  dsmem,   // K in two halves on the two CTAs of a cluster, summed through distributed shared memory
};
struct SkinnyOptions {
  SkinnySplit split = SkinnySplit::reduce;
  // Clusters of 2 CTAs along N load half of the token tile each and multicast it into both (the token tile is
  // the same for every CTA): at M = 256 a CTA's bytes per K step fall from 48 to 32 KiB. Not with dsmem.
  bool multicast = false;
};
// What the skinny kernel runs for one shape (choose_skinny).
struct SkinnyConfig {
  int token_tile = 8;    // WGMMA's N: skinny_token_tile(M), at least 16 with multicast (8 rows per CTA's half)
  int splits = 1;        // CTAs along K
  int kt_per_split = 1;  // 64-deep K steps per split (the last split may have fewer)
  bool multicast = false;
  bool dsmem = false;    // splits == 2, summed in DSMEM; else splits > 1 means FP32 partials + the reduce kernel
  int grid_ctas = 0;     // CTAs along N (rounded up to pairs with multicast) x splits
  friend bool operator==(const SkinnyConfig&, const SkinnyConfig&) = default;
};
inline constexpr int kSkinnyMaxM = 256;
// The token tiles that exist (one kernel instance each and per switch): powers of two 8..256.
int skinny_token_tile(std::int64_t m);
// `ctas` is how many of the one-CTA-per-SM kernels a device holds at once (DeviceSlots::ctas: the SM count).
// Throws std::invalid_argument for M outside 1..256, a K or N below 1, dsmem with multicast.
SkinnyConfig choose_skinny(std::int64_t m, std::int64_t n, std::int64_t k, int ctas, const SkinnyOptions& o = {});
// The epilogues the skinny kernel applies: alpha and the bias (no activation, no residual).
bool skinny_supports(const Epilogue& epi);
// The dispatch rule of gemm(): the skinny kernel when M <= kSkinnyDispatchMaxM and skinny_supports(epi). Up to 64
// tokens a 128-row tile of the square kernel is at least half empty and its ceil(N / 256) tiles leave most SMs
// idle, while the swap-AB kernel at M = 64 streams W at cuBLAS's rate (ch10/gemm_bf16_skinny, docs/results);
// above 64 its accumulators (token_tile / 2 floats a thread) and the token tile's shared memory grow, and the
// square kernel's tiles are more than half full.
inline constexpr int kSkinnyDispatchMaxM = 64;
bool prefers_skinny(std::int64_t m, const Epilogue& epi);
// The switches gemm() runs the skinny kernel with: the split-K reduce only where it gives 3 splits or more
// (CTAs along N <= ctas / 3: 32 CTAs at N = 4096 stream W from a quarter of the SMs), else no split. At M = 64,
// N = K = 8192 (64 CTAs, 2 splits) the H200 ran the unsplit kernel at 3,019 GB/s and the 2-way split at 2,823:
// with half the SMs streaming, the partials (8 M N bytes a split) and the second kernel cost more than the
// idle SMs (docs/results/h200.json).
SkinnyOptions dispatch_skinny_options(std::int64_t n, int ctas);

enum class GemmKernel : std::uint8_t { square, skinny };
const char* to_string(GemmKernel k);

// What gemm() would run for this shape on the current device (for tests, metrics and reports).
struct GemmPlan {
  GemmKernel kernel = GemmKernel::square;
  TileConfig tile;      // square kernel
  SkinnyConfig skinny;  // skinny kernel
  int grid_ctas = 0;  // persistent grid (a multiple of tile.cluster_m), or the skinny grid (skinny.grid_ctas)
  bool tma_store = false;  // square kernel: C through TMA stores (the skinny kernel stores from registers)
  bool activation_overlapped = false;  // activation_overlapped(shape, epi, tile), square kernel
};
GemmPlan plan_gemm(const Matrix<const bf16>& a, const Matrix<const bf16>& b, const Matrix<bf16>& c,
                   const Epilogue& epi = Epilogue::none(), const GemmOptions& options = {});
// The configuration for a checked shape: options.tile if given (std::invalid_argument unless it is one of
// kTileConfigs), else choose_tile among options.schedule's configurations (all, if none).
TileConfig select_tile(const GemmShape& s, const GemmOptions& options, const DeviceSlots& d);

// The skinny kernel with its switches named (the ch10/gemm_bf16_skinny rungs; gemm() picks it by shape). Same
// checks as gemm(), and std::invalid_argument for M > 256 or an epilogue skinny_supports() refuses. With
// SkinnySplit::reduce the partials go to a workspace owned by the library, one per device and stream (allocated
// on the stream's first split call, ~SMs x 128 KiB: calls on one stream are ordered, so they can share it).
void gemm_skinny(Matrix<const bf16> a, Matrix<const bf16> b, Matrix<bf16> c, const Epilogue& epi,
                 const SkinnyOptions& options, cudaStream_t stream = nullptr);
GemmPlan plan_gemm_skinny(const Matrix<const bf16>& a, const Matrix<const bf16>& b, const Matrix<bf16>& c,
                          const Epilogue& epi, const SkinnyOptions& options);

}  // namespace aipe::kernels
