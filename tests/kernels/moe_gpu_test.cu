// The MoE pieces on the GPU against CPU references: the MXFP4 register conversion (aipe/kernels/mxfp4.cuh) over all
// 256 byte values in every byte position and the E8M0 range, bit for bit against e2m1_value * e8m0_value; the
// dequantization kernel (16-byte and byte paths) against dequantize_mxfp4_host; top-k + softmax with forced ties
// against a stable sort; the routing counting sort against a CPU stable sort (one segment and many, 1 to 1024
// experts, empty experts, one expert taking everything, out-of-range ids dropped and flagged); gather and combine
// at awkward widths (2880, 360, 8, 13, 7), padded pitches, with and without a residual and with out == residual;
// and the whole routing path captured in a CUDA graph. Outputs are poisoned before every run (0xFF: BF16 and FP32
// NaN; 0x7F for integers, since -1 is a valid pair_row), so an element never written fails.
#include <cuda_bf16.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/device.hpp"
#include "aipe/kernels/moe.hpp"
#include "aipe/kernels/moe_checks.hpp"
#include "aipe/kernels/mxfp4.cuh"

namespace {

namespace moe = aipe::kernels::moe;
using bf16 = __nv_bfloat16;

#define SKIP_WITHOUT_GPU()                                                    \
  do {                                                                        \
    if (auto why = aipe::gpu_unavailable_reason()) GTEST_SKIP() << *why;      \
  } while (0)

template <class T>
aipe::DeviceBuffer<T> upload(const std::vector<T>& h) {
  aipe::DeviceBuffer<T> d(h.size());
  if (!h.empty()) AIPE_CUDA(cudaMemcpy(d.get(), h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}
template <class T>
void poison(aipe::DeviceBuffer<T>& d, int byte) {
  if (d.size()) AIPE_CUDA(cudaMemset(d.get(), byte, d.bytes()));
}
std::uint16_t bits(bf16 h) { return std::bit_cast<std::uint16_t>(h); }
float value(bf16 h) { return __bfloat162float(h); }
bf16 to_bf16(float f) { return __float2bfloat16_rn(f); }

// The BF16 bits of a float that BF16 represents exactly (or +-inf): its high half.
std::uint16_t exact_bf16_bits(float f) {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  EXPECT_EQ(u & 0xffffu, 0u) << f << " is not a BF16 value";
  return std::uint16_t(u >> 16);
}

// ---------------------------------------------------------------------------------------------------- MXFP4
__global__ void convert_words_kernel(const std::uint32_t* words, const std::uint8_t* scales, int n, bf16* out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const uint4 u = aipe::kernels::mxfp4::e2m1x8_to_bf16x8(words[i], aipe::kernels::mxfp4::e8m0_to_bf16x2(scales[i]));
  *reinterpret_cast<uint4*>(out + 8 * std::size_t(i)) = u;
}

TEST(Mxfp4Gpu, RegisterConversionIsExactForEveryByteAndScale) {
  SKIP_WITHOUT_GPU();
  // Words with one byte value in all four positions, and words mixing values, so a byte landing in the wrong
  // output pair shows.
  std::vector<std::uint32_t> base;
  for (std::uint32_t v = 0; v < 256; ++v) {
    base.push_back(v * 0x01010101u);
    base.push_back(v | ((255u - v) << 8) | (((v * 7u) & 255u) << 16) | (((v * 13u + 5u) & 255u) << 24));
  }
  const int scale_list[] = {0, 1, 2, 60, 126, 127, 128, 129, 200, 252, 253, 254, 255};
  std::vector<std::uint32_t> words;
  std::vector<std::uint8_t> scales;
  for (const int s : scale_list)
    for (const std::uint32_t w : base) {
      words.push_back(w);
      scales.push_back(std::uint8_t(s));
    }
  const int n = int(words.size());
  auto dw = upload(words);
  auto ds = upload(scales);
  aipe::DeviceBuffer<bf16> out(std::size_t(n) * 8);
  poison(out, 0x7f);  // 0x7f7f: BF16's largest finite value, which no MXFP4 element is
  convert_words_kernel<<<(n + 127) / 128, 128>>>(dw.get(), ds.get(), n, out.get());
  AIPE_CUDA(cudaGetLastError());
  const std::vector<bf16> got = aipe::to_host(out, nullptr);
  int bad = 0;
  for (int i = 0; i < n; ++i)
    for (int e = 0; e < 8; ++e) {
      const unsigned code = (words[std::size_t(i)] >> (4 * e)) & 0xfu;  // element e: nibble e of the word
      const float want = moe::e2m1_value(code) * moe::e8m0_value(scales[std::size_t(i)]);
      const bf16 g = got[std::size_t(i) * 8 + std::size_t(e)];
      const bool ok = std::isnan(want) ? std::isnan(value(g)) : bits(g) == exact_bf16_bits(want);
      if (!ok && ++bad <= 8)
        ADD_FAILURE() << "word " << std::hex << words[std::size_t(i)] << std::dec << " scale "
                      << int(scales[std::size_t(i)]) << " element " << e << " (code " << code << "): expected " << want
                      << ", got " << value(g) << " (bits " << std::hex << bits(g) << ")";
    }
  EXPECT_EQ(bad, 0);
}

// rows x cols MXFP4 with random codes and scales 0..254 (255 is covered above).
struct RandomMxfp4 {
  std::vector<std::uint8_t> blocks, scales;
  RandomMxfp4(int rows, int cols, unsigned seed)
      : blocks(std::size_t(rows) * cols / 2), scales(std::size_t(rows) * cols / 32) {
    std::mt19937 rng(seed);
    for (auto& b : blocks) b = std::uint8_t(rng());
    for (auto& s : scales) s = std::uint8_t(rng() % 255);
  }
};

TEST(Mxfp4Gpu, DequantizeMatchesTheHostReferenceBitForBit) {
  SKIP_WITHOUT_GPU();
  for (const bool aligned : {true, false}) {
    const int rows = 37, cols = 2880;
    SCOPED_TRACE(aligned ? "16-byte aligned" : "blocks and out at odd addresses (the byte path)");
    const RandomMxfp4 w(rows, cols, 7);
    const int shift = aligned ? 0 : 1;
    std::vector<std::uint8_t> blocks_h(w.blocks.size() + 1);
    std::copy(w.blocks.begin(), w.blocks.end(), blocks_h.begin() + shift);
    auto db = upload(blocks_h);
    auto ds = upload(w.scales);
    aipe::DeviceBuffer<bf16> out(std::size_t(rows) * cols + 1);
    poison(out, 0x7f);
    moe::dequantize_mxfp4({.blocks = db.get() + shift, .scales = ds.get(), .rows = rows, .cols = cols},
                          out.get() + shift, nullptr);
    AIPE_CUDA(cudaDeviceSynchronize());
    std::vector<float> ref(std::size_t(rows) * cols);
    moe::dequantize_mxfp4_host({.blocks = w.blocks.data(), .scales = w.scales.data(), .rows = rows, .cols = cols},
                               ref.data());
    const std::vector<bf16> got = aipe::to_host(out, nullptr);
    int bad = 0;
    for (std::size_t i = 0; i < ref.size(); ++i)
      if (bits(got[i + std::size_t(shift)]) != exact_bf16_bits(ref[i]) && ++bad <= 5)
        ADD_FAILURE() << "row " << i / cols << ", col " << i % cols << ": expected " << ref[i] << ", got "
                      << value(got[i + std::size_t(shift)]);
    EXPECT_EQ(bad, 0);
    if (aligned) EXPECT_EQ(bits(got.back()), 0x7f7fu) << "written past the matrix";
    else EXPECT_EQ(bits(got.front()), 0x7f7fu) << "written before the matrix";
  }
}

// ---------------------------------------------------------------------------------------------------- top-k
struct TopkCase {
  int tokens, experts, k, ld;
  bool ties;  // logits from 5 values: most rows have ties at the k-th place
};

TEST(MoeRoutingGpu, TopkSoftmaxMatchesAStableSort) {
  SKIP_WITHOUT_GPU();
  const TopkCase cases[] = {{1, 32, 4, 32, true},     {77, 128, 4, 130, true}, {300, 256, 8, 256, true},
                            {5, 1, 1, 1, false},      {33, 7, 7, 9, true},     {1000, 64, 2, 64, false},
                            {129, 200, 8, 203, true}, {3, 33, 5, 40, false}};
  for (const TopkCase c : cases) {
    SCOPED_TRACE("tokens " + std::to_string(c.tokens) + ", experts " + std::to_string(c.experts) + ", k " +
                 std::to_string(c.k) + ", ld " + std::to_string(c.ld) + (c.ties ? ", ties" : ""));
    std::mt19937 rng(unsigned(c.tokens * 31 + c.experts));
    std::vector<bf16> lg(std::size_t(c.tokens) * c.ld);
    for (auto& v : lg) {
      const float x = c.ties ? float(int(rng() % 5) - 2) * 0.75f : std::uniform_real_distribution<float>(-4, 4)(rng);
      v = to_bf16(x);
    }
    if (c.ties && c.experts > 8) {
      lg[3] = to_bf16(-INFINITY);  // an -inf logit is ranked, not skipped
      lg[5] = to_bf16(NAN);        // a NaN logit ranks as -inf
    }
    auto dl = upload(lg);
    aipe::DeviceBuffer<int> ids(std::size_t(c.tokens) * c.k);
    aipe::DeviceBuffer<float> w(std::size_t(c.tokens) * c.k);
    poison(ids, 0x7f);
    poison(w, 0xff);
    moe::topk_softmax(dl.get(), c.ld, c.tokens, c.experts, c.k, ids.get(), w.get(), nullptr);
    AIPE_CUDA(cudaDeviceSynchronize());
    const auto gi = aipe::to_host(ids, nullptr);
    const auto gw = aipe::to_host(w, nullptr);
    int bad = 0;
    for (int t = 0; t < c.tokens; ++t) {
      std::vector<int> order(static_cast<std::size_t>(c.experts));
      std::iota(order.begin(), order.end(), 0);
      auto at = [&](int e) {
        const float v = value(lg[std::size_t(t) * c.ld + std::size_t(e)]);
        return std::isnan(v) ? -INFINITY : v;
      };
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return at(a) > at(b); });
      double sum = 0;
      for (int j = 0; j < c.k; ++j) sum += std::exp(double(at(order[std::size_t(j)])) - at(order[0]));
      for (int j = 0; j < c.k; ++j) {
        const std::size_t i = std::size_t(t) * c.k + std::size_t(j);
        const double want = std::exp(double(at(order[std::size_t(j)])) - at(order[0])) / sum;
        const bool ok = gi[i] == order[std::size_t(j)] && std::abs(gw[i] - want) <= 1e-6 + 1e-6 * want;
        if (!ok && ++bad <= 5)
          ADD_FAILURE() << "token " << t << ", choice " << j << ": expected expert " << order[std::size_t(j)]
                        << " weight " << want << ", got expert " << gi[i] << " weight " << gw[i];
      }
    }
    EXPECT_EQ(bad, 0);
  }
}

// ---------------------------------------------------------------------------------------------------- routing
struct RoutingRef {
  std::vector<int> offsets, row_token, pair_row;
  bool error = false;
};

// A stable sort of the pairs by expert, the long way.
RoutingRef routing_reference(const std::vector<int>& ids, int tokens, int k, int experts) {
  const int pairs = tokens * k;
  RoutingRef r;
  r.pair_row.assign(std::size_t(pairs), -1);
  r.row_token.assign(std::size_t(pairs), 0);  // rows past the kept ones: token 0
  r.offsets.push_back(0);
  int row = 0;
  for (int e = 0; e < experts; ++e) {
    for (int p = 0; p < pairs; ++p)
      if (ids[std::size_t(p)] == e) {
        r.row_token[std::size_t(row)] = p / k;
        r.pair_row[std::size_t(p)] = row++;
      }
    r.offsets.push_back(row);
  }
  for (const int id : ids) r.error |= id < 0 || id >= experts;
  return r;
}

struct DeviceRouting {
  aipe::DeviceBuffer<int> offsets, row_token, pair_row, error;
  aipe::DeviceBuffer<unsigned char> workspace;
  DeviceRouting(int tokens, int k, int experts)
      : offsets(std::size_t(experts) + 1), row_token(std::size_t(tokens) * k), pair_row(std::size_t(tokens) * k),
        error(1), workspace(moe::routing_workspace_bytes(tokens, k, experts)) {}
  moe::Routing view() const {
    return {.offsets = offsets.get(), .row_token = row_token.get(), .pair_row = pair_row.get()};
  }
  void poison_all() {
    poison(offsets, 0x7f);
    poison(row_token, 0x7f);
    poison(pair_row, 0x7f);
    poison(workspace, 0x7f);  // the count kernel writes every count it later reads
    AIPE_CUDA(cudaMemset(error.get(), 0, sizeof(int)));
  }
};

void expect_routing(const DeviceRouting& d, const RoutingRef& want) {
  EXPECT_EQ(aipe::to_host(d.offsets, nullptr), want.offsets) << "offsets";
  EXPECT_EQ(aipe::to_host(d.row_token, nullptr), want.row_token) << "row_token";
  EXPECT_EQ(aipe::to_host(d.pair_row, nullptr), want.pair_row) << "pair_row";
  EXPECT_EQ(aipe::to_host(d.error, nullptr)[0], want.error ? 1 : 0) << "error flag";
}

enum class Ids { uniform, one_expert, out_of_range };
struct RoutingCase {
  int tokens, k, experts;
  Ids ids;
};

TEST(MoeRoutingGpu, BuildRoutingMatchesACpuStableSort) {
  SKIP_WITHOUT_GPU();
  const RoutingCase cases[] = {
      {1, 4, 32, Ids::uniform},          {77, 4, 128, Ids::uniform},       {3000, 8, 1024, Ids::uniform},
      {65536, 4, 128, Ids::uniform},     {5, 1, 1, Ids::uniform},          {2048, 4, 64, Ids::one_expert},
      {1500, 3, 100, Ids::out_of_range}, {1, 4, 32, Ids::out_of_range},    {256, 4, 1000, Ids::uniform},
      {257, 4, 5, Ids::uniform},         {9000, 2, 1024, Ids::out_of_range}};
  for (const RoutingCase c : cases) {
    SCOPED_TRACE("tokens " + std::to_string(c.tokens) + ", k " + std::to_string(c.k) + ", experts " +
                 std::to_string(c.experts) + (c.ids == Ids::one_expert ? ", one expert" : "") +
                 (c.ids == Ids::out_of_range ? ", out-of-range ids" : ""));
    const int pairs = c.tokens * c.k;
    std::mt19937 rng(unsigned(pairs + c.experts));
    std::vector<int> ids(static_cast<std::size_t>(pairs));
    // Uniform over the even experts when there are more than 4: the odd ones get no rows.
    const unsigned span = c.experts > 4 ? unsigned(c.experts + 1) / 2 : unsigned(c.experts);
    const int stride = c.experts > 4 ? 2 : 1;
    for (auto& id : ids) id = int(rng() % span) * stride;
    if (c.ids == Ids::one_expert) std::fill(ids.begin(), ids.end(), 5 % c.experts);
    if (c.ids == Ids::out_of_range) {
      const int bad_ids[] = {-1, c.experts, INT_MAX, INT_MIN};
      for (int i = 0; i < std::max(1, pairs / 50); ++i) ids[rng() % unsigned(pairs)] = bad_ids[i % 4];
    }
    const RoutingRef want = routing_reference(ids, c.tokens, c.k, c.experts);
    auto dids = upload(ids);
    DeviceRouting d(c.tokens, c.k, c.experts);
    d.poison_all();
    moe::build_routing(dids.get(), c.tokens, c.k, c.experts, d.view(), d.workspace.get(), d.workspace.bytes(),
                       d.error.get(), nullptr);
    AIPE_CUDA(cudaDeviceSynchronize());
    expect_routing(d, want);
    if (c.ids == Ids::one_expert) EXPECT_EQ(want.offsets[std::size_t(5 % c.experts) + 1], pairs);
  }
}

TEST(MoeRoutingGpu, BuildRoutingOfNoTokensZeroesTheOffsets) {
  SKIP_WITHOUT_GPU();
  aipe::DeviceBuffer<int> offsets(65);
  poison(offsets, 0x7f);
  moe::build_routing(nullptr, 0, 4, 64, {.offsets = offsets.get()}, nullptr, 0, nullptr, nullptr);
  EXPECT_EQ(aipe::to_host(offsets, nullptr), std::vector<int>(65, 0));
}

// ---------------------------------------------------------------------------------------------------- gather
struct WidthCase {
  int cols, pad;  // pad: extra elements per row of both layouts (pad % 8 != 0: the 2-byte path)
};
const WidthCase kWidths[] = {{2880, 0}, {360, 0}, {8, 0}, {13, 0}, {7, 3}, {2880, 8}, {360, 5}};

std::vector<bf16> random_bf16(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-2, 2);
  std::vector<bf16> v(n);
  for (auto& x : v) x = to_bf16(u(rng));
  return v;
}

