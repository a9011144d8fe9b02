// The LLM engine's small kernels on the GPU (RMSNorm, fused add + RMSNorm, RoPE, SwiGLU, embedding, argmax and
// sampling) against CPU references in float64, at awkward sizes (hidden 2049 and 4095 take the 2-byte path, 4096 the
// 16-byte one; 1, 3 and 77 tokens). Outputs are poisoned (0xFF bytes: BF16 NaN, token -1) before each run, so an
// element never written fails; NaN never passes. RoPE works in place: every element is compared with its rotation
// at a position >= 1, which differs from the input, and the V part of the QKV buffer must stay bit-identical.
// Sampling: argmax exactness with planted and BF16-rounding ties, the empirical distribution of 20000 draws against
// the renormalized top-k / top-p / min-p softmax (chi-square; a token outside the kept set fails at once),
// determinism per (seed, counter). Last, achieved bandwidth at engine sizes against the spec DRAM bandwidth.
#include <cuda_bf16.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/device.hpp"
#include "aipe/kernels/embedding.hpp"
#include "aipe/kernels/logits.hpp"
#include "aipe/kernels/norm.hpp"
#include "aipe/kernels/rope.hpp"
#include "aipe/kernels/sampling.hpp"
#include "aipe/kernels/swiglu.hpp"
#include "aipe/measure.hpp"
#include "aipe/random.hpp"

