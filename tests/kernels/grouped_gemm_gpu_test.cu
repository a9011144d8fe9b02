// aipe::kernels::grouped_gemm on the GPU against a CPU float64 reference, at shapes that are not tile multiples:
// 4, 32 and 128 experts; N x K of gpt-oss's expert GEMMs (5760 x 2880, 2880 x 2880) and small awkward ones
// (200 x 264, 200 x 288 for MXFP4); 1, 3, 37, 64 and 4097 grouped rows (both kernels: weight streaming up to 64
// rows, WGMMA above); every third expert without rows; a capacity larger than the routed rows, whose tail rows of
// C must keep their poison; with and without the gather and the bias; BF16 and MXFP4 weights. C is poisoned
// (0xFFFF, a BF16 NaN) before every call. Every routed row is checked for being written; the values of every row
// where the problem is small, else of 96 rows (each expert's first and last, then random ones) against float64
// sums of the exact inputs. Skipped, with the reason, without a Hopper GPU and an sm_90a build.
#include <cuda_bf16.h>
#include <gtest/gtest.h>

#include "hopper_gpu.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/check.hpp"
#include "aipe/kernels/grouped_gemm.hpp"
#include "aipe/random.hpp"

namespace {

namespace k = aipe::kernels;
using k::bf16;

std::optional<std::string> no_hopper() { return aipe::test::no_hopper("kernels::grouped_gemm"); }

std::uint16_t bits_of(bf16 v) {
  std::uint16_t b;
  std::memcpy(&b, &v, 2);
  return b;
}

// E2M1 and E8M0 as the OCP MX specification defines them (the test's own decode).
double e2m1(unsigned code) {
  static const double mag[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
  return (code & 8u) ? -mag[code & 7u] : mag[code & 7u];
}

struct Case {
  int experts, n, k, rows;
  bool mx = false, gather = false, bias = false;
  std::int64_t stride_pad = 0;  // BF16: elements between experts beyond N * K
  std::string name() const {
    return "E=" + std::to_string(experts) + " N=" + std::to_string(n) + " K=" + std::to_string(k) +
           " rows=" + std::to_string(rows) + (mx ? " mxfp4" : " bf16") + (gather ? " gather" : "") +
           (bias ? " bias" : "") + (stride_pad ? " stride+" + std::to_string(stride_pad) : "");
  }
};

// Runs one case and returns what went wrong (empty: passed).
std::string run_case(const Case& cs, std::uint64_t seed) {
  const int E = cs.experts, N = cs.n, K = cs.k, R = cs.rows;
  // Routing: `used` of the R rows go to the experts, every third expert (from 1) gets none when E >= 4.
  const int slack = R >= 8 ? R / 8 : (R >= 3 ? 1 : 0), used = R - slack;
  std::vector<int> count(E, 0);
  std::vector<int> allowed;
  for (int e = 0; e < E; ++e)
    if (E < 4 || e % 3 != 1) allowed.push_back(e);
  for (int r = 0; r < used; ++r) ++count[allowed[aipe::bits_at(seed, r) % allowed.size()]];
  std::vector<int> offsets(E + 1, 0);
  for (int e = 0; e < E; ++e) offsets[e + 1] = offsets[e] + count[e];

  // Activations (T rows: the tokens the gather reads, or the grouped rows), BF16 in [-1, 1).
  const int T = cs.gather ? std::max(1, R / 3 + 1) : R;
  std::vector<bf16> a(std::size_t(T) * K);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = __float2bfloat16_rn(aipe::uniform_at(seed + 1, i, -1.f, 1.f));
  std::vector<int> gather(R);
  for (int r = 0; r < R; ++r) gather[r] = int(aipe::bits_at(seed + 2, r) % unsigned(T));
  std::vector<bf16> bias(std::size_t(E) * N);
  for (std::size_t i = 0; i < bias.size(); ++i) bias[i] = __float2bfloat16_rn(aipe::uniform_at(seed + 3, i, -1.f, 1.f));

  aipe::DeviceBuffer<bf16> da(a.size()), dbias(bias.size()), dc(std::size_t(R) * N);
  aipe::DeviceBuffer<int> doff(offsets.size()), dgather(std::max(R, 1));
  AIPE_CUDA(cudaMemcpy(da.get(), a.data(), a.size() * 2, cudaMemcpyHostToDevice));
  AIPE_CUDA(cudaMemcpy(dbias.get(), bias.data(), bias.size() * 2, cudaMemcpyHostToDevice));
  AIPE_CUDA(cudaMemcpy(doff.get(), offsets.data(), offsets.size() * 4, cudaMemcpyHostToDevice));
  AIPE_CUDA(cudaMemcpy(dgather.get(), gather.data(), gather.size() * 4, cudaMemcpyHostToDevice));
  AIPE_CUDA(cudaMemset(dc.get(), 0xFF, dc.bytes()));

  // Weights: BF16 filled on the device (uniform [-1, 1) / 4), copied back per expert for the reference; MXFP4
  // random codes (all 16) with scales 2^-6 .. 2^2, made here.
  const std::int64_t stride = std::int64_t(N) * K + cs.stride_pad;
  const std::size_t kb = std::size_t(K) / 32;
  aipe::DeviceBuffer<bf16> dw;
  aipe::DeviceBuffer<std::uint8_t> dblocks, dscales;
  std::vector<std::uint8_t> blocks, scales;
  if (cs.mx) {
    blocks.resize(std::size_t(E) * N * kb * 16);
    scales.resize(std::size_t(E) * N * kb);
    for (std::size_t i = 0; i < blocks.size() / 4; ++i) {
      const std::uint32_t v = aipe::bits_at(seed + 4, i);
      std::memcpy(&blocks[4 * i], &v, 4);
    }
    for (std::size_t i = 0; i < scales.size(); ++i) scales[i] = std::uint8_t(121 + aipe::bits_at(seed + 5, i) % 9);
    dblocks = aipe::DeviceBuffer<std::uint8_t>(blocks.size());
    dscales = aipe::DeviceBuffer<std::uint8_t>(scales.size());
    AIPE_CUDA(cudaMemcpy(dblocks.get(), blocks.data(), blocks.size(), cudaMemcpyHostToDevice));
    AIPE_CUDA(cudaMemcpy(dscales.get(), scales.data(), scales.size(), cudaMemcpyHostToDevice));
  } else {
    dw = aipe::DeviceBuffer<bf16>(std::size_t(stride) * E);
    aipe::fill_uniform(dw.get(), dw.size(), seed + 6, -0.25f, 0.25f, nullptr);
  }

  k::GroupedGemmArgs g;
  g.a = k::matrix<const bf16>(da.get(), T, K);
  g.gather = cs.gather ? dgather.get() : nullptr;
  g.rows = R;
  g.experts = E;
  g.n = N;
  g.k = K;
  g.offsets = doff.get();
  if (cs.mx) {
    g.w_blocks = dblocks.get();
    g.w_scales = dscales.get();
  } else {
    g.w = dw.get();
    g.w_expert_stride = cs.stride_pad ? stride : 0;
  }
  g.bias = cs.bias ? dbias.get() : nullptr;
  g.c = k::matrix(dc.get(), R, N);
  k::grouped_gemm(g, nullptr);
  AIPE_CUDA(cudaDeviceSynchronize());
  std::vector<bf16> c(dc.size());
  AIPE_CUDA(cudaMemcpy(c.data(), dc.get(), dc.bytes(), cudaMemcpyDeviceToHost));

  // Routed rows written, the capacity's tail untouched.
  for (int r = 0; r < R; ++r)
    for (int n = 0; n < N; ++n) {
      const bool poisoned = bits_of(c[std::size_t(r) * N + n]) == 0xFFFF;
      if (r < used && poisoned) return "row " + std::to_string(r) + " column " + std::to_string(n) + " not written";
      if (r >= used && !poisoned)
        return "row " + std::to_string(r) + " (past offsets[E] = " + std::to_string(used) + ") column " +
               std::to_string(n) + " was written";
    }

  // The rows whose values are checked, by expert.
  std::vector<int> expert_of(used);
  for (int e = 0; e < E; ++e)
    for (int r = offsets[e]; r < offsets[e + 1]; ++r) expert_of[r] = e;
  std::vector<int> check;
  if (double(used) * N * K <= double(1 << 27)) {
    for (int r = 0; r < used; ++r) check.push_back(r);
  } else {
    for (int e = 0; e < E && check.size() < 64; ++e)
      if (count[e]) {
        check.push_back(offsets[e]);
        check.push_back(offsets[e + 1] - 1);
      }
    for (int i = 0; check.size() < 96 && i < 96; ++i) check.push_back(int(aipe::bits_at(seed + 7, i) % unsigned(used)));
    std::sort(check.begin(), check.end());
    check.erase(std::unique(check.begin(), check.end()), check.end());
  }
  std::stable_sort(check.begin(), check.end(), [&](int x, int y) { return expert_of[x] < expert_of[y]; });

  std::vector<double> w;  // W_e as doubles [N][K], for the expert in hand
  int have = -1;
  int bad = 0;
  std::string first;
  double worst = 0;
  for (int r : check) {
    const int e = expert_of[r];
    if (e != have) {
      w.assign(std::size_t(N) * K, 0.0);
      if (cs.mx) {
        for (int n = 0; n < N; ++n)
          for (std::size_t b = 0; b < kb; ++b) {
            const std::size_t blk = (std::size_t(e) * N + n) * kb + b;
            const double s = std::ldexp(1.0, int(scales[blk]) - 127);
            for (int i = 0; i < 16; ++i) {
              const unsigned byte = blocks[blk * 16 + i];
              w[std::size_t(n) * K + b * 32 + 2 * i] = e2m1(byte & 15u) * s;
              w[std::size_t(n) * K + b * 32 + 2 * i + 1] = e2m1(byte >> 4) * s;
            }
          }
      } else {
        std::vector<bf16> we(std::size_t(N) * K);
        AIPE_CUDA(cudaMemcpy(we.data(), dw.get() + std::size_t(e) * stride, we.size() * 2, cudaMemcpyDeviceToHost));
        for (std::size_t i = 0; i < we.size(); ++i) w[i] = __bfloat162float(we[i]);
      }
      have = e;
    }
    const int src = cs.gather ? gather[r] : r;
    const bf16* x = &a[std::size_t(src) * K];
    for (int n = 0; n < N; ++n) {
      double acc = 0, l1 = 0;
      for (int p = 0; p < K; ++p) {
        const double t = double(__bfloat162float(x[p])) * w[std::size_t(n) * K + p];
        acc += t;
        l1 += std::fabs(t);
      }
      if (cs.bias) acc += __bfloat162float(bias[std::size_t(e) * N + n]);
      const double got = __bfloat162float(c[std::size_t(r) * N + n]);
      // BF16 output rounding (2^-9 relative, 2^-8 allowed) plus FP32 summation over K (2^-14 of the L1 norm).
      const double tol = std::ldexp(std::fabs(acc), -8) + std::ldexp(l1, -14) + 1e-6;
      const double err = std::fabs(got - acc);
      worst = std::max(worst, err / tol);
      if (!(err <= tol)) {
        if (bad++ == 0)
          first = "row " + std::to_string(r) + " (expert " + std::to_string(e) + ") column " + std::to_string(n) +
                  ": expected " + std::to_string(acc) + ", got " + std::to_string(got);
      }
    }
  }
  if (bad) return std::to_string(bad) + " wrong values, first " + first;
  return {};
}

void run_all(const std::vector<Case>& cases) {
  std::uint64_t seed = 1234;
  for (const Case& cs : cases) {
    const std::string why = run_case(cs, seed += 101);
    EXPECT_TRUE(why.empty()) << cs.name() << ": " << why;
  }
}

TEST(GroupedGemmGpu, SmallAwkward) {
  if (auto why = no_hopper()) GTEST_SKIP() << *why;
  std::vector<Case> cases;
  for (int rows : {1, 3, 37, 64, 65, 4097})
    for (int mx = 0; mx < 2; ++mx)
      for (int gather = 0; gather < 2; ++gather)
        for (int bias = 0; bias < 2; ++bias)
          cases.push_back({.experts = 4, .n = 200, .k = mx ? 288 : 264, .rows = rows, .mx = bool(mx),
                           .gather = bool(gather), .bias = bool(bias)});
  cases.push_back({.experts = 32, .n = 200, .k = 264, .rows = 4097, .gather = true, .bias = true, .stride_pad = 40});
  cases.push_back({.experts = 32, .n = 200, .k = 264, .rows = 37, .bias = true, .stride_pad = 40});
  run_all(cases);
}

TEST(GroupedGemmGpu, GptOssDecode) {
  if (auto why = no_hopper()) GTEST_SKIP() << *why;
  std::vector<Case> cases;
  for (int rows : {1, 3, 37, 64}) {
    cases.push_back({.experts = 128, .n = 5760, .k = 2880, .rows = rows, .gather = rows > 1, .bias = true});
    cases.push_back({.experts = 128, .n = 5760, .k = 2880, .rows = rows, .mx = true, .gather = rows > 1, .bias = true});
  }
  cases.push_back({.experts = 32, .n = 2880, .k = 2880, .rows = 37, .mx = true});
  run_all(cases);
}

TEST(GroupedGemmGpu, GptOssPrefill) {
  if (auto why = no_hopper()) GTEST_SKIP() << *why;
  run_all({{.experts = 32, .n = 2880, .k = 2880, .rows = 4097},
           {.experts = 32, .n = 2880, .k = 2880, .rows = 4097, .gather = true, .bias = true},
           {.experts = 32, .n = 2880, .k = 2880, .rows = 4097, .mx = true, .bias = true},
           {.experts = 128, .n = 5760, .k = 2880, .rows = 4097, .mx = true, .gather = true},
           {.experts = 128, .n = 5760, .k = 2880, .rows = 4097, .bias = true}});
}

// No routed rows at all (offsets all 0): nothing of C is written, by either kernel.
TEST(GroupedGemmGpu, NothingRouted) {
  if (auto why = no_hopper()) GTEST_SKIP() << *why;
  for (int rows : {5, 300}) {
    const int E = 8, N = 72, K = 64;
    aipe::DeviceBuffer<bf16> a(std::size_t(rows) * K), w(std::size_t(E) * N * K), c(std::size_t(rows) * N);
    aipe::DeviceBuffer<int> off(E + 1);
    aipe::fill_uniform(a.get(), a.size(), 1, -1.f, 1.f, nullptr);
    aipe::fill_uniform(w.get(), w.size(), 2, -1.f, 1.f, nullptr);
    AIPE_CUDA(cudaMemset(off.get(), 0, off.bytes()));
    AIPE_CUDA(cudaMemset(c.get(), 0xFF, c.bytes()));
    k::GroupedGemmArgs g;
    g.a = k::matrix<const bf16>(a.get(), rows, K);
    g.rows = rows;
    g.experts = E;
    g.n = N;
    g.k = K;
    g.offsets = off.get();
    g.w = w.get();
    g.c = k::matrix(c.get(), rows, N);
    k::grouped_gemm(g, nullptr);
    const std::vector<bf16> h = aipe::to_host(c, nullptr);
    int written = 0;
    for (const bf16 v : h) written += bits_of(v) != 0xFFFF;
    EXPECT_EQ(written, 0) << "rows=" << rows;
  }
}

// Captured once in a CUDA graph, the call follows new offsets written into the same device buffer between replays
// (the host knows only `rows`): each replay equals a direct call on those offsets, bit for bit, for both kernels.
TEST(GroupedGemmGpu, GraphReplayFollowsDeviceOffsets) {
  if (auto why = no_hopper()) GTEST_SKIP() << *why;
  for (const bool mx : {false, true})
    for (int rows : {40, 300}) {
      const int E = 8, N = 136, K = 96;
      aipe::DeviceBuffer<bf16> a(std::size_t(rows) * K), w(std::size_t(E) * N * K), c1(std::size_t(rows) * N),
          c2(std::size_t(rows) * N);
      aipe::DeviceBuffer<std::uint8_t> blocks(std::size_t(E) * N * K / 2), scales(std::size_t(E) * N * K / 32);
      aipe::DeviceBuffer<int> off(E + 1);
      aipe::fill_uniform(a.get(), a.size(), 11, -1.f, 1.f, nullptr);
      aipe::fill_uniform(w.get(), w.size(), 12, -1.f, 1.f, nullptr);
      AIPE_CUDA(cudaMemset(blocks.get(), 0x9C, blocks.bytes()));
      AIPE_CUDA(cudaMemset(scales.get(), 126, scales.bytes()));
      k::GroupedGemmArgs g;
      g.a = k::matrix<const bf16>(a.get(), rows, K);
      g.rows = rows;
      g.experts = E;
      g.n = N;
      g.k = K;
      g.offsets = off.get();
      if (mx) {
        g.w_blocks = blocks.get();
        g.w_scales = scales.get();
      } else {
        g.w = w.get();
      }
      aipe::Stream s;
      g.c = k::matrix(c2.get(), rows, N);
      const aipe::Graph graph = aipe::Graph::capture(s, [&](cudaStream_t cs) { k::grouped_gemm(g, cs); });
      const aipe::GraphExec exec(graph.get());
      for (int trial = 0; trial < 3; ++trial) {
        std::vector<int> o(E + 1, 0);
        for (int e = 0; e < E; ++e)
          o[e + 1] = std::min(rows - 1, o[e] + int(aipe::bits_at(21 + trial, e) % unsigned(2 * rows / E + 1)));
        AIPE_CUDA(cudaMemcpy(off.get(), o.data(), o.size() * 4, cudaMemcpyHostToDevice));
        AIPE_CUDA(cudaMemset(c1.get(), 0xFF, c1.bytes()));
        AIPE_CUDA(cudaMemset(c2.get(), 0xFF, c2.bytes()));
        exec.launch(s);
        k::GroupedGemmArgs direct = g;
        direct.c = k::matrix(c1.get(), rows, N);
        k::grouped_gemm(direct, s);
        const std::vector<bf16> h1 = aipe::to_host(c1, s), h2 = aipe::to_host(c2, s);
        int differ = 0, written = 0;
        for (std::size_t i = 0; i < h1.size(); ++i) {
          differ += bits_of(h1[i]) != bits_of(h2[i]);
          written += bits_of(h1[i]) != 0xFFFF;
        }
        EXPECT_EQ(differ, 0) << (mx ? "mxfp4" : "bf16") << " rows=" << rows << " trial " << trial;
        EXPECT_EQ(written, o[E] * N) << (mx ? "mxfp4" : "bf16") << " rows=" << rows << " trial " << trial;
      }
    }
}

}  // namespace