TEST(MoeRoutingGpu, GatherRowsCopiesTheRoutedTokens) {
  SKIP_WITHOUT_GPU();
  for (const WidthCase wc : kWidths) {
    const int tokens = 45, rows = 133;
    const std::int64_t ld = wc.cols + wc.pad;
    SCOPED_TRACE("cols " + std::to_string(wc.cols) + ", ld " + std::to_string(ld));
    const auto x = random_bf16(std::size_t(tokens) * ld, unsigned(wc.cols));
    std::mt19937 rng(5);
    std::vector<int> rt(static_cast<std::size_t>(rows));
    for (auto& t : rt) t = int(rng() % tokens);
    rt[0] = tokens - 1;
    auto dx = upload(x);
    auto drt = upload(rt);
    aipe::DeviceBuffer<bf16> xg(std::size_t(rows) * ld);
    poison(xg, 0xff);
    moe::gather_rows(dx.get(), ld, drt.get(), rows, wc.cols, xg.get(), ld, nullptr);
    AIPE_CUDA(cudaDeviceSynchronize());
    const auto g = aipe::to_host(xg, nullptr);
    int bad = 0;
    for (int r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < ld; ++c) {
        const std::uint16_t want = c < wc.cols ? bits(x[std::size_t(rt[std::size_t(r)] * ld + c)]) : 0xffffu;
        if (bits(g[std::size_t(r * ld + c)]) != want && ++bad <= 5)
          ADD_FAILURE() << "row " << r << ", col " << c << (c < wc.cols ? "" : " (padding: must stay unwritten)")
                        << ": expected bits " << want << ", got " << bits(g[std::size_t(r * ld + c)]);
      }
    EXPECT_EQ(bad, 0);
  }
}