namespace {

namespace k = aipe::kernels;
using bf16 = __nv_bfloat16;

#define SKIP_WITHOUT_GPU()                                                    \
  do {                                                                        \
    if (auto why = aipe::gpu_unavailable_reason()) GTEST_SKIP() << *why;      \
  } while (0)

float bf(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }

// Host values of a device buffer filled by aipe::fill_uniform (BF16-rounded uniform_at).
std::vector<float> bf16_values(std::uint64_t seed, std::size_t n, float lo, float hi) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = bf(aipe::uniform_at(seed, i, lo, hi));
  return v;
}
aipe::DeviceBuffer<bf16> bf16_device(std::uint64_t seed, std::size_t n, float lo, float hi) {
  aipe::DeviceBuffer<bf16> d(n);
  aipe::fill_uniform(d.get(), n, seed, lo, hi, nullptr);
  return d;
}
std::vector<float> to_floats(const aipe::DeviceBuffer<bf16>& d) {
  const std::vector<bf16> h = aipe::to_host(d, nullptr);
  std::vector<float> f(h.size());
  for (std::size_t i = 0; i < h.size(); ++i) f[i] = __bfloat162float(h[i]);
  return f;
}
template <class T>
void poison(aipe::DeviceBuffer<T>& d) {
  AIPE_CUDA(cudaMemset(d.get(), 0xff, d.bytes()));
}
template <class T>
aipe::DeviceBuffer<T> upload(const std::vector<T>& h) {
  aipe::DeviceBuffer<T> d(h.size());
  AIPE_CUDA(cudaMemcpy(d.get(), h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

// Compares out with ref element by element: |out - ref| <= rel |scale| + abs (scale: the magnitude the rounding
// error is relative to; ref itself when not given). Each of the first 5 mismatches is one failure line naming the
// element (`where(i)`: token, head, column; the flat index when not given), expected, actual and tolerance; then one
// line with the count.
void expect_close(const std::vector<float>& out, const std::vector<double>& ref, double rel, double abs,
                  const std::string& what, const std::vector<double>* scale = nullptr,
                  const std::function<std::string(std::size_t)>& where = {}) {
  if (out.size() != ref.size()) {
    ADD_FAILURE() << what << ": " << out.size() << " outputs, " << ref.size() << " reference values";
    return;
  }
  std::size_t bad = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    const double s = scale ? (*scale)[i] : ref[i];
    const double tol = rel * std::abs(s) + abs;
    if (!(std::abs(double(out[i]) - ref[i]) <= tol) && ++bad <= 5)  // NaN fails
      ADD_FAILURE() << what << ": " << (where ? where(i) : "element " + std::to_string(i)) << ": expected " << ref[i]
                    << ", got " << out[i] << " (tolerance " << tol << ")";
  }
  if (bad) ADD_FAILURE() << what << ": " << bad << " of " << out.size() << " elements differ";
}

// "token t, column c" of a [tokens][cols] tensor.
std::function<std::string(std::size_t)> token_col(int cols) {
  return [cols](std::size_t i) {
    return "token " + std::to_string(i / std::size_t(cols)) + ", column " + std::to_string(i % std::size_t(cols));
  };
}

// ---------------------------------------------------------------------------------------------------- RMSNorm
constexpr double kBf16Ulp = 1.0 / 128;  // BF16 has 8 significant bits: one ulp <= 2^-7 relative

struct NormCase {
  int tokens, hidden;
};
const NormCase kNormCases[] = {{1, 2049}, {3, 4095}, {77, 4096}, {3, 64}, {77, 2049}, {1, 8192}};

std::vector<double> rmsnorm_ref(const std::vector<float>& x, const std::vector<float>& w, int tokens, int hidden,
                                double eps) {
  std::vector<double> y(x.size());
  for (int t = 0; t < tokens; ++t) {
    double ss = 0;
    for (int i = 0; i < hidden; ++i) ss += double(x[std::size_t(t) * hidden + i]) * x[std::size_t(t) * hidden + i];
    const double inv = 1.0 / std::sqrt(ss / hidden + eps);
    for (int i = 0; i < hidden; ++i)
      y[std::size_t(t) * hidden + i] = double(x[std::size_t(t) * hidden + i]) * inv * w[std::size_t(i)];
  }
  return y;
}

TEST(LlmKernels, RmsNormMatchesFloat64) {
  SKIP_WITHOUT_GPU();
  for (const NormCase c : kNormCases) {
    SCOPED_TRACE("tokens " + std::to_string(c.tokens) + ", hidden " + std::to_string(c.hidden));
    const std::size_t n = std::size_t(c.tokens) * c.hidden;
    auto x = bf16_device(11, n, -2.f, 2.f);
    auto w = bf16_device(12, std::size_t(c.hidden), 0.5f, 1.5f);
    aipe::DeviceBuffer<bf16> y(n);
    poison(y);
    k::rmsnorm(x.get(), w.get(), y.get(), c.tokens, c.hidden, 1e-5f);
    AIPE_CUDA(cudaDeviceSynchronize());
    const auto ref = rmsnorm_ref(bf16_values(11, n, -2.f, 2.f), bf16_values(12, std::size_t(c.hidden), 0.5f, 1.5f),
                                 c.tokens, c.hidden, 1e-5);
    expect_close(to_floats(y), ref, kBf16Ulp, 1e-6, "rmsnorm y", nullptr, token_col(c.hidden));
  }
}

TEST(LlmKernels, RmsNormUnalignedRowsTakeTheScalarPath) {
  SKIP_WITHOUT_GPU();
  const int tokens = 3, hidden = 4096;
  const std::size_t n = std::size_t(tokens) * hidden;
  auto x = bf16_device(13, n + 1, -2.f, 2.f);  // x + 1: 2-byte aligned only
  auto w = bf16_device(14, std::size_t(hidden), 0.5f, 1.5f);
  aipe::DeviceBuffer<bf16> y(n);
  poison(y);
  k::rmsnorm(x.get() + 1, w.get(), y.get(), tokens, hidden, 1e-6f);
  AIPE_CUDA(cudaDeviceSynchronize());
  auto xs = bf16_values(13, n + 1, -2.f, 2.f);
  xs.erase(xs.begin());
  expect_close(to_floats(y), rmsnorm_ref(xs, bf16_values(14, std::size_t(hidden), 0.5f, 1.5f), tokens, hidden, 1e-6),
               kBf16Ulp, 1e-6, "rmsnorm y (x 2-byte aligned)", nullptr, token_col(hidden));
}

TEST(LlmKernels, FusedAddRmsNormUpdatesTheResidualAndNormalizesTheSum) {
  SKIP_WITHOUT_GPU();
  for (const NormCase c : kNormCases) {
    for (const bool in_place : {false, true}) {  // in place: y is the delta buffer (vLLM's calling convention)
      SCOPED_TRACE("tokens " + std::to_string(c.tokens) + ", hidden " + std::to_string(c.hidden) +
                   (in_place ? ", y = delta" : ""));
      const std::size_t n = std::size_t(c.tokens) * c.hidden;
      auto h = bf16_device(21, n, -2.f, 2.f);
      auto d = bf16_device(22, n, -1.f, 1.f);
      auto w = bf16_device(23, std::size_t(c.hidden), 0.5f, 1.5f);
      aipe::DeviceBuffer<bf16> y(in_place ? 0 : n);
      if (!in_place) poison(y);
      bf16* yp = in_place ? d.get() : y.get();
      k::fused_add_rmsnorm(h.get(), d.get(), w.get(), yp, c.tokens, c.hidden, 1e-5f);
      AIPE_CUDA(cudaDeviceSynchronize());
      const auto hv = bf16_values(21, n, -2.f, 2.f), dv = bf16_values(22, n, -1.f, 1.f);
      std::vector<float> sum(n);
      std::vector<double> sum_d(n);
      for (std::size_t i = 0; i < n; ++i) sum_d[i] = sum[i] = bf(hv[i] + dv[i]);  // FP32 add, one BF16 rounding
      expect_close(to_floats(h), sum_d, 0.0, 0.0, "residual stream hidden = bf16(hidden + delta)", nullptr,
                   token_col(c.hidden));
      const auto ref = rmsnorm_ref(sum, bf16_values(23, std::size_t(c.hidden), 0.5f, 1.5f), c.tokens, c.hidden, 1e-5);
      expect_close(to_floats(in_place ? d : y), ref, kBf16Ulp, 1e-6, "fused rmsnorm y", nullptr, token_col(c.hidden));
    }
  }
}

// ---------------------------------------------------------------------------------------------------- RoPE
struct RopeCase {
  const char* name;
  k::RopeConfig config;
  int tokens, heads, kv_heads, pad;  // pad: extra elements per token row (pad % 8 != 0: the 2-byte path)
};

void run_rope_case(const RopeCase& c) {
  SCOPED_TRACE(std::string(c.name) + ", tokens " + std::to_string(c.tokens) + ", pad " + std::to_string(c.pad));
  const int d = c.config.dim, half = d / 2, max_pos = 3000;
  const auto freqs = k::rope_frequencies(c.config);
  const k::RopeTable table(freqs, max_pos);
  // Fused QKV rows: [q heads][k heads][v heads][pad], as the QKV GEMM writes them.
  const std::int64_t stride = std::int64_t(c.heads + 2 * c.kv_heads) * d + c.pad;
  const std::size_t n = std::size_t(c.tokens) * std::size_t(stride);
  auto qkv = bf16_device(31, n, -2.f, 2.f);
  std::vector<int> pos(static_cast<std::size_t>(c.tokens));
  for (int t = 0; t < c.tokens; ++t) pos[std::size_t(t)] = 1 + int(aipe::bits_at(32, std::uint64_t(t)) % (max_pos - 1));
  pos[0] = max_pos - 1;  // the table's last row
  auto dpos = upload(pos);
  aipe::DeviceBuffer<int> error(1);
  AIPE_CUDA(cudaMemset(error.get(), 0, sizeof(int)));
  k::apply_rope(k::RopeArgs{.q = qkv.get(), .q_stride = stride, .heads = c.heads,
                            .k = qkv.get() + std::int64_t(c.heads) * d, .k_stride = stride, .kv_heads = c.kv_heads,
                            .positions = dpos.get(), .tokens = c.tokens, .error = error.get()},
                table);
  AIPE_CUDA(cudaDeviceSynchronize());
  EXPECT_EQ(aipe::to_host(error, nullptr)[0], 0);

  // The table: cos/sin of the FP32 angle p * inv_freq[j], times the attention scaling.
  std::vector<float2> tab(static_cast<std::size_t>(max_pos) * half);
  AIPE_CUDA(cudaMemcpy(tab.data(), table.data(), tab.size() * sizeof(float2), cudaMemcpyDeviceToHost));
  std::size_t table_bad = 0;
  for (int p = 0; p < max_pos; ++p)
    for (int j = 0; j < half; ++j) {
      const double a = double(float(p) * freqs.inv_freq[std::size_t(j)]);
      const float2 v = tab[std::size_t(p) * half + j];
      if (!(std::abs(v.x - std::cos(a) * freqs.attention_scaling) <= 1e-6 &&
            std::abs(v.y - std::sin(a) * freqs.attention_scaling) <= 1e-6) && ++table_bad <= 3)
        ADD_FAILURE() << "table[" << p << "][" << j << "] = (" << v.x << ", " << v.y << "), expected ("
                      << std::cos(a) * freqs.attention_scaling << ", " << std::sin(a) * freqs.attention_scaling << ")";
    }
  EXPECT_EQ(table_bad, 0u);

  const auto in = bf16_values(31, n, -2.f, 2.f);
  const auto out = to_floats(qkv);
  std::vector<double> ref(n), scale(n);
  for (int t = 0; t < c.tokens; ++t) {
    const std::size_t row = std::size_t(t) * std::size_t(stride);
    for (std::int64_t e = 0; e < stride; ++e) ref[row + e] = in[row + e], scale[row + e] = 0;  // V, pad: unchanged
    const int p = pos[std::size_t(t)];
    for (int h = 0; h < c.heads + c.kv_heads; ++h) {
      const std::size_t base = row + std::size_t(h) * d;
      for (int j = 0; j < half; ++j) {
        const double a = double(float(p) * freqs.inv_freq[std::size_t(j)]);
        const double cs = std::cos(a) * freqs.attention_scaling, sn = std::sin(a) * freqs.attention_scaling;
        const double x1 = in[base + j], x2 = in[base + half + j];
        ref[base + j] = x1 * cs - x2 * sn;
        ref[base + half + j] = x2 * cs + x1 * sn;
        // Each output's rounding is relative to the size of its own two products.
        scale[base + j] = std::abs(x1 * cs) + std::abs(x2 * sn);
        scale[base + half + j] = std::abs(x2 * cs) + std::abs(x1 * sn);
      }
    }
  }
  expect_close(out, ref, kBf16Ulp, 1e-6, "rope q/k", &scale, [&](std::size_t i) {
    const std::size_t t = i / std::size_t(stride), e = i % std::size_t(stride);
    const std::size_t h = e / std::size_t(d), col = e % std::size_t(d);
    const int heads_all = c.heads + c.kv_heads;
    std::string part = h < std::size_t(c.heads) ? "q head " + std::to_string(h)
                       : h < std::size_t(heads_all) ? "k head " + std::to_string(h - std::size_t(c.heads))
                       : "v/pad";
    return "token " + std::to_string(t) + " (position " + std::to_string(pos[t]) + "), " + part + ", column " +
           std::to_string(col);
  });
}

k::RopeConfig llama31() {
  return k::RopeConfig{.type = k::RopeType::llama3, .theta = 500000.0, .dim = 128, .factor = 8.0,
                       .original_max_positions = 8192, .low_freq_factor = 1.0, .high_freq_factor = 4.0};
}
k::RopeConfig gpt_oss() {
  return k::RopeConfig{.type = k::RopeType::yarn, .theta = 150000.0, .dim = 64, .factor = 32.0,
                       .original_max_positions = 4096, .beta_fast = 32.0, .beta_slow = 1.0, .truncate = false};
}

TEST(LlmKernels, RopeLlama3NeoxLayoutMatchesFloat64) {
  SKIP_WITHOUT_GPU();
  for (const int tokens : {1, 3, 77})
    for (const int pad : {0, 4}) run_rope_case({"llama3 d128, 5 q + 2 kv heads", llama31(), tokens, 5, 2, pad});
}

TEST(LlmKernels, RopeYarnAndPlainThetaD64) {
  SKIP_WITHOUT_GPU();
  for (const int tokens : {1, 77}) {
    run_rope_case({"yarn (gpt-oss) d64, 7 q + 1 kv heads", gpt_oss(), tokens, 7, 1, 0});
    run_rope_case({"yarn (gpt-oss) d64, 2-byte path", gpt_oss(), tokens, 7, 1, 6});
    run_rope_case({"plain theta 10000 d64, Q only", k::RopeConfig{.theta = 10000.0, .dim = 64}, tokens, 3, 0, 0});
  }
}

TEST(LlmKernels, RopePositionOutsideTheTableSetsTheFlagAndLeavesTheTokenAlone) {
  SKIP_WITHOUT_GPU();
  const int d = 128, heads = 2, tokens = 3;
  const k::RopeTable table(k::rope_frequencies(llama31()), 100);
  const std::size_t n = std::size_t(tokens) * heads * d;
  auto q = bf16_device(41, n, -2.f, 2.f);
  for (const int bad_pos : {-1, 100}) {
    AIPE_CUDA(cudaMemcpy(q.get(), bf16_device(41, n, -2.f, 2.f).get(), n * sizeof(bf16), cudaMemcpyDeviceToDevice));
    auto pos = upload(std::vector<int>{5, bad_pos, 7});
    aipe::DeviceBuffer<int> error(1);
    AIPE_CUDA(cudaMemset(error.get(), 0, sizeof(int)));
    k::apply_rope(k::RopeArgs{.q = q.get(), .q_stride = heads * d, .heads = heads, .positions = pos.get(),
                              .tokens = tokens, .error = error.get()},
                  table);
    AIPE_CUDA(cudaDeviceSynchronize());
    EXPECT_EQ(aipe::to_host(error, nullptr)[0], 1) << "position " << bad_pos;
    const auto out = to_floats(q), in = bf16_values(41, n, -2.f, 2.f);
    for (int i = 0; i < heads * d; ++i)
      ASSERT_EQ(out[std::size_t(heads * d + i)], in[std::size_t(heads * d + i)]) << "token 1 element " << i;
    EXPECT_NE(out[0], in[0]) << "token 0 (position 5) must still be rotated";
  }
}

// ---------------------------------------------------------------------------------------------------- SwiGLU
TEST(LlmKernels, SwiGluOfFusedGateUpMatchesFloat64) {
  SKIP_WITHOUT_GPU();
  for (const int tokens : {1, 3, 77})
    for (const int inter : {2049, 4095, 4096, 64}) {
      SCOPED_TRACE("tokens " + std::to_string(tokens) + ", inter " + std::to_string(inter));
      const std::size_t n = std::size_t(tokens) * inter;
      auto gu = bf16_device(51, 2 * n, -4.f, 4.f);
      aipe::DeviceBuffer<bf16> out(n);
      poison(out);
      k::swiglu(gu.get(), out.get(), tokens, inter);
      AIPE_CUDA(cudaDeviceSynchronize());
      const auto g = bf16_values(51, 2 * n, -4.f, 4.f);
      std::vector<double> ref(n);
      for (int t = 0; t < tokens; ++t)
        for (int i = 0; i < inter; ++i) {
          const double gate = g[std::size_t(t) * 2 * inter + i], up = g[std::size_t(t) * 2 * inter + inter + i];
          ref[std::size_t(t) * inter + i] = gate / (1 + std::exp(-gate)) * up;
        }
      expect_close(to_floats(out), ref, kBf16Ulp, 1e-6, "swiglu out", nullptr, token_col(inter));
    }
}

// gpt-oss's clamped SwiGLU on interleaved gate/up columns. Inputs in [-10, 10] cross both clamps (limit 7) on
// either side; inter 2880 (gpt-oss) takes the 16-byte path, 2049 and 77 the 2-byte one, as does a gate_up base
// 2 bytes off alignment.
TEST(LlmKernels, ClampedSwiGluOfInterleavedGateUpMatchesFloat64) {
  SKIP_WITHOUT_GPU();
  const k::ClampedSwiglu act{.alpha = 1.702f, .limit = 7.0f};
  for (const int rows : {1, 3, 77})
    for (const int inter : {2880, 2049, 77, 64})
      for (const int shift : {0, 1}) {
        SCOPED_TRACE("rows " + std::to_string(rows) + ", inter " + std::to_string(inter) + ", shift " +
                     std::to_string(shift));
        const std::size_t n = std::size_t(rows) * inter;
        auto gu = bf16_device(53, 2 * n + 1, -10.f, 10.f);
        aipe::DeviceBuffer<bf16> out(n);
        poison(out);
        k::swiglu_clamped_interleaved(gu.get() + shift, out.get(), rows, inter, act);
        AIPE_CUDA(cudaDeviceSynchronize());
        const auto g = bf16_values(53, 2 * n + 1, -10.f, 10.f);
        std::vector<double> ref(n);
        for (int r = 0; r < rows; ++r)
          for (int i = 0; i < inter; ++i) {
            const std::size_t at = shift + std::size_t(r) * 2 * inter + 2 * std::size_t(i);
            const double gate = std::min<double>(g[at], 7.0), up = std::clamp<double>(g[at + 1], -7.0, 7.0);
            ref[std::size_t(r) * inter + i] = (up + 1) * gate / (1 + std::exp(-1.702 * gate));
          }
        expect_close(to_floats(out), ref, kBf16Ulp, 1e-6, "clamped swiglu out", nullptr, token_col(inter));
      }
}

// ---------------------------------------------------------------------------------------------------- embedding
TEST(LlmKernels, EmbeddingGathersRowsAndFlagsBadIds) {
  SKIP_WITHOUT_GPU();
  const int vocab = 1000;
  for (const int hidden : {2049, 4096})
    for (const int tokens : {1, 3, 77}) {
      for (const bool with_bad : {false, true}) {
        SCOPED_TRACE("hidden " + std::to_string(hidden) + ", tokens " + std::to_string(tokens) +
                     (with_bad ? ", bad ids" : ""));
        auto table = bf16_device(61, std::size_t(vocab) * hidden, -1.f, 1.f);
        std::vector<int> ids(static_cast<std::size_t>(tokens));
        for (int t = 0; t < tokens; ++t) ids[std::size_t(t)] = int(aipe::bits_at(62, std::uint64_t(t)) % vocab);
        ids[0] = vocab - 1;
        if (with_bad) {
          ids[std::size_t(tokens - 1)] = tokens % 2 ? vocab : -1;
          if (tokens > 2) ids[1] = 1 << 30;
        }
        auto dids = upload(ids);
        aipe::DeviceBuffer<bf16> out(static_cast<std::size_t>(tokens) * hidden);
        poison(out);
        aipe::DeviceBuffer<int> error(1);
        AIPE_CUDA(cudaMemset(error.get(), 0, sizeof(int)));
        k::embedding(dids.get(), table.get(), out.get(), error.get(), tokens, vocab, hidden);
        AIPE_CUDA(cudaDeviceSynchronize());
        EXPECT_EQ(aipe::to_host(error, nullptr)[0], with_bad ? 1 : 0);
        const auto tv = bf16_values(61, std::size_t(vocab) * hidden, -1.f, 1.f);
        std::vector<double> ref(static_cast<std::size_t>(tokens) * hidden);
        for (int t = 0; t < tokens; ++t) {
          const int id = ids[std::size_t(t)];
          for (int i = 0; i < hidden; ++i)
            ref[std::size_t(t) * hidden + i] = (id >= 0 && id < vocab) ? tv[std::size_t(id) * hidden + i] : 0.0;
        }
        expect_close(to_floats(out), ref, 0.0, 0.0, "embedding out", nullptr, token_col(hidden));
      }
    }
}

// ---------------------------------------------------------------------------------------------------- sampling
template <class T>
T from_float(float v);
template <>
float from_float<float>(float v) { return v; }
template <>
bf16 from_float<bf16>(float v) { return __float2bfloat16_rn(v); }
template <class T>
float as_float(T v) { return float(v); }
template <>
float as_float<bf16>(bf16 v) { return __bfloat162float(v); }

// Ties to the lowest index; NaN ignored.
template <class T>
int host_argmax(const T* row, int vocab) {
  int best = 0;
  float bv = -INFINITY;
  bool any = false;
  for (int i = 0; i < vocab; ++i) {
    const float v = as_float(row[i]);
    if (std::isnan(v)) continue;
    if (!any || v > bv) bv = v, best = i, any = true;
  }
  return best;
}

template <class T>
void argmax_case(int vocab, std::int64_t ld, int batch) {
  SCOPED_TRACE(std::string(sizeof(T) == 4 ? "fp32" : "bf16") + ", vocab " + std::to_string(vocab) + ", ld " +
               std::to_string(ld));
  std::vector<T> h(static_cast<std::size_t>(batch) * ld, from_float<T>(0.f));
  for (int r = 0; r < batch; ++r)
    for (int i = 0; i < vocab; ++i)
      h[std::size_t(r) * ld + i] = from_float<T>(aipe::uniform_at(71 + r, std::uint64_t(i), -10.f, 10.f));
  // Row 1: a planted tie above everything (lowest index wins); row 2: NaNs around the maximum; row 3: all -inf.
  if (batch > 1 && vocab > 3) {
    h[std::size_t(ld) + vocab - 1] = from_float<T>(50.f);
    h[std::size_t(ld) + vocab / 2] = from_float<T>(50.f);
  }
  if (batch > 2 && vocab > 3) {
    h[2 * std::size_t(ld) + 0] = from_float<T>(NAN);
    h[2 * std::size_t(ld) + vocab - 1] = from_float<T>(NAN);
  }
  if (batch > 3)
    for (int i = 0; i < vocab; ++i) h[3 * std::size_t(ld) + i] = from_float<T>(-INFINITY);
  auto d = upload(h);
  aipe::DeviceBuffer<int> tok(static_cast<std::size_t>(batch));
  poison(tok);
  k::argmax(d.get(), ld, batch, vocab, tok.get());
  const auto got = aipe::to_host(tok, nullptr);
  for (int r = 0; r < batch; ++r)
    EXPECT_EQ(got[std::size_t(r)], host_argmax(h.data() + std::size_t(r) * ld, vocab)) << "row " << r;
  // Temperature 0 in sample() is the same argmax.
  std::vector<k::SamplingParams> ps(static_cast<std::size_t>(batch), k::SamplingParams{.temperature = 0.f, .top_k = 5});
  auto dp = upload(ps);
  poison(tok);
  k::sample(d.get(), ld, batch, vocab, dp.get(), tok.get());
  const auto got0 = aipe::to_host(tok, nullptr);
  EXPECT_EQ(got0, got) << "temperature 0 must be the argmax";
}

TEST(LlmKernels, ArgmaxIsExactWithTiesToTheLowestIndex) {
  SKIP_WITHOUT_GPU();
  for (const int vocab : {128256, 201088, 77, 1}) {
    argmax_case<float>(vocab, vocab, 5);
    argmax_case<bf16>(vocab, vocab, 5);  // BF16 rounding makes hundreds of logits tie at the top
  }
  argmax_case<float>(128256, 128257, 4);  // rows 4-byte aligned only: the element-by-element path
  argmax_case<bf16>(4095, 4099, 4);
}

// The expected distribution: softmax(logits / T) restricted by top-k, then top-p (of the renormalized rest),
// then min-p, renormalized. Also returns the smallest distance of a top-p partial sum to the threshold, so a test
// can make sure its logits do not sit on the boundary.
std::vector<double> expected_probs(const std::vector<float>& logits, const k::SamplingParams& p, double* margin) {
  const int n = int(logits.size());
  std::vector<double> z(static_cast<std::size_t>(n));
  double zmax = -INFINITY;
  for (int i = 0; i < n; ++i) z[std::size_t(i)] = double(logits[std::size_t(i)]) / p.temperature, zmax = std::max(zmax, z[std::size_t(i)]);
  std::vector<double> e(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) e[std::size_t(i)] = std::exp(z[std::size_t(i)] - zmax);
  std::vector<int> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return z[std::size_t(a)] > z[std::size_t(b)]; });
  std::vector<bool> keep(static_cast<std::size_t>(n), true);
  if (p.top_k > 0 && p.top_k < n) {
    const double kth = z[std::size_t(order[std::size_t(p.top_k - 1)])];  // ties with the k-th value are all kept
    for (int i = 0; i < n; ++i) keep[std::size_t(i)] = z[std::size_t(i)] >= kth;
  }
  *margin = 1.0;
  if (p.top_p < 1.f) {
    double total = 0;
    for (int i = 0; i < n; ++i) total += keep[std::size_t(i)] ? e[std::size_t(i)] : 0;
    // above: the kept mass of strictly larger z (tied tokens share it: all kept or all removed, as in the kernel).
    double above = 0, group = 0, group_z = INFINITY;
    for (int r = 0; r < n; ++r) {
      const int i = order[std::size_t(r)];
      if (!keep[std::size_t(i)]) continue;
      if (z[std::size_t(i)] != group_z) above += group, group = 0, group_z = z[std::size_t(i)];
      *margin = std::min(*margin, std::abs(above / total - p.top_p));
      if (above / total >= p.top_p) keep[std::size_t(i)] = false;  // the kept mass above it already reaches top_p
      group += e[std::size_t(i)];
    }
  }
  for (int i = 0; i < n; ++i)
    if (e[std::size_t(i)] < p.min_p) keep[std::size_t(i)] = false;  // e = p / max p
  double s = 0;
  for (int i = 0; i < n; ++i) s += keep[std::size_t(i)] ? e[std::size_t(i)] : 0;
  std::vector<double> q(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) q[std::size_t(i)] = keep[std::size_t(i)] ? e[std::size_t(i)] / s : 0.0;
  return q;
}

