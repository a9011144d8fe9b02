// ch16/moe_layer: the expert GEMMs of one mixture-of-experts layer (gpt-oss-120b's: 128 experts, top-4 routing,
// hidden 2880, intermediate 2880), at decode and prefill token counts, from a loop of per-expert cuBLAS calls to
// one grouped launch with the permutation fused and the weights in MXFP4.
//
// Problem: T tokens x [T][hidden], each routed to top_k distinct experts (random, fixed by the run's seed), so
// R = T * top_k grouped rows, expert e's rows [offsets[e], offsets[e + 1]) in (token, choice) order; row r reads
// token row_token[r]. Two grouped GEMMs per layer, nn.Linear layouts (W_e out x in):
//   up    Y_up[r][0 .. 2 I)  = xg[r] . W_up_e^T      W_up   [E][2 I][hidden]  (gate and up projections together)
//   down  Y_dn[r][0 .. hidden) = h[r] . W_down_e^T    W_down [E][hidden][I]
// with xg[r] = x[row_token[r]] (the permutation) and h [R][I] the down projection's input (random here: the
// SwiGLU between the two is not part of this ladder). BF16 in, FP32 accumulate, BF16 out.
// The weights are MXFP4 (aipe/kernels/moe.hpp's format, random codes, scales 2^-9 .. 2^-6), and the BF16 weights
// of the BF16 rungs are their exact dequantization: every rung computes the identical products.
//
// Ladder:
//   1 cublas_loop     gather_rows (xg), then one cublasGemmEx per expert with rows, per GEMM: the counts are known
//                     on the host (a real layer would have to copy them back, a sync per layer)
//   2 cublas_grouped  gather_rows, then one cublasGemmGroupedBatchedEx per GEMM (a group per expert with rows,
//                     cuBLAS 12.5+): the library's grouped GEMM, still with host-known counts
//   3 grouped_wgmma   gather_rows, then aipe::kernels::grouped_gemm per GEMM: one launch over every expert, the
//                     tiles found from the device offsets (WGMMA tiles above 64 rows, weight streaming at or below)
//   4 fused_gather    the up GEMM reads x through row_token itself: no xg round trip through DRAM
//   5 mxfp4           rung 4 on the MXFP4 weights, decoded to BF16 inside the kernel: 4.25 bits a weight from DRAM
//                     instead of 16
//
// Reference: cuBLAS per expert with FP32 output on the same BF16 inputs (computed once in setup). Tolerance: the
// BF16 output rounding (2^-8 relative, twice that allowed) plus 2^-7 of the reference's RMS for the FP32
// summation order. Work model: FLOPs 2 R (2 I hidden + hidden I) of the routed rows; bytes: the BF16 weights of the
// experts that got rows (each read once), x, h and both outputs once. The mxfp4 rung reads 17/64 of those weight
// bytes; its metrics give its own weight bytes and their rate. Napkin math at T = 1 (4 experts, 4 x 24.9 M
// weights): 199 MB of BF16 weights, 53 MB in MXFP4, ~42 us vs ~11 us at 4.8 TB/s; at T = 4096 every expert is
// active (6.4 GB BF16) and 1.63 TFLOP are done: ~2 ms at 800 TFLOP/s.
#include <cublas_v2.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/check.hpp"
#include "aipe/cublas.hpp"
#include "aipe/kernels/grouped_gemm.hpp"
#include "aipe/kernels/moe.hpp"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"
#include "aipe/verify.hpp"

namespace {

namespace kn = aipe::kernels;
using bf16 = __nv_bfloat16;

// Input generator: bytes lo + (random mod span), counter-based as aipe/random.hpp's fills.
__global__ void random_bytes_kernel(std::uint8_t* p, std::size_t n, std::uint64_t seed, unsigned lo, unsigned span) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x)
    p[i] = static_cast<std::uint8_t>(lo + (span ? aipe::bits_at(seed, i) % span : aipe::bits_at(seed, i) & 255u));
}
void random_bytes(std::uint8_t* p, std::size_t n, std::uint64_t seed, unsigned lo, unsigned span, cudaStream_t s) {
  random_bytes_kernel<<<1024, 256, 0, s>>>(p, n, seed, lo, span);
  AIPE_CHECK_LAUNCH();
}