// ---------------------------------------------------------------------------------------------------- combine
enum class Residual { none, separate, in_place };

TEST(MoeRoutingGpu, CombineSumsTheWeightedRowsInFp32) {
  SKIP_WITHOUT_GPU();
  for (const WidthCase wc : kWidths)
    for (const Residual res : {Residual::none, Residual::separate, Residual::in_place}) {
      const int tokens = 29, k = 4, grouped = tokens * k;
      const std::int64_t ld = wc.cols + wc.pad, ld_yg = wc.cols + 2 * wc.pad;
      SCOPED_TRACE("cols " + std::to_string(wc.cols) + ", ld_out " + std::to_string(ld) + ", residual " +
                   (res == Residual::none ? "none" : res == Residual::separate ? "separate" : "out itself"));
      const auto yg = random_bf16(std::size_t(grouped) * ld_yg, 11);
      const auto resid = random_bf16(std::size_t(tokens) * ld, 12);
      // pair_row: a permutation of the grouped rows, with a few dropped pairs.
      std::vector<int> pr(static_cast<std::size_t>(grouped));
      std::iota(pr.begin(), pr.end(), 0);
      std::mt19937 rng(unsigned(wc.cols));
      std::shuffle(pr.begin(), pr.end(), rng);
      pr[3] = pr[17] = pr[std::size_t(grouped) - 1] = -1;
      std::vector<float> w(static_cast<std::size_t>(grouped));
      for (auto& x : w) x = std::uniform_real_distribution<float>(0, 1)(rng);
      auto dyg = upload(yg);
      auto dpr = upload(pr);
      auto dw = upload(w);
      auto dres = upload(resid);
      aipe::DeviceBuffer<bf16> out(std::size_t(tokens) * ld);
      if (res == Residual::in_place) {
        AIPE_CUDA(cudaMemcpy(out.get(), resid.data(), out.bytes(), cudaMemcpyHostToDevice));
      } else {
        poison(out, 0xff);
      }
      const bf16* rp = res == Residual::none ? nullptr : res == Residual::separate ? dres.get() : out.get();
      moe::combine(dyg.get(), ld_yg, dpr.get(), dw.get(), tokens, k, wc.cols, rp, out.get(), ld, nullptr);
      AIPE_CUDA(cudaDeviceSynchronize());
      const auto g = aipe::to_host(out, nullptr);
      int bad = 0;
      for (int t = 0; t < tokens; ++t)
        for (std::int64_t c = 0; c < ld; ++c) {
          const std::size_t i = std::size_t(t * ld + c);
          if (c >= wc.cols) {  // padding: never written
            const std::uint16_t want = res == Residual::in_place ? bits(resid[i]) : 0xffffu;
            if (bits(g[i]) != want && ++bad <= 5) ADD_FAILURE() << "token " << t << ", padding col " << c << " written";
            continue;
          }
          double ref = 0, mag = 0;
          for (int j = 0; j < k; ++j) {
            const int r = pr[std::size_t(t * k + j)];
            if (r < 0) continue;
            const double term = double(w[std::size_t(t * k + j)]) * value(yg[std::size_t(r * ld_yg + c)]);
            ref += term;
            mag += std::abs(term);
          }
          if (res != Residual::none) {
            ref += value(resid[i]);
            mag += std::abs(value(resid[i]));
          }
          // One BF16 rounding (half an ulp, <= 2^-9 relative) over an FP32 sum (a few 2^-24 of the magnitudes).
          const double tol = std::ldexp(std::abs(ref), -8) + 1e-6 * mag + 1e-30;
          if (!(std::abs(value(g[i]) - ref) <= tol) && ++bad <= 5)
            ADD_FAILURE() << "token " << t << ", col " << c << ": expected " << ref << ", got " << value(g[i])
                          << " (tolerance " << tol << ")";
        }
      EXPECT_EQ(bad, 0);
    }
}