template <class T>
void distribution_case(const char* name, const k::SamplingParams& base, int vocab, int draws) {
  SCOPED_TRACE(std::string(name) + (sizeof(T) == 4 ? ", fp32" : ", bf16") + ", vocab " + std::to_string(vocab));
  std::vector<float> logits(static_cast<std::size_t>(vocab));
  for (int i = 0; i < vocab; ++i) logits[std::size_t(i)] = as_float(from_float<T>(aipe::uniform_at(81, std::uint64_t(i), -3.f, 3.f)));
  double margin = 0;
  const auto q = expected_probs(logits, base, &margin);
  ASSERT_GT(margin, 1e-3) << "these logits put a token on the top-p boundary; pick another seed";
  // draws rows of the same logits, each its own seed (row r: seed 1000 + r, counter 7).
  std::vector<T> h(static_cast<std::size_t>(draws) * vocab);
  for (int r = 0; r < draws; ++r)
    for (int i = 0; i < vocab; ++i) h[std::size_t(r) * vocab + i] = from_float<T>(logits[std::size_t(i)]);
  std::vector<k::SamplingParams> ps(static_cast<std::size_t>(draws), base);
  for (int r = 0; r < draws; ++r) ps[std::size_t(r)].seed = 1000 + std::uint64_t(r), ps[std::size_t(r)].counter = 7;
  auto d = upload(h);
  auto dp = upload(ps);
  aipe::DeviceBuffer<int> tok(static_cast<std::size_t>(draws));
  poison(tok);
  k::sample(d.get(), vocab, draws, vocab, dp.get(), tok.get());
  const auto got = aipe::to_host(tok, nullptr);
  std::vector<double> count(static_cast<std::size_t>(vocab), 0);
  for (int r = 0; r < draws; ++r) {
    const int t = got[std::size_t(r)];
    ASSERT_TRUE(t >= 0 && t < vocab) << "row " << r << " drew token " << t;
    ASSERT_GT(q[std::size_t(t)], 0.0) << "row " << r << " drew token " << t << ", which the filters remove";
    count[std::size_t(t)] += 1;
  }
  double chi2 = 0;
  int kept = 0;
  for (int i = 0; i < vocab; ++i) {
    if (q[std::size_t(i)] == 0) continue;
    ++kept;
    const double e = q[std::size_t(i)] * draws;
    chi2 += (count[std::size_t(i)] - e) * (count[std::size_t(i)] - e) / e;
  }
  // Chi-square with kept - 1 degrees of freedom: mean dof, standard deviation sqrt(2 dof). The bound is 6 standard
  // deviations above the mean (a false alarm about once in 10^7 runs); a wrong temperature, an off-by-one top-k or a
  // missing renormalization gives values in the hundreds or thousands at 20000 draws.
  const double dof = std::max(1, kept - 1);
  const double bound = dof + 6 * std::sqrt(2 * dof) + 6;
  EXPECT_LE(chi2, bound) << kept << " tokens kept";
  std::printf("  [%s] %d kept, chi2 %.1f (bound %.1f)\n", name, kept, chi2, bound);
}

