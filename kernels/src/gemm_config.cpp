// Host side of aipe::kernels::gemm that needs no GPU: the operand checks, the epilogue's description and the
// choice of tile configuration (tested on the CPU in tests/kernels/gemm_config_test.cpp).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include "aipe/kernels/gemm.hpp"

namespace aipe::kernels {

const char* to_string(Activation a) {
  switch (a) {
    case Activation::none: return "none";
    case Activation::gelu_tanh: return "gelu_tanh";
    case Activation::silu: return "silu";
  }
  return "?";
}

std::string Epilogue::describe() const {
  std::string s;
  auto add = [&](const std::string& part) { s += (s.empty() ? "" : ", ") + part; };
  if (alpha_ != 1.f) add("alpha=" + std::to_string(alpha_));
  if (has_bias_) add("bias");
  if (act_ != Activation::none) add(to_string(act_));
  if (has_residual_) add(beta_ == 1.f ? std::string("residual") : "residual*" + std::to_string(beta_));
  if (act_ != Activation::none && timing_ == ActivationTiming::serial) add("serial activation");
  return s.empty() ? "none" : s;
}

bool activation_overlapped(const GemmShape& s, const Epilogue& epi) {
  return s.tma_store && epi.activation() != Activation::none && !epi.has_residual() &&
         epi.activation_timing() == ActivationTiming::overlapped;
}
bool activation_overlapped(const GemmShape& s, const Epilogue& epi, const TileConfig& t) {
  return t.schedule == Schedule::cooperative && activation_overlapped(s, epi);
}

const char* to_string(Schedule s) { return s == Schedule::pingpong ? "pingpong" : "cooperative"; }

std::string to_string(const TileConfig& t) {
  return std::to_string(t.bm) + "x" + std::to_string(t.bn) +
         (t.cluster_m > 1 ? ", clusters of " + std::to_string(t.cluster_m) : ", no cluster") +
         (t.schedule == Schedule::pingpong ? ", ping-pong" : "");
}

bool is_kernel_config(const TileConfig& t) {
  for (const TileConfig& k : kTileConfigs)
    if (k == t) return true;
  return false;
}

double tile_throughput(const TileConfig& t) {
  // The wgmma shape: m64n256 for 128 x 256 cooperative and 64 x 256 ping-pong, m64n192 (estimated between),
  // m64n128.
  const double shape = t.bn == 256 ? 1.0 : t.bn == 192 ? 0.95 : 0.85;
  const double cluster = t.cluster_m == 2 ? 1.0 : 0.99;
  // Ping-pong: a warpgroup's tile is half a cooperative CTA's, so each K step brings 1.5x the bytes per FLOP
  // into shared memory, and the tensor cores change hands once per tile. An estimate, to be calibrated with
  // ch09/gemm_bias_gelu's fused_wgmma and fused_pingpong at long K (--size k=8192).
  const double schedule = t.schedule == Schedule::pingpong ? 0.97 : 1.0;
  return shape * cluster * schedule;
}

double exposed_epilogue_steps(std::int64_t k, const TileConfig& t) {
  if (t.schedule == Schedule::cooperative) return kCooperativeEpilogueSteps;
  const double steps = double((k + 63) / 64);
  return std::max(0.0, kCooperativeEpilogueSteps - steps);
}

double estimated_cost(std::int64_t m, std::int64_t n, std::int64_t k, const TileConfig& t, const DeviceSlots& d) {
  const std::int64_t tiles_m = (m + t.bm - 1) / t.bm, tiles_n = (n + t.bn - 1) / t.bn;
  // A unit is cluster_m tiles stacked along M: a cluster walks them together, so an odd tile row count leaves
  // one CTA of the last cluster row without work (it still takes the unit's time).
  const std::int64_t units = ((tiles_m + t.cluster_m - 1) / t.cluster_m) * tiles_n;
  const std::int64_t slots = d.slots(t.cluster_m);
  if (slots < 1) return std::numeric_limits<double>::infinity();  // does not fit on this device
  // With a single tile row, every cluster's second CTA would have no tile at all: half the grid idle, and
  // nothing multicast is shared.
  if (tiles_m < t.cluster_m) return std::numeric_limits<double>::infinity();
  const std::int64_t waves = (units + slots - 1) / slots;
  const double steps = double((std::max<std::int64_t>(k, 1) + 63) / 64);
  const double unit_time = double(t.bm) * t.bn / (128.0 * 256.0) / tile_throughput(t) *
                           (steps + exposed_epilogue_steps(k, t)) / steps;
  return double(waves) * unit_time;
}

TileConfig choose_tile(std::int64_t m, std::int64_t n, std::int64_t k, const DeviceSlots& d, std::optional<Schedule> only) {
  bool found = false;
  TileConfig best{};
  double best_cost = std::numeric_limits<double>::infinity();
  for (const TileConfig& t : kTileConfigs) {
    if (only && t.schedule != *only) continue;
    const double c = estimated_cost(m, n, k, t, d);
    if (!found || c < best_cost * (1 - 1e-9)) {
      best = t;
      best_cost = c;
      found = true;
    }
  }
  return best;
}

namespace {

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument("kernels::gemm: " + what); }

}  // namespace