// ---------------------------------------------------------------------------------------------------- the path
// topk -> build_routing -> gather -> combine with identity experts (yg = xg), recorded once into a CUDA graph and
// replayed onto poisoned outputs: out = sum_j w_j x[t] + residual, and the routing equals the CPU sort of the ids
// the graph's own top-k wrote.
TEST(MoeRoutingGpu, TheRoutingPathRunsInACudaGraph) {
  SKIP_WITHOUT_GPU();
  const int tokens = 61, experts = 32, k = 4, hidden = 2880;
  const auto logits = random_bf16(std::size_t(tokens) * experts, 21);
  const auto x = random_bf16(std::size_t(tokens) * hidden, 22);
  const auto resid = random_bf16(std::size_t(tokens) * hidden, 23);
  auto dlogits = upload(logits);
  auto dx = upload(x);
  auto dres = upload(resid);
  aipe::DeviceBuffer<bf16> out(std::size_t(tokens) * hidden), xg(std::size_t(tokens) * k * hidden);
  aipe::DeviceBuffer<int> ids(std::size_t(tokens) * k);
  aipe::DeviceBuffer<float> w(std::size_t(tokens) * k);
  DeviceRouting d(tokens, k, experts);
  aipe::Stream s;
  auto step = [&](cudaStream_t st) {
    AIPE_CUDA(cudaMemcpyAsync(out.get(), dres.get(), out.bytes(), cudaMemcpyDeviceToDevice, st));
    moe::topk_softmax(dlogits.get(), experts, tokens, experts, k, ids.get(), w.get(), st);
    moe::build_routing(ids.get(), tokens, k, experts, d.view(), d.workspace.get(), d.workspace.bytes(), d.error.get(),
                       st);
    moe::gather_rows(dx.get(), hidden, d.row_token.get(), tokens * k, hidden, xg.get(), hidden, st);
    moe::combine(xg.get(), hidden, d.pair_row.get(), w.get(), tokens, k, hidden, out.get(), out.get(), hidden, st);
  };
  AIPE_CUDA(cudaStreamSynchronize(s));
  aipe::Graph g = aipe::Graph::capture(s, step);
  const aipe::GraphExec exec(g);
  for (int run = 0; run < 2; ++run) {
    SCOPED_TRACE("graph launch " + std::to_string(run));
    d.poison_all();
    poison(ids, 0x7f);
    poison(w, 0xff);
    poison(xg, 0xff);
    poison(out, 0xff);
    AIPE_CUDA(cudaDeviceSynchronize());
    exec.launch(s);
    AIPE_CUDA(cudaStreamSynchronize(s));
    const auto gi = aipe::to_host(ids, s);
    const auto gw = aipe::to_host(w, s);
    expect_routing(d, routing_reference(gi, tokens, k, experts));
    const auto go = aipe::to_host(out, s);
    int bad = 0;
    for (int t = 0; t < tokens; ++t)
      for (int c = 0; c < hidden; ++c) {
        const std::size_t i = std::size_t(t) * hidden + std::size_t(c);
        double wsum = 0;
        for (int j = 0; j < k; ++j) wsum += gw[std::size_t(t * k + j)];
        const double ref = wsum * value(x[i]) + value(resid[i]);
        const double tol = std::ldexp(std::abs(ref), -8) + 1e-6 * (std::abs(value(x[i])) + std::abs(value(resid[i])));
        if (!(std::abs(value(go[i]) - ref) <= tol) && ++bad <= 5)
          ADD_FAILURE() << "token " << t << ", col " << c << ": expected " << ref << ", got " << value(go[i]);
      }
    EXPECT_EQ(bad, 0);
  }
}

}  // namespace