TEST(LlmKernels, SamplingDistributionMatchesTheFilteredSoftmax) {
  SKIP_WITHOUT_GPU();
  const int draws = 20000;
  distribution_case<float>("T 1", k::SamplingParams{.temperature = 1.f}, 50, draws);
  distribution_case<float>("T 0.7, top-k 10", k::SamplingParams{.temperature = 0.7f, .top_k = 10}, 50, draws);
  distribution_case<float>("T 1.3, top-p 0.8", k::SamplingParams{.temperature = 1.3f, .top_p = 0.8f}, 50, draws);
  distribution_case<float>("T 1, top-k 20, top-p 0.9, min-p 0.05",
                           k::SamplingParams{.temperature = 1.f, .top_k = 20, .top_p = 0.9f, .min_p = 0.05f}, 50, draws);
  distribution_case<float>("T 0.9, min-p 0.2", k::SamplingParams{.temperature = 0.9f, .min_p = 0.2f}, 77, draws);
  distribution_case<bf16>("T 0.8, top-k 30, top-p 0.95", k::SamplingParams{.temperature = 0.8f, .top_k = 30, .top_p = 0.95f},
                          61, draws);
}

// At the Llama 3 and gpt-oss vocabularies: every draw lies in the host's kept set; same (seed, counter) -> same token;
// another counter -> another stream.
template <class T>
void large_vocab_case(int vocab, const k::SamplingParams& base) {
  SCOPED_TRACE(std::string(sizeof(T) == 4 ? "fp32" : "bf16") + ", vocab " + std::to_string(vocab) + ", top-k " +
               std::to_string(base.top_k) + ", top-p " + std::to_string(base.top_p));
  const int rows = 64;
  std::vector<float> logits(static_cast<std::size_t>(vocab));
  for (int i = 0; i < vocab; ++i) logits[std::size_t(i)] = as_float(from_float<T>(aipe::uniform_at(91, std::uint64_t(i), -8.f, 8.f)));
  // A peaked head, as a trained model's logits have: 40 tokens well above the rest.
  for (int j = 0; j < 40; ++j) logits[std::size_t((j * 7919) % vocab)] = as_float(from_float<T>(14.f - 0.1f * j));
  double margin = 0;
  const auto q = expected_probs(logits, base, &margin);
  std::vector<T> h(static_cast<std::size_t>(rows) * vocab);
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < vocab; ++i) h[std::size_t(r) * vocab + i] = from_float<T>(logits[std::size_t(i)]);
  auto d = upload(h);
  std::vector<k::SamplingParams> ps(static_cast<std::size_t>(rows), base);
  for (int r = 0; r < rows; ++r) ps[std::size_t(r)].seed = 5 + std::uint64_t(r / 2);  // pairs of rows share a seed
  auto dp = upload(ps);
  aipe::DeviceBuffer<int> tok(static_cast<std::size_t>(rows));
  poison(tok);
  k::sample(d.get(), vocab, rows, vocab, dp.get(), tok.get());
  const auto a = aipe::to_host(tok, nullptr);
  poison(tok);
  k::sample(d.get(), vocab, rows, vocab, dp.get(), tok.get());
  const auto b = aipe::to_host(tok, nullptr);
  EXPECT_EQ(a, b) << "the same (logits, seed, counter) must give the same tokens";
  for (int r = 0; r < rows; ++r) {
    ASSERT_TRUE(a[std::size_t(r)] >= 0 && a[std::size_t(r)] < vocab) << "row " << r << ": " << a[std::size_t(r)];
    if (margin > 1e-4) EXPECT_GT(q[std::size_t(a[std::size_t(r)])], 0.0) << "row " << r << " drew a filtered token " << a[std::size_t(r)];
    if (r % 2) EXPECT_EQ(a[std::size_t(r)], a[std::size_t(r - 1)]) << "rows " << r - 1 << " and " << r << " share a seed";
  }
  for (auto& p : ps) p.counter = 1;
  auto dp1 = upload(ps);
  poison(tok);
  k::sample(d.get(), vocab, rows, vocab, dp1.get(), tok.get());
  const auto c = aipe::to_host(tok, nullptr);
  EXPECT_NE(a, c) << "another counter must draw other tokens somewhere in 64 rows";
}