const char* to_string(GemmKernel k) { return k == GemmKernel::skinny ? "skinny (swap-AB)" : "square"; }

int skinny_token_tile(std::int64_t m) {
  int t = 8;
  while (t < m && t < kSkinnyMaxM) t *= 2;
  return t;
}

bool skinny_supports(const Epilogue& epi) { return epi.activation() == Activation::none && !epi.has_residual(); }

bool prefers_skinny(std::int64_t m, const Epilogue& epi) { return m <= kSkinnyDispatchMaxM && skinny_supports(epi); }

SkinnyOptions dispatch_skinny_options(std::int64_t n, int ctas) {
  const std::int64_t ctas_n = (std::max<std::int64_t>(n, 1) + 127) / 128;
  SkinnyOptions o;
  o.split = ctas / ctas_n >= 3 ? SkinnySplit::reduce : SkinnySplit::none;
  return o;
}

SkinnyConfig choose_skinny(std::int64_t m, std::int64_t n, std::int64_t k, int ctas, const SkinnyOptions& o) {
  if (m < 1 || m > kSkinnyMaxM)
    bad("the skinny (swap-AB) kernel takes M = 1.." + std::to_string(kSkinnyMaxM) + " tokens, got M = " + std::to_string(m));
  if (n < 1 || k < 1) bad("the skinny kernel needs N and K >= 1, got N = " + std::to_string(n) + ", K = " + std::to_string(k));
  if (ctas < 1) bad("the skinny kernel needs a device with at least one resident CTA, got " + std::to_string(ctas));
  if (o.split == SkinnySplit::dsmem && o.multicast)
    bad("the skinny kernel's cluster either shares the token tile (multicast) or sums K halves (dsmem), not both");
  constexpr std::int64_t kRowsW = 128, kStepK = 64;  // rows of B per CTA, K per pipeline stage
  SkinnyConfig c;
  c.multicast = o.multicast;
  c.dsmem = o.split == SkinnySplit::dsmem;
  // With multicast each CTA of a pair loads half of the token tile: at least 8 rows (one 128-byte swizzle atom).
  c.token_tile = std::max(skinny_token_tile(m), o.multicast ? 16 : 8);
  const std::int64_t ctas_n = (n + kRowsW - 1) / kRowsW, ktiles = (k + kStepK - 1) / kStepK;
  const std::int64_t grid_n = o.multicast ? (ctas_n + 1) / 2 * 2 : ctas_n;  // whole pairs
  std::int64_t splits = 1;
  if (c.dsmem) {
    splits = 2;  // the kernel's rows are owned by warp / 2: a split of exactly 2 (an empty half adds zeros)
  } else if (o.split == SkinnySplit::reduce) {
    // One wave: (CTAs along N) x splits <= resident CTAs, each split at least 4 K steps (256 of K), so the
    // pipeline fills and the partials (8 M N bytes a split) stay small beside the weight (2 N K bytes).
    splits = std::max<std::int64_t>(1, ctas / grid_n);
    splits = std::min(splits, std::max<std::int64_t>(1, ktiles / 4));
  }
  c.kt_per_split = static_cast<int>((ktiles + splits - 1) / splits);
  if (!c.dsmem) splits = (ktiles + c.kt_per_split - 1) / c.kt_per_split;  // no empty split
  c.splits = static_cast<int>(splits);
  c.grid_ctas = static_cast<int>(grid_n * splits);
  return c;
}

namespace {

std::string dims(std::int64_t r, std::int64_t c) { return std::to_string(r) + " x " + std::to_string(c); }

// A and B are read through TMA: 16-byte aligned base, row pitch a multiple of 16 bytes.
template <class T>
void check_tma_operand(const char* name, const Matrix<const T>& x) {
  constexpr std::int64_t kElem = sizeof(T), kPer16 = 16 / sizeof(T);
  const char* type = kElem == 2 ? " BF16 = " : " E4M3 = ";
  if (reinterpret_cast<std::uintptr_t>(x.data) % 16 != 0)
    bad(std::string(name) + "'s base pointer must be 16-byte aligned for TMA");
  if ((x.ld * kElem) % 16 != 0)
    bad(std::string(name) + "'s row pitch (ld = " + std::to_string(x.ld) + type + std::to_string(kElem * x.ld) +
        " bytes) must be a multiple of 16 bytes for TMA: ld % " + std::to_string(kPer16) +
        " == 0 (for a packed operand, K % " + std::to_string(kPer16) + " == 0)");
}

void check_matrix(const char* name, const void* data, std::int64_t rows, std::int64_t cols, std::int64_t ld) {
  if (!data) bad(std::string(name) + " is a null pointer");
  constexpr std::int64_t kMax = std::numeric_limits<std::int32_t>::max();
  if (rows < 1 || cols < 1) bad(std::string(name) + " must have positive sizes, got " + dims(rows, cols));
  if (rows > kMax || cols > kMax) bad(std::string(name) + "'s sizes must be below 2^31, got " + dims(rows, cols));
  if (ld < cols)
    bad(std::string(name) + "'s leading dimension (" + std::to_string(ld) + ") is smaller than its row (" +
        std::to_string(cols) + " elements)");
}

}  // namespace