// One expert GEMM's weights in both formats.
struct ExpertWeights {
  int n = 0, k = 0;
  aipe::DeviceBuffer<std::uint8_t> blocks, scales;  // MXFP4 [E][n][k / 32][16], [E][n][k / 32]
  aipe::DeviceBuffer<bf16> w;                       // their BF16 dequantization [E][n][k]
};

class MoeLayer final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch16/moe_layer",
            "One MoE layer's expert GEMMs (gpt-oss-120b: 128 experts, top-4): per-expert cuBLAS, cuBLAS grouped, one "
            "grouped launch, fused permutation, MXFP4 weights",
            "An MoE layer sends each token to a few of many experts, so its GEMMs are ragged: a handful of rows per "
            "expert at decode, a few hundred at prefill, and counts that only the GPU knows. A loop of per-expert "
            "library calls pays a launch per expert and needs the counts on the host; cuBLAS's grouped GEMM takes "
            "them in one call but still from the host. One grouped kernel that reads the expert offsets on the "
            "device finds its own tiles, so the layer can sit in a CUDA graph; it can also read the tokens through "
            "the routing permutation instead of a gathered copy. At decode the layer is a weight stream (only the "
            "active experts' weights, once): MXFP4 weights, decoded to BF16 in the kernel, cut those bytes to 4.25 "
            "bits a weight.",
            {{.name = "tokens",
              .def = 4096,
              .quick = 512,
              .small = 37,
              .help = "tokens (1..16: decode, above: prefill)",
              .min = 1,
              .max = 1 << 16},
             {.name = "experts", .def = 128, .quick = 128, .small = 16, .help = "experts", .min = 1, .max = 1024},
             {.name = "top_k", .def = 4, .quick = 4, .small = 3, .help = "experts per token", .min = 1, .max = 8},
             {.name = "hidden",
              .def = 2880,
              .quick = 2880,
              .small = 288,
              .help = "hidden size (multiple of 32)",
              .min = 32,
              .max = 1 << 16},
             {.name = "inter",
              .def = 2880,
              .quick = 2880,
              .small = 160,
              .help = "expert intermediate size (multiple of 32)",
              .min = 32,
              .max = 1 << 16}},
            {.min_cc = 90}};
  }

  std::vector<aipe::Variant> variants() override {
    return {{.name = "cublas_loop",
             .summary = "gather_rows, then one cublasGemmEx per expert with rows (host-known counts)",
             .launch =
                 [this](cudaStream_t s) {
                   gather(s);
                   cublas_loop(s);
                 },
             .blocking = false},
            {.name = "cublas_grouped",
             .summary = "gather_rows, then one cublasGemmGroupedBatchedEx per GEMM (a group per expert with rows)",
             .launch =
                 [this](cudaStream_t s) {
                   gather(s);
                   cublas_grouped(s);
                 },
             .skip_if = [] { return grouped_skip(); }},
            {.name = "grouped_wgmma",
             .summary = "gather_rows, then kernels::grouped_gemm: one launch, tiles found from the device offsets",
             .launch =
                 [this](cudaStream_t s) {
                   gather(s);
                   grouped(s, false, false);
                 },
             .requires_ = {.sm90a = true}},
            {.name = "fused_gather",
             .summary = "the up GEMM reads the tokens through row_token: no gathered copy",
             .launch = [this](cudaStream_t s) { grouped(s, true, false); },
             .requires_ = {.sm90a = true}},
            {.name = "mxfp4",
             .summary = "MXFP4 weights decoded to BF16 in the kernel: 4.25 bits a weight from DRAM",
             .launch = [this](cudaStream_t s) { grouped(s, true, true); },
             .requires_ = {.sm90a = true},
             .metrics =
                 [this](double median_ms, std::map<std::string, double>& out) {
                   out["weight_bytes"] = mxfp4_weight_bytes();
                   out["weight_gbps"] = mxfp4_weight_bytes() / (median_ms * 1e-3) / 1e9;
                 }}};
  }

  void setup(aipe::Context& ctx) override {
    T_ = static_cast<int>(ctx.size("tokens"));
    E_ = static_cast<int>(ctx.size("experts"));
    k_ = static_cast<int>(ctx.size("top_k"));
    H_ = static_cast<int>(ctx.size("hidden"));
    I_ = static_cast<int>(ctx.size("inter"));
    if (k_ > E_)
      throw aipe::BadInput("ch16/moe_layer: top_k (" + std::to_string(k_) + ") exceeds experts (" + std::to_string(E_) +
                           ")");
    if (H_ % 32 || I_ % 32)
      throw aipe::BadInput("ch16/moe_layer: hidden and inter must be multiples of 32 (MXFP4 blocks)");
    R_ = T_ * k_;
    const cudaStream_t s = ctx.stream();
    route(ctx.seed());

    x_ = aipe::DeviceBuffer<bf16>(std::size_t(T_) * H_);
    xg_ = aipe::DeviceBuffer<bf16>(std::size_t(R_) * H_);
    h_ = aipe::DeviceBuffer<bf16>(std::size_t(R_) * I_);
    y_up_ = aipe::DeviceBuffer<bf16>(std::size_t(R_) * 2 * I_);
    y_dn_ = aipe::DeviceBuffer<bf16>(std::size_t(R_) * H_);
    aipe::fill_uniform(x_.get(), x_.size(), aipe::sub_seed(ctx.seed(), 1), -1.f, 1.f, s);
    aipe::fill_uniform(h_.get(), h_.size(), aipe::sub_seed(ctx.seed(), 2), -1.f, 1.f, s);
    make_weights(up_, 2 * I_, H_, aipe::sub_seed(ctx.seed(), 3), s);
    make_weights(dn_, H_, I_, aipe::sub_seed(ctx.seed(), 4), s);
    offsets_d_ = aipe::DeviceBuffer<int>(offsets_.size());
    row_token_d_ = aipe::DeviceBuffer<int>(row_token_.size());
    AIPE_CUDA(cudaMemcpyAsync(offsets_d_.get(), offsets_.data(), offsets_.size() * 4, cudaMemcpyHostToDevice, s));
    AIPE_CUDA(cudaMemcpyAsync(row_token_d_.get(), row_token_.data(), row_token_.size() * 4, cudaMemcpyHostToDevice, s));
    ctx.output(y_up_.get(), y_up_.bytes());
    ctx.output(y_dn_.get(), y_dn_.bytes());
    handle_ = aipe::CublasHandle::create();
    setup_grouped_arrays(s);
    reference(s);
  }

  aipe::Work work() const override {
    const double r = R_, h = H_, i = I_, weights = double(active_) * (2 * i * h + h * i);
    return {2 * weights + 2.0 * (double(T_) * h + r * i + r * (2 * i + h)), 2 * r * (2 * i * h + h * i),
            aipe::ComputeUnit::bf16};
  }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    aipe::VerifyResult r = check(aipe::to_host(y_up_, ctx.stream()), ref_up_, rms_up_);
    if (r.ok) r = check(aipe::to_host(y_dn_, ctx.stream()), ref_dn_, rms_dn_);
    r.note = "cuBLAS FP32-output reference per expert";
    return r;
  }

 private:
  // Each token's top_k distinct experts from the seed; the (token, choice) pairs grouped by expert, stably.
  void route(std::uint64_t seed) {
    std::vector<int> ids(static_cast<std::size_t>(R_));
    for (int t = 0; t < T_; ++t)
      for (int j = 0; j < k_; ++j) {
        int e = int(aipe::bits_at(aipe::sub_seed(seed, 5), std::uint64_t(t) * k_ + j) % unsigned(E_));
        while (std::find(&ids[std::size_t(t) * k_], &ids[std::size_t(t) * k_ + j], e) != &ids[std::size_t(t) * k_ + j])
          e = (e + 1) % E_;
        ids[std::size_t(t) * k_ + j] = e;
      }
    counts_.assign(E_, 0);
    for (int e : ids) ++counts_[e];
    offsets_.assign(E_ + 1, 0);
    for (int e = 0; e < E_; ++e) offsets_[e + 1] = offsets_[e] + counts_[e];
    row_token_.assign(R_, 0);
    std::vector<int> next(offsets_.begin(), offsets_.end() - 1);
    for (int p = 0; p < R_; ++p) row_token_[next[ids[p]]++] = p / k_;
    active_ = int(std::count_if(counts_.begin(), counts_.end(), [](int c) { return c > 0; }));
  }

  void make_weights(ExpertWeights& w, int n, int k, std::uint64_t seed, cudaStream_t s) {
    w.n = n;
    w.k = k;
    const std::size_t elems = std::size_t(E_) * n * k;
    w.blocks = aipe::DeviceBuffer<std::uint8_t>(elems / 2);
    w.scales = aipe::DeviceBuffer<std::uint8_t>(elems / 32);
    w.w = aipe::DeviceBuffer<bf16>(elems);
    random_bytes(w.blocks.get(), w.blocks.size(), aipe::sub_seed(seed, 1), 0, 0, s);
    random_bytes(w.scales.get(), w.scales.size(), aipe::sub_seed(seed, 2), 118, 4, s);  // 2^-9 .. 2^-6
    kn::moe::dequantize_mxfp4(
        {.blocks = w.blocks.get(), .scales = w.scales.get(), .rows = std::int64_t(E_) * n, .cols = k}, w.w.get(), s);
  }

  void gather(cudaStream_t s) { kn::moe::gather_rows(x_.get(), H_, row_token_d_.get(), R_, H_, xg_.get(), H_, s); }

  // C^T[n][m] = W_e[n][:] . A[m][:] in cuBLAS's column-major terms: (OP_T, OP_N) over K-major operands.
  void cublas_loop(cudaStream_t s) {
    AIPE_CUBLAS(cublasSetStream(handle_, s));
    const float one = 1.f, zero = 0.f;
    for (int e = 0; e < E_; ++e) {
      const int m = counts_[e], r0 = offsets_[e];
      if (!m) continue;
      AIPE_CUBLAS(cublasGemmEx(
          handle_, CUBLAS_OP_T, CUBLAS_OP_N, 2 * I_, m, H_, &one, up_.w.get() + std::size_t(e) * 2 * I_ * H_,
          CUDA_R_16BF, H_, xg_.get() + std::size_t(r0) * H_, CUDA_R_16BF, H_, &zero,
          y_up_.get() + std::size_t(r0) * 2 * I_, CUDA_R_16BF, 2 * I_, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      AIPE_CUBLAS(cublasGemmEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, H_, m, I_, &one,
                               dn_.w.get() + std::size_t(e) * H_ * I_, CUDA_R_16BF, I_, h_.get() + std::size_t(r0) * I_,
                               CUDA_R_16BF, I_, &zero, y_dn_.get() + std::size_t(r0) * H_, CUDA_R_16BF, H_,
                               CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
  }

  static std::string grouped_skip() {
#if CUBLAS_VERSION >= 120500
    return "";
#else
    return "cublasGemmGroupedBatchedEx needs cuBLAS 12.5 or later; this build has " + std::to_string(CUBLAS_VERSION);
#endif
  }

  // The grouped call's arguments: one group of one GEMM per expert with rows; the pointer arrays on the device.
  void setup_grouped_arrays(cudaStream_t s) {
    std::vector<const void*> a_up, b_up, a_dn, b_dn;
    std::vector<void*> c_up, c_dn;
    g_rows_.clear();
    for (int e = 0; e < E_; ++e) {
      const int m = counts_[e], r0 = offsets_[e];
      if (!m) continue;
      g_rows_.push_back(m);
      a_up.push_back(up_.w.get() + std::size_t(e) * 2 * I_ * H_);
      b_up.push_back(xg_.get() + std::size_t(r0) * H_);
      c_up.push_back(y_up_.get() + std::size_t(r0) * 2 * I_);
      a_dn.push_back(dn_.w.get() + std::size_t(e) * H_ * I_);
      b_dn.push_back(h_.get() + std::size_t(r0) * I_);
      c_dn.push_back(y_dn_.get() + std::size_t(r0) * H_);
    }
    const std::size_t g = g_rows_.size();
    ptrs_ = aipe::DeviceBuffer<void*>(6 * g);
    std::vector<void*> all;
    for (auto* v : {&a_up, &b_up, &a_dn, &b_dn})
      for (const void* p : *v) all.push_back(const_cast<void*>(p));
    all.insert(all.end(), c_up.begin(), c_up.end());
    all.insert(all.end(), c_dn.begin(), c_dn.end());
    if (g) AIPE_CUDA(cudaMemcpyAsync(ptrs_.get(), all.data(), all.size() * sizeof(void*), cudaMemcpyHostToDevice, s));
    AIPE_CUDA(cudaStreamSynchronize(s));  // `all` leaves scope
  }

  void cublas_grouped(cudaStream_t s) {
#if CUBLAS_VERSION >= 120500
    AIPE_CUBLAS(cublasSetStream(handle_, s));
    const int g = int(g_rows_.size());
    if (!g) return;
    const std::vector<cublasOperation_t> ta(g, CUBLAS_OP_T), tb(g, CUBLAS_OP_N);
    const std::vector<float> one(g, 1.f), zero(g, 0.f);
    const std::vector<int> ones(g, 1), n_up(g, 2 * I_), n_dn(g, H_), ld_h(g, H_), ld_i(g, I_), ld_up(g, 2 * I_);
    void** p = ptrs_.get();
    AIPE_CUBLAS(cublasGemmGroupedBatchedEx(handle_, ta.data(), tb.data(), n_up.data(), g_rows_.data(), ld_h.data(),
                                           one.data(), p, CUDA_R_16BF, ld_h.data(), p + g, CUDA_R_16BF, ld_h.data(),
                                           zero.data(), p + 4 * g, CUDA_R_16BF, ld_up.data(), g, ones.data(),
                                           CUBLAS_COMPUTE_32F));
    AIPE_CUBLAS(cublasGemmGroupedBatchedEx(handle_, ta.data(), tb.data(), n_dn.data(), g_rows_.data(), ld_i.data(),
                                           one.data(), p + 2 * g, CUDA_R_16BF, ld_i.data(), p + 3 * g, CUDA_R_16BF,
                                           ld_i.data(), zero.data(), p + 5 * g, CUDA_R_16BF, ld_h.data(), g,
                                           ones.data(), CUBLAS_COMPUTE_32F));
#else
    (void)s;
#endif
  }

  kn::GroupedGemmArgs args(const ExpertWeights& w, bool mx) const {
    kn::GroupedGemmArgs g;
    g.rows = R_;
    g.experts = E_;
    g.n = w.n;
    g.k = w.k;
    g.offsets = offsets_d_.get();
    if (mx) {
      g.w_blocks = w.blocks.get();
      g.w_scales = w.scales.get();
    } else {
      g.w = w.w.get();
    }
    return g;
  }

  void grouped(cudaStream_t s, bool fused_gather, bool mx) {
    kn::GroupedGemmArgs up = args(up_, mx);
    if (fused_gather) {
      up.a = kn::matrix<const bf16>(x_.get(), T_, H_);
      up.gather = row_token_d_.get();
    } else {
      up.a = kn::matrix<const bf16>(xg_.get(), R_, H_);
    }
    up.c = kn::matrix(y_up_.get(), R_, 2 * I_);
    kn::grouped_gemm(up, s);
    kn::GroupedGemmArgs dn = args(dn_, mx);
    dn.a = kn::matrix<const bf16>(h_.get(), R_, I_);
    dn.c = kn::matrix(y_dn_.get(), R_, H_);
    kn::grouped_gemm(dn, s);
  }

  double mxfp4_weight_bytes() const {
    return double(active_) * (2.0 * I_ * H_ + double(H_) * I_) * 17.0 / 32.0;  // 16 bytes + 1 scale per 32
  }

  // cuBLAS per expert, FP32 out, on the gathered tokens.
  void reference(cudaStream_t s) {
    gather(s);
    aipe::DeviceBuffer<float> up(std::size_t(R_) * 2 * I_), dn(std::size_t(R_) * H_);
    AIPE_CUBLAS(cublasSetStream(handle_, s));
    const float one = 1.f, zero = 0.f;
    for (int e = 0; e < E_; ++e) {
      const int m = counts_[e], r0 = offsets_[e];
      if (!m) continue;
      AIPE_CUBLAS(cublasGemmEx(
          handle_, CUBLAS_OP_T, CUBLAS_OP_N, 2 * I_, m, H_, &one, up_.w.get() + std::size_t(e) * 2 * I_ * H_,
          CUDA_R_16BF, H_, xg_.get() + std::size_t(r0) * H_, CUDA_R_16BF, H_, &zero,
          up.get() + std::size_t(r0) * 2 * I_, CUDA_R_32F, 2 * I_, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      AIPE_CUBLAS(cublasGemmEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, H_, m, I_, &one,
                               dn_.w.get() + std::size_t(e) * H_ * I_, CUDA_R_16BF, I_, h_.get() + std::size_t(r0) * I_,
                               CUDA_R_16BF, I_, &zero, dn.get() + std::size_t(r0) * H_, CUDA_R_32F, H_,
                               CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
    ref_up_ = aipe::to_host(up, s);
    ref_dn_ = aipe::to_host(dn, s);
    auto rms = [](const std::vector<float>& v) {
      double s2 = 0;
      for (float x : v) s2 += double(x) * x;
      return v.empty() ? 0.0 : std::sqrt(s2 / double(v.size()));
    };
    rms_up_ = rms(ref_up_);
    rms_dn_ = rms(ref_dn_);
  }

  static aipe::VerifyResult check(const std::vector<bf16>& out, const std::vector<float>& ref, double rms) {
    const double u = std::ldexp(1.0, -8);
    aipe::Tolerance tol = aipe::tolerance_for(aipe::DType::bf16);
    tol.norm_rel = u;
    tol.rel = 2 * u;
    tol.abs = 2 * u * rms;
    return aipe::compare(
        out.size(), [&](std::size_t i) { return double(__bfloat162float(out[i])); },
        [&](std::size_t i) { return double(ref[i]); }, tol);
  }

  int T_ = 0, E_ = 0, k_ = 0, H_ = 0, I_ = 0, R_ = 0, active_ = 0;
  std::vector<int> counts_, offsets_, row_token_;
  aipe::DeviceBuffer<bf16> x_, xg_, h_, y_up_, y_dn_;
  aipe::DeviceBuffer<int> offsets_d_, row_token_d_;
  ExpertWeights up_, dn_;
  aipe::CublasHandle handle_;
  std::vector<int> g_rows_;  // rows of each group (expert with rows), in expert order
  aipe::DeviceBuffer<void*> ptrs_;
  std::vector<float> ref_up_, ref_dn_;
  double rms_up_ = 0, rms_dn_ = 0;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(MoeLayer);