TEST(LlmKernels, SamplingAtLlamaAndGptOssVocabulariesIsInTheKeptSetAndDeterministic) {
  SKIP_WITHOUT_GPU();
  large_vocab_case<float>(128256, k::SamplingParams{.temperature = 1.f, .top_k = 50});
  large_vocab_case<float>(128256, k::SamplingParams{.temperature = 0.8f, .top_p = 0.9f});
  large_vocab_case<bf16>(201088, k::SamplingParams{.temperature = 1.f, .top_k = 20, .top_p = 0.95f, .min_p = 0.01f});
  large_vocab_case<float>(201088, k::SamplingParams{.temperature = 1.2f});
}

TEST(LlmKernels, SamplingInvalidParamsGiveMinusOne) {
  SKIP_WITHOUT_GPU();
  const int vocab = 100;
  std::vector<float> h(static_cast<std::size_t>(4) * vocab, 0.5f);
  auto d = upload(h);
  auto dp = upload(std::vector<k::SamplingParams>{{.temperature = -1.f}, {.top_p = 0.f}, {.top_k = -2}, {.min_p = 2.f}});
  aipe::DeviceBuffer<int> tok(4);
  k::sample(d.get(), vocab, 4, vocab, dp.get(), tok.get());
  EXPECT_EQ(aipe::to_host(tok, nullptr), (std::vector<int>{-1, -1, -1, -1}));
}