namespace {

// The shapes and pointers both element types share: A M x K, B N x K, C M x N, TMA's rules for A and B.
template <class T>
GemmShape check_operands(const Matrix<const T>& a, const Matrix<const T>& b, const Matrix<bf16>& c) {
  check_matrix("A", a.data, a.rows, a.cols, a.ld);
  check_matrix("B", b.data, b.rows, b.cols, b.ld);
  check_matrix("C", c.data, c.rows, c.cols, c.ld);
  const std::int64_t m = a.rows, k = a.cols, n = b.rows;
  if (b.cols != k)
    bad("A is M x K = " + dims(m, k) + ", so B (N x K, nn.Linear's weight layout) needs K = " + std::to_string(k) +
        " columns, got " + dims(b.rows, b.cols));
  if (c.rows != m || c.cols != n)
    bad("C must be M x N = " + dims(m, n) + " (A is " + dims(m, k) + ", B is " + dims(n, k) + "), got " +
        dims(c.rows, c.cols));
  check_tma_operand("A", a);
  check_tma_operand("B", b);
  // Any pitch for C, but BF16 pairs (4-byte stores of two adjacent columns) need an even element offset.
  if (reinterpret_cast<std::uintptr_t>(c.data) % 4 != 0) bad("C's base pointer must be 4-byte aligned (BF16 pairs)");
  GemmShape s;
  s.m = int(m);
  s.n = int(n);
  s.k = int(k);
  s.tma_store = reinterpret_cast<std::uintptr_t>(c.data) % 16 == 0 && (c.ld * std::int64_t(sizeof(bf16))) % 16 == 0;
  return s;
}

}  // namespace

GemmShape check_gemm(const Matrix<const bf16>& a, const Matrix<const bf16>& b, const Matrix<bf16>& c,
                     const Epilogue& epi) {
  const GemmShape s = check_operands(a, b, c);
  if (epi.has_bias() && !epi.bias()) bad("the epilogue's bias is a null pointer");
  if (epi.has_residual()) {
    const auto& r = epi.residual();
    check_matrix("the residual R", r.data, r.rows, r.cols, r.ld);
    if (r.rows != s.m || r.cols != s.n)
      bad("the residual R must be M x N = " + dims(s.m, s.n) + ", got " + dims(r.rows, r.cols));
  }
  return s;
}

GemmShape check_gemm(const Matrix<const e4m3>& a, const Matrix<const e4m3>& b, const Matrix<bf16>& c,
                     const Fp8Scales& scales, const Epilogue& epi) {
  const GemmShape s = check_operands(a, b, c);
  if (epi.describe() != "none")
    bad("the FP8 GEMM has no fused epilogue operations yet (asked for " + epi.describe() + "); pass Epilogue::none()");
  if (c.ld != c.cols) bad("the FP8 GEMM writes C packed: ld must equal N = " + std::to_string(c.cols));
  // Its kernel picks the TMA store from N alone (N % 8 == 0), so C's base must be what TMA needs.
  if (reinterpret_cast<std::uintptr_t>(c.data) % 16 != 0) bad("the FP8 GEMM needs C's base pointer 16-byte aligned");
  if (!scales.a || !scales.b) bad("the FP8 scales of A and B must both be given (device pointers)");
  if (scales.kind == Fp8Scales::Kind::blockwise && s.k % 128 != 0)
    bad("1 x 128 / 128 x 128 block scales need K % 128 == 0, got K = " + std::to_string(s.k));
  return s;
}

TileConfig select_tile(const GemmShape& s, const GemmOptions& options, const DeviceSlots& d) {
  if (options.tile) {
    const TileConfig& t = *options.tile;
    if (!is_kernel_config(t)) {
      std::string all;
      for (const TileConfig& k : kTileConfigs) all += (all.empty() ? "" : "; ") + to_string(k);
      bad("no kernel for the tile configuration " + to_string(t) + " (there are: " + all + ")");
    }
    if (options.schedule && *options.schedule != t.schedule)
      bad(std::string("the options ask for the ") + to_string(*options.schedule) + " schedule and the tile " +
          to_string(t));
    if (d.slots(t.cluster_m) < 1) bad("the tile configuration " + to_string(t) + " does not fit on this device");
    return t;
  }
  return choose_tile(s.m, s.n, s.k, d, options.schedule);
}

}  // namespace aipe::kernels