// ---------------------------------------------------------------------------------------------------- logits
template <class T>
void logits_case(int batch, int vocab, std::int64_t ld) {
  SCOPED_TRACE(std::string(sizeof(T) == 4 ? "fp32" : "bf16") + ", batch " + std::to_string(batch) + ", vocab " +
               std::to_string(vocab) + ", ld " + std::to_string(ld));
  std::vector<T> h(static_cast<std::size_t>(batch * ld), from_float<T>(0.f));
  for (int r = 0; r < batch; ++r)
    for (int i = 0; i < vocab; ++i)
      h[std::size_t(r) * ld + i] = from_float<T>(aipe::uniform_at(101 + r, std::uint64_t(i), -60.f, 60.f));
  auto d = upload(h);
  const float cap = 30.f;
  k::softcap(d.get(), ld, batch, vocab, cap);
  std::vector<T> capped(h.size());
  AIPE_CUDA(cudaMemcpy(capped.data(), d.get(), h.size() * sizeof(T), cudaMemcpyDeviceToHost));
  std::vector<float> got_cap;
  std::vector<double> ref_cap;
  for (int r = 0; r < batch; ++r)
    for (int i = 0; i < vocab; ++i) {
      got_cap.push_back(as_float(capped[std::size_t(r) * ld + i]));
      ref_cap.push_back(cap * std::tanh(double(as_float(h[std::size_t(r) * ld + i])) / cap));
    }
  expect_close(got_cap, ref_cap, sizeof(T) == 4 ? 1e-6 : kBf16Ulp, 1e-6, "softcap", nullptr, token_col(vocab));
  aipe::DeviceBuffer<float> out(static_cast<std::size_t>(batch * ld));
  poison(out);
  k::log_softmax(d.get(), ld, batch, vocab, out.get(), ld);
  const auto o = aipe::to_host(out, nullptr);
  std::vector<float> got;
  std::vector<double> ref;
  for (int r = 0; r < batch; ++r) {
    double m = -INFINITY, s = 0;
    for (int i = 0; i < vocab; ++i) m = std::max(m, double(as_float(capped[std::size_t(r) * ld + i])));
    for (int i = 0; i < vocab; ++i) s += std::exp(double(as_float(capped[std::size_t(r) * ld + i])) - m);
    for (int i = 0; i < vocab; ++i) {
      got.push_back(o[std::size_t(r) * ld + i]);
      ref.push_back(double(as_float(capped[std::size_t(r) * ld + i])) - m - std::log(s));
    }
  }
  // FP32: the log-sum-exp of 10^5 terms carries a few 1e-7 relative; the output is z - lse, |z - lse| < 100.
  expect_close(got, ref, 1e-6, 2e-5, "log_softmax", nullptr, token_col(vocab));
}

TEST(LlmKernels, SoftcapAndLogSoftmaxMatchFloat64) {
  SKIP_WITHOUT_GPU();
  logits_case<float>(3, 4095, 4095);
  logits_case<bf16>(3, 4095, 4100);
  logits_case<float>(1, 128256, 128256);
  logits_case<bf16>(2, 201088, 201088);
}

// ---------------------------------------------------------------------------------------------------- graphs
// The engine captures its decode step as a CUDA graph: the kernels must capture (no allocation, no synchronization)
// and replay to the same bits as the eager calls.
TEST(LlmKernels, DecodeStepKernelsCaptureIntoAGraphAndReplayIdentically) {
  SKIP_WITHOUT_GPU();
  const int tokens = 3, hidden = 4096, inter = 1024, heads = 4, kv = 2, d = 128, vocab = 32000;
  aipe::Stream s;
  const k::RopeTable rope(k::rope_frequencies(llama31()), 64, s);
  auto ids = upload(std::vector<int>{1, 17, 31999});
  auto pos = upload(std::vector<int>{5, 6, 7});
  auto table = bf16_device(111, std::size_t(vocab) * hidden, -1.f, 1.f);
  auto w = bf16_device(112, std::size_t(hidden), 0.5f, 1.5f);
  auto delta = bf16_device(113, std::size_t(tokens) * hidden, -1.f, 1.f);
  auto gu = bf16_device(114, std::size_t(tokens) * 2 * inter, -2.f, 2.f);
  auto logits = bf16_device(115, std::size_t(tokens) * vocab, -5.f, 5.f);
  auto params = upload(std::vector<k::SamplingParams>(3, k::SamplingParams{.temperature = 0.9f, .top_k = 40, .top_p = 0.9f}));
  aipe::DeviceBuffer<bf16> h(std::size_t(tokens) * hidden), y(std::size_t(tokens) * hidden), act(std::size_t(tokens) * inter);
  auto qkv0 = bf16_device(116, std::size_t(tokens) * (heads + 2 * kv) * d, -1.f, 1.f);
  aipe::DeviceBuffer<bf16> qkv(qkv0.size());
  aipe::DeviceBuffer<int> err(1), tok(3);
  AIPE_CUDA(cudaDeviceSynchronize());
  auto step = [&](cudaStream_t st) {
    AIPE_CUDA(cudaMemcpyAsync(qkv.get(), qkv0.get(), qkv.bytes(), cudaMemcpyDeviceToDevice, st));
    AIPE_CUDA(cudaMemsetAsync(err.get(), 0, sizeof(int), st));
    k::embedding(ids.get(), table.get(), h.get(), err.get(), tokens, vocab, hidden, st);
    k::fused_add_rmsnorm(h.get(), delta.get(), w.get(), y.get(), tokens, hidden, 1e-5f, st);
    k::apply_rope(k::RopeArgs{.q = qkv.get(), .q_stride = (heads + 2 * kv) * d, .heads = heads,
                              .k = qkv.get() + heads * d, .k_stride = (heads + 2 * kv) * d, .kv_heads = kv,
                              .positions = pos.get(), .tokens = tokens, .error = err.get()},
                  rope, st);
    k::swiglu(gu.get(), act.get(), tokens, inter, st);
    k::sample(logits.get(), vocab, tokens, vocab, params.get(), tok.get(), st);
  };
  step(s);
  const auto h1 = aipe::to_host(h, s), y1 = aipe::to_host(y, s), q1 = aipe::to_host(qkv, s), a1 = aipe::to_host(act, s);
  const auto t1 = aipe::to_host(tok, s);
  poison(h), poison(y), poison(act), poison(tok);
  AIPE_CUDA(cudaDeviceSynchronize());
  aipe::Graph g = aipe::Graph::capture(s, step);
  const aipe::GraphExec exec(g);
  exec.launch(s);
  AIPE_CUDA(cudaStreamSynchronize(s));
  auto same = [](const std::vector<bf16>& a, const std::vector<bf16>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(bf16)) == 0;
  };
  EXPECT_TRUE(same(aipe::to_host(h, s), h1)) << "embedding + residual add";
  EXPECT_TRUE(same(aipe::to_host(y, s), y1)) << "rmsnorm";
  EXPECT_TRUE(same(aipe::to_host(qkv, s), q1)) << "rope";
  EXPECT_TRUE(same(aipe::to_host(act, s), a1)) << "swiglu";
  EXPECT_EQ(aipe::to_host(tok, s), t1) << "sampling";
  EXPECT_EQ(aipe::to_host(err, s)[0], 0);
}

// ---------------------------------------------------------------------------------------------------- bandwidth
// Engine sizes (Llama-3.1-8B: hidden 4096, inter 14336; 8192 prefill tokens), the core's timer (L2 flushed, median).
// Bytes are the minimum that must cross DRAM. The bound (50% of the spec DRAM bandwidth) is loose on purpose: a
// kernel that reads its row twice from DRAM, or with 2-byte accesses, lands near or below it.
TEST(LlmKernelsBandwidth, MemoryBoundKernelsAtEngineSizes) {
  SKIP_WITHOUT_GPU();
  const aipe::DeviceInfo dev = aipe::query_device(0);
  const double spec_gbps = aipe::derive_spec_peaks(dev).dram_gbps;
  aipe::Stream s;
  aipe::Timer timer(dev, s);
  aipe::StopCriteria crit;
  crit.budget_s = 0.5;
  const int tokens = 8192, hidden = 4096, inter = 14336, vocab = 128256;
  auto x = bf16_device(1, std::size_t(tokens) * hidden, -1.f, 1.f);
  auto r = bf16_device(2, std::size_t(tokens) * hidden, -1.f, 1.f);
  auto w = bf16_device(3, std::size_t(hidden), 0.5f, 1.5f);
  aipe::DeviceBuffer<bf16> y(static_cast<std::size_t>(tokens) * hidden);
  auto gu = bf16_device(4, std::size_t(tokens) * 2 * inter, -1.f, 1.f);
  aipe::DeviceBuffer<bf16> act(static_cast<std::size_t>(tokens) * inter);
  auto table = bf16_device(5, std::size_t(vocab) * hidden, -1.f, 1.f);
  std::vector<int> ids(static_cast<std::size_t>(tokens));
  for (int t = 0; t < tokens; ++t) ids[std::size_t(t)] = int(aipe::bits_at(6, std::uint64_t(t)) % vocab);
  auto dids = upload(ids);
  aipe::DeviceBuffer<int> err(1);
  AIPE_CUDA(cudaMemset(err.get(), 0, sizeof(int)));
  const int heads = 32, kv = 8, d = 128;
  auto qkv = bf16_device(7, std::size_t(tokens) * (heads + 2 * kv) * d, -1.f, 1.f);
  const k::RopeTable rope(k::rope_frequencies(llama31()), tokens);
  std::vector<int> pos(static_cast<std::size_t>(tokens));
  std::iota(pos.begin(), pos.end(), 0);
  auto dpos = upload(pos);
  AIPE_CUDA(cudaDeviceSynchronize());

  struct Row {
    const char* name;
    double bytes;
    std::function<void(cudaStream_t)> launch;
  };
  const double act_bytes = double(tokens) * hidden * 2;
  const Row rows[] = {
      {"rmsnorm", 2 * act_bytes, [&](cudaStream_t st) { k::rmsnorm(x.get(), w.get(), y.get(), tokens, hidden, 1e-5f, st); }},
      {"fused_add_rmsnorm", 4 * act_bytes,
       [&](cudaStream_t st) { k::fused_add_rmsnorm(x.get(), r.get(), w.get(), y.get(), tokens, hidden, 1e-5f, st); }},
      {"swiglu", double(tokens) * inter * 6, [&](cudaStream_t st) { k::swiglu(gu.get(), act.get(), tokens, inter, st); }},
      {"embedding", 2 * act_bytes,
       [&](cudaStream_t st) { k::embedding(dids.get(), table.get(), y.get(), err.get(), tokens, vocab, hidden, st); }},
      {"rope (q + k in place)", double(tokens) * (heads + kv) * d * 4,
       [&](cudaStream_t st) {
         k::apply_rope(k::RopeArgs{.q = qkv.get(), .q_stride = (heads + 2 * kv) * d, .heads = heads,
                                   .k = qkv.get() + heads * d, .k_stride = (heads + 2 * kv) * d, .kv_heads = kv,
                                   .positions = dpos.get(), .tokens = tokens},
                       rope, st);
       }},
  };
  for (const Row& row : rows) {
    const aipe::Measurement m = timer.measure(row.launch, aipe::Timing::standard, true, crit);
    const double gbps = row.bytes / (m.time_ms.median * 1e-3) / 1e9;
    std::printf("  %-22s %8.1f us  %7.0f GB/s  (%.0f%% of the %.0f GB/s spec)\n", row.name, m.time_ms.median * 1e3, gbps,
                100 * gbps / spec_gbps, spec_gbps);
    EXPECT_GE(gbps, 0.5 * spec_gbps) << row.name;
  }

  // Sampling latency at decode batch sizes (no bound: reported for the engine's step budget).
  for (const int batch : {1, 64}) {
    auto logits = bf16_device(8, std::size_t(batch) * vocab, -8.f, 8.f);
    std::vector<k::SamplingParams> ps(static_cast<std::size_t>(batch), k::SamplingParams{.temperature = 0.8f, .top_k = 50, .top_p = 0.9f});
    auto dp = upload(ps);
    aipe::DeviceBuffer<int> tok(static_cast<std::size_t>(batch));
    AIPE_CUDA(cudaDeviceSynchronize());  // the fill ran on the legacy stream; the timer's stream does not wait for it
    for (const bool greedy : {true, false}) {
      const aipe::Measurement m = timer.measure(
          [&](cudaStream_t st) {
            if (greedy) k::argmax(logits.get(), vocab, batch, vocab, tok.get(), st);
            else k::sample(logits.get(), vocab, batch, vocab, dp.get(), tok.get(), st);
          },
          aipe::Timing::standard, true, crit);
      std::printf("  %-22s batch %2d, vocab %d (bf16): %8.1f us\n", greedy ? "argmax" : "sample top-k 50 top-p 0.9",
                  batch, vocab, m.time_ms.median * 1e3);
    }
  }
}

}  // namespace
