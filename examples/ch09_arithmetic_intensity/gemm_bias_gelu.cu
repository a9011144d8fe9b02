// ch09/gemm_bias_gelu: an nn.Linear with GELU, Y = gelu(X W^T + bias), as a cuBLAS GEMM plus a separate epilogue
// kernel, vs the bias and GELU fused into the GEMM's epilogue: aipe's own GEMM (aipe::kernels::gemm) and cuBLASLt's
// (CUBLASLT_EPILOGUE_GELU_BIAS).
//
// Ladder:
//   1 unfused     cublasGemmEx writes Y (BF16) to DRAM; a second kernel reads Y, adds the bias, applies GELU
//                 and writes it again: 2 x 2 m n extra bytes, plus a second launch
//   2 unfused_lt  the same split, with the GEMM from cuBLASLt's heuristic (the fused rung's kernel family),
//                 so the step from here to rung 5 is the fusion alone
//   3 fused_serial aipe::kernels::gemm with Epilogue::bias_gelu, ActivationTiming::serial, Schedule::cooperative
//                 (rungs 3 and 4 fix the schedule; the library's own choice is in every fused rung's metric
//                 `auto_pingpong`): ch10's persistent,
//                 warp-specialized TMA + WGMMA GEMM, the bias and GELU (tanh.approx.f32) applied to the FP32
//                 accumulators after the tile's last wgmma, before the one BF16 store, which TMA writes box by
//                 box under the next tile's first K steps (or, when Y's rows are not 16-byte aligned,
//                 out % 8 != 0, guarded stores from registers); the tile configuration (128x256 or 128x128,
//                 clusters of 2 or none) picked from the shape. The GELU's 32768 MUFU.TANH per 128 x 256 tile
//                 (~2048 clocks at 16 per clock) run while the tensor cores wait: ~12% of a k = 1024 tile
//   4 fused_wgmma the same with the GELU moved under the tensor work: after the last wgmma only alpha and the
//                 bias, the tile parked as BF16 t; each 64 x 64 box goes through the GELU in shared memory as it
//                 leaves, while the next tile's wgmma runs (TMA-store path; the register path stays serial)
//   5 fused_pingpong the ping-pong schedule (Schedule::pingpong): each consumer warpgroup owns its own 64 x 256
//                 (or 128 x 128) tile and the two take turns on the tensor cores, so one's whole epilogue (bias,
//                 GELU on the FP32 accumulators, BF16 pack, TMA store) runs while the other's main loop keeps the
//                 tensor cores busy; at k = 1024 (16 K steps a tile) that is the share rungs 3 and 4 leave idle.
//                 Knobs: --size pp_bn=256|192|128 (64 x 256, 128 x 192 or 128 x 128 warpgroup tiles),
//                 pp_cluster=1|2 (B multicast to a pair of CTAs); 0 = what aipe::kernels::gemm picks
//   6 cublaslt    one cublasLtMatmul with epilogue GELU_BIAS: bias and GELU applied to the FP32 accumulators
//                 before the single BF16 store
//
// Problem (nn.Linear's layout, every rung): Y = gelu(X W^T + bias). X: tokens x in, row-major (activations);
// W: out x in, row-major (the weight); bias: out; Y: tokens x out, row-major. BF16 inputs and output, FP32
// accumulate. gelu: tanh form 0.5 t (1 + tanh(sqrt(2/pi) (t + 0.044715 t^3))).
// The axes keep cuBLAS's column-major names: m = out, n = tokens, k = in. cuBLAS computes the column-major
// m x n matrix Y^T (ld m: the bytes of the row-major Y) = op(A) B with A = W, CUBLAS_OP_T, lda = k and B = X,
// CUBLAS_OP_N, ldb = k; aipe::kernels::gemm (C[M][N] = A[M][K] B[N][K]^T) takes M = n, N = m, K = k, A = X, B = W.
// Both operands are K-major with row pitch k, which TMA reads whenever k % 8 == 0: at 4097 x 3001 x 1000 as well
// (a column-major A of ld 4097 would not be 16-byte aligned).
// Inputs uniform [-1, 1). Default m = n = 8192, k = 1024: the shape of an MLP up-projection over 8K tokens.
// Napkin math: 2 m n k = 137 GFLOP over 2 (m k + n k + m n) + 2 m = 168 MB (819 FLOP/B: compute-bound); at
// ~650 TFLOP/s the GEMM takes ~210 us. A separate epilogue moves the 128 MB output twice more (256 MB, ~75 us at
// 3.5 TB/s, a third on top). Fused, the epilogue costs what it computes: ~12 FLOP and one tanh per element, 67 M
// tanh at the SFU's 16 per SM per clock is ~20 us on 132 SMs at 1.5 GHz if nothing hides it, a tenth of the GEMM.
// Reference: float64 on the CPU when m n k <= 2^27, else cublasGemmEx with an FP32 output followed by the
// epilogue in float64 on the host. Tolerance: BF16; the absolute term is scaled to the RMS of X W^T because
// the unfused rungs round X W^T to BF16 (2^-9 relative) before adding the bias, and X W^T + bias can cancel;
// tanh.approx.f32 (relative error ~2^-11) stays below the BF16 output rounding; fused_wgmma rounds t = X W^T +
// bias to BF16 before the GELU (2^-9 relative on t, GELU's slope below 1.13), as the unfused rungs do;
// fused_pingpong rounds once, like fused_serial.
// Work: flops = 2 m n k (the epilogue's ~12 m n is noise); bytes = 2 (m k + k n + m n) + 2 m.
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <cuda_bf16.h>

#include "aipe/buffer.hpp"
#include "aipe/cublas.hpp"
#include "aipe/kernels/gemm.hpp"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"

namespace {

// One CTA per token: a row of the row-major Y (a column of cuBLAS's column-major m x n), its m = out values
// contiguous, the bias indexed by position in the row: no per-element integer division. Two BF16 per thread access where m keeps them aligned.
__global__ void bias_gelu(__nv_bfloat16* __restrict__ d, const __nv_bfloat16* __restrict__ bias, int m) {
  __nv_bfloat16* col = d + std::size_t(blockIdx.x) * m;
  auto f = [](float t) { return 0.5f * t * (1.f + tanhf(0.7978845608f * (t + 0.044715f * t * t * t))); };
  if (m % 2 == 0) {
    auto* c2 = reinterpret_cast<__nv_bfloat162*>(col);
    const auto* b2 = reinterpret_cast<const __nv_bfloat162*>(bias);
    for (int i = threadIdx.x; i < m / 2; i += blockDim.x) {
      const float2 v = __bfloat1622float2(c2[i]), b = __bfloat1622float2(b2[i]);
      c2[i] = __floats2bfloat162_rn(f(v.x + b.x), f(v.y + b.y));
    }
  } else {
    for (int i = threadIdx.x; i < m; i += blockDim.x)
      col[i] = __float2bfloat16_rn(f(__bfloat162float(col[i]) + __bfloat162float(bias[i])));
  }
}

double gelu_ref(double t) { return 0.5 * t * (1 + std::tanh(0.7978845608028654 * (t + 0.044715 * t * t * t))); }

class GemmBiasGelu final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch09/gemm_bias_gelu",
            "nn.Linear + bias + GELU: separate epilogue kernel vs the epilogue fused into the GEMM (aipe's own "
            "WGMMA GEMM and cuBLASLt's)",
            "A GEMM is compute-bound; the bias and activation after it are not. Run as a separate kernel, the "
            "epilogue reads and writes the whole output once more: at k = 1024 that round trip is a fifth of the "
            "GEMM's time. Applied to the accumulators before the one store (aipe::kernels::gemm with "
            "Epilogue::bias_gelu, cuBLASLt's GELU_BIAS epilogue), it costs only its arithmetic: the cheapest bytes "
            "are the ones never written.",
            {{.name = "m", .def = 8192, .quick = 4096, .small = 333, .help = "output features (rows of W, columns of Y)"},
             {.name = "n", .def = 8192, .quick = 4096, .small = 257, .help = "tokens (rows of X and Y)"},
             {.name = "k", .def = 1024, .quick = 1024, .small = 200, .help = "input features (columns of X and W)"},
             {.name = "pp_bn",
              .def = 0,
              .quick = 0,
              .small = 0,
              .help = "fused_pingpong: 256 = 64 x 256 warpgroup tiles, 192 = 128 x 192, 128 = 128 x 128; 0 = chosen",
              .min = 0,
              .max = 256},
             {.name = "pp_cluster",
              .def = 0,
              .quick = 0,
              .small = 0,
              .help = "fused_pingpong: 1 = no cluster, 2 = B multicast to pairs of CTAs; 0 = chosen from the shape",
              .min = 0,
              .max = 2}},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    return {{.name = "unfused",
             .summary = "cublasGemmEx to BF16, then a bias + GELU kernel (2 x 2 m n extra bytes)",
             .launch = [this](cudaStream_t s) { run_unfused(s); }},
            {.name = "unfused_lt",
             .summary = "the same with cuBLASLt's plain GEMM (the fused rung's algorithm family), then the kernel",
             .launch = [this](cudaStream_t s) { run_unfused_lt(s); }},
            fused_rung("fused_serial",
                       "aipe::kernels::gemm (cooperative schedule), bias + GELU on the FP32 accumulators after the "
                       "tile's last wgmma, then one store (the serial epilogue)",
                       aipe::kernels::ActivationTiming::serial, aipe::kernels::Schedule::cooperative),
            fused_rung("fused_wgmma",
                       "the same, the GELU applied box by box as the parked tile leaves, under the next tile's "
                       "first K steps",
                       aipe::kernels::ActivationTiming::overlapped, aipe::kernels::Schedule::cooperative),
            fused_rung("fused_pingpong",
                       "ping-pong schedule: each consumer warpgroup owns a tile, and one's whole epilogue runs "
                       "under the other's main loop",
                       aipe::kernels::ActivationTiming::serial, aipe::kernels::Schedule::pingpong),
            {.name = "cublaslt",
             .summary = "cublasLtMatmul with CUBLASLT_EPILOGUE_GELU_BIAS: one pass, one store",
             .launch = [this](cudaStream_t s) { run_lt(s); },
             // The heuristic's algorithm, as cuBLASLt names its configuration (enum values of cublasLt.h:
             // cublasLtMatmulTile_t, cublasLtMatmulStages_t, cublasLtClusterShape_t), to compare with the plan
             // the fused rungs report.
             .metrics = [this](double, std::map<std::string, double>& out) {
               auto attr = [&](cublasLtMatmulAlgoConfigAttributes_t a, const char* name, auto zero) {
                 auto v = zero;
                 std::size_t written = 0;
                 if (cublasLtMatmulAlgoConfigGetAttribute(&algo_, a, &v, sizeof v, &written) == CUBLAS_STATUS_SUCCESS)
                   out[name] = double(v);
               };
               attr(CUBLASLT_ALGO_CONFIG_ID, "lt_algo_id", std::int32_t{0});
               attr(CUBLASLT_ALGO_CONFIG_TILE_ID, "lt_tile_id", std::uint32_t{0});
               attr(CUBLASLT_ALGO_CONFIG_STAGES_ID, "lt_stages_id", std::uint32_t{0});
               attr(CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID, "lt_cluster_shape_id", std::uint16_t{0});
             }}};
  }

  void setup(aipe::Context& ctx) override {
    m_ = int(ctx.size("m"));
    n_ = int(ctx.size("n"));
    k_ = int(ctx.size("k"));
    pp_bn_ = int(ctx.size("pp_bn"));
    pp_cluster_ = int(ctx.size("pp_cluster"));
    if (pp_bn_ != 0 && pp_bn_ != 128 && pp_bn_ != 192 && pp_bn_ != 256)
      throw aipe::BadInput("pp_bn must be 0 (chosen), 128 (128 x 128 warpgroup tiles), 192 (128 x 192) or 256 "
                           "(64 x 256), got " + std::to_string(pp_bn_));
    w_ = aipe::DeviceBuffer<__nv_bfloat16>(std::size_t(m_) * k_);  // W: out x in
    x_ = aipe::DeviceBuffer<__nv_bfloat16>(std::size_t(n_) * k_);  // X: tokens x in
    y_ = aipe::DeviceBuffer<__nv_bfloat16>(std::size_t(m_) * n_);
    bias_ = aipe::DeviceBuffer<__nv_bfloat16>(m_);
    const auto sw = aipe::sub_seed(ctx.seed(), 1), sx = aipe::sub_seed(ctx.seed(), 2), sc = aipe::sub_seed(ctx.seed(), 3);
    aipe::fill_uniform(w_.get(), w_.size(), sw, -1.f, 1.f, ctx.stream());
    aipe::fill_uniform(x_.get(), x_.size(), sx, -1.f, 1.f, ctx.stream());
    aipe::fill_uniform(bias_.get(), bias_.size(), sc, -1.f, 1.f, ctx.stream());
    ctx.output(y_.get(), y_.bytes());
    handle_ = aipe::CublasHandle::create();
    setup_lt();

    fused_skip_ = k_ % 8 ? "TMA needs 16-byte aligned rows of X and W: k % 8 == 0" : "";

    // Reference: D = X W^T in float64 (CPU) or FP32 (cuBLAS), then bias + GELU in float64. d[j m + i] is
    // token j, output i: row-major Y.
    const std::size_t mn = std::size_t(m_) * n_;
    std::vector<double> d(mn, 0.0);
    auto bf = [](std::uint64_t seed, std::size_t i) { return double(__bfloat162float(__float2bfloat16_rn(aipe::uniform_at(seed, i, -1.f, 1.f)))); };
    if (double(m_) * n_ * k_ <= double(1 << 27)) {
      std::vector<double> W(std::size_t(m_) * k_), X(std::size_t(n_) * k_);
      for (std::size_t i = 0; i < W.size(); ++i) W[i] = bf(sw, i);
      for (std::size_t i = 0; i < X.size(); ++i) X[i] = bf(sx, i);
      for (int j = 0; j < n_; ++j) {
        const double* x = X.data() + std::size_t(j) * k_;
        for (int i = 0; i < m_; ++i) {
          const double* w = W.data() + std::size_t(i) * k_;
          double acc = 0;
          for (int p = 0; p < k_; ++p) acc += x[p] * w[p];
          d[std::size_t(j) * m_ + i] = acc;
        }
      }
    } else {
      aipe::DeviceBuffer<float> df(mn);
      AIPE_CUBLAS(cublasSetStream(handle_, ctx.stream()));
      const float one = 1.f, zero = 0.f;
      AIPE_CUBLAS(cublasGemmEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, m_, n_, k_, &one, w_.get(), CUDA_R_16BF, k_, x_.get(),
                               CUDA_R_16BF, k_, &zero, df.get(), CUDA_R_32F, m_, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      std::vector<float> h(mn);
      AIPE_CUDA(cudaMemcpyAsync(h.data(), df.get(), mn * 4, cudaMemcpyDeviceToHost, ctx.stream()));
      AIPE_CUDA(cudaStreamSynchronize(ctx.stream()));
      for (std::size_t i = 0; i < mn; ++i) d[i] = h[i];
    }
    double sq = 0;
    ref_.resize(mn);
    for (std::size_t i = 0; i < mn; ++i) {
      sq += d[i] * d[i];
      ref_[i] = gelu_ref(d[i] + bf(sc, i % m_));
    }
    gemm_rms_ = std::sqrt(sq / double(mn));
  }

  aipe::Work work() const override {
    const double m = m_, n = n_, k = k_;
    return {2 * (m * k + k * n + m * n) + 2 * m, 2 * m * n * k, aipe::ComputeUnit::bf16};
  }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    std::vector<__nv_bfloat16> out = aipe::to_host(y_, ctx.stream());
    auto tol = aipe::tolerance_for(aipe::DType::bf16);
    tol.abs = 1e-2 * gemm_rms_;  // see the header: X W^T is rounded to BF16 before the bias in the unfused rungs
    return aipe::compare(
        out.size(), [&](std::size_t i) { return double(__bfloat162float(out[i])); }, [&](std::size_t i) { return ref_[i]; }, tol);
  }

 private:
  void setup_lt() {
    lt_ = aipe::CublasLtHandle::create();
    // W is out x in row-major: the column-major k x m matrix, transposed (op T) to m x k.
    desc_ = aipe::lt_matmul_desc(CUBLAS_COMPUTE_32F, CUDA_R_32F, CUBLAS_OP_T, CUBLAS_OP_N);
    aipe::lt_set(desc_, CUBLASLT_MATMUL_DESC_EPILOGUE, CUBLASLT_EPILOGUE_GELU_BIAS);
    aipe::lt_set(desc_, CUBLASLT_MATMUL_DESC_BIAS_POINTER, static_cast<const void*>(bias_.get()));
    aipe::lt_set(desc_, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, CUDA_R_16BF);
    plain_ = aipe::lt_matmul_desc(CUBLAS_COMPUTE_32F, CUDA_R_32F, CUBLAS_OP_T, CUBLAS_OP_N);
    la_ = aipe::lt_layout(CUDA_R_16BF, k_, m_, k_);  // W
    lb_ = aipe::lt_layout(CUDA_R_16BF, k_, n_, k_);  // X: tokens x in row-major = column-major k x n
    ly_ = aipe::lt_layout(CUDA_R_16BF, m_, n_, m_);
    ws_ = aipe::DeviceBuffer<unsigned char>(32u << 20);
    std::string why;
    const auto fused = aipe::lt_heuristics(lt_, desc_, la_, lb_, ly_, ly_, ws_.size(), 1, &why);
    const auto plain = aipe::lt_heuristics(lt_, plain_, la_, lb_, ly_, ly_, ws_.size(), 1, &why);
    if (fused.empty() || plain.empty()) throw std::runtime_error(why + " (ch09/gemm_bias_gelu)");
    algo_ = fused[0].algo;
    algo_plain_ = plain[0].algo;
  }

  void run_unfused(cudaStream_t s) {
    AIPE_CUBLAS(cublasSetStream(handle_, s));
    const float one = 1.f, zero = 0.f;
    AIPE_CUBLAS(cublasGemmEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, m_, n_, k_, &one, w_.get(), CUDA_R_16BF, k_, x_.get(),
                             CUDA_R_16BF, k_, &zero, y_.get(), CUDA_R_16BF, m_, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    bias_gelu<<<n_, 256, 0, s>>>(y_.get(), bias_.get(), m_);
    AIPE_CHECK_LAUNCH();
  }

  void run_unfused_lt(cudaStream_t s) {
    const float one = 1.f, zero = 0.f;
    AIPE_CUBLAS(cublasLtMatmul(lt_, plain_, &one, w_.get(), la_, x_.get(), lb_, &zero, y_.get(), ly_, y_.get(), ly_,
                               &algo_plain_, ws_.get(), ws_.size(), s));
    bias_gelu<<<n_, 256, 0, s>>>(y_.get(), bias_.get(), m_);
    AIPE_CHECK_LAUNCH();
  }

  aipe::Variant fused_rung(const char* name, const char* what, aipe::kernels::ActivationTiming timing,
                           aipe::kernels::Schedule schedule) {
    return {.name = name,
            .summary = what,
            .launch = [this, timing, schedule](cudaStream_t s) { run_fused(s, timing, schedule); },
            .requires_ = {.min_cc = 90, .sm90a = true},
            .skip_if = [this] { return fused_skip_; },
            // The tile configuration, persistent grid and epilogue path aipe::kernels::gemm ran for this shape,
            // and whether its own choice (no schedule fixed) would be the ping-pong schedule.
            .metrics = [this, timing, schedule](double, std::map<std::string, double>& out) {
              const aipe::kernels::GemmPlan p =
                  aipe::kernels::plan_gemm(x_matrix(), w_matrix(), y_matrix(), epilogue(timing), options(schedule));
              out["tile_m"] = p.tile.bm;
              out["tile_n"] = p.tile.bn;
              out["cluster_m"] = p.tile.cluster_m;
              out["ctas"] = p.grid_ctas;
              out["tma_store"] = p.tma_store;
              out["activation_overlapped"] = p.activation_overlapped;
              const aipe::kernels::GemmPlan mine = aipe::kernels::plan_gemm(x_matrix(), w_matrix(), y_matrix(), epilogue(timing));
              out["auto_pingpong"] = mine.tile.schedule == aipe::kernels::Schedule::pingpong;
            }};
  }

  // The schedule a fused rung fixes; fused_pingpong's tile from pp_bn / pp_cluster where given (the rest as the
  // library picks it among the ping-pong configurations).
  aipe::kernels::GemmOptions options(aipe::kernels::Schedule schedule) const {
    aipe::kernels::GemmOptions o{.schedule = schedule};
    if (schedule == aipe::kernels::Schedule::pingpong && (pp_bn_ || pp_cluster_)) {
      aipe::kernels::TileConfig t = aipe::kernels::plan_gemm(x_matrix(), w_matrix(), y_matrix(), {}, o).tile;
      if (pp_bn_) {
        t.bn = pp_bn_;
        t.bm = pp_bn_ == 256 ? 64 : 128;  // the ping-pong kernels: 64 x 256, 128 x 128, 128 x 192
      }
      if (pp_cluster_) t.cluster_m = pp_cluster_;
      o.tile = t;
    }
    return o;
  }

  // nn.Linear's operands as aipe::kernels::gemm names them: C[M][N] = A[M][K] B[N][K]^T, M = tokens, N = out.
  aipe::kernels::Matrix<const __nv_bfloat16> x_matrix() const { return aipe::kernels::matrix<const __nv_bfloat16>(x_.get(), n_, k_); }
  aipe::kernels::Matrix<const __nv_bfloat16> w_matrix() const { return aipe::kernels::matrix<const __nv_bfloat16>(w_.get(), m_, k_); }
  aipe::kernels::Matrix<__nv_bfloat16> y_matrix() const { return aipe::kernels::matrix(y_.get(), n_, m_); }

  aipe::kernels::Epilogue epilogue(aipe::kernels::ActivationTiming timing) const {
    return aipe::kernels::Epilogue::bias_gelu(bias_.get()).with_activation_timing(timing);
  }

  void run_fused(cudaStream_t s, aipe::kernels::ActivationTiming timing, aipe::kernels::Schedule schedule) {
    aipe::kernels::gemm(x_matrix(), w_matrix(), y_matrix(), epilogue(timing), options(schedule), s);
  }

  void run_lt(cudaStream_t s) {
    const float one = 1.f, zero = 0.f;
    AIPE_CUBLAS(cublasLtMatmul(lt_, desc_, &one, w_.get(), la_, x_.get(), lb_, &zero, y_.get(), ly_, y_.get(), ly_, &algo_,
                               ws_.get(), ws_.size(), s));
  }

  int m_ = 0, n_ = 0, k_ = 0;
  int pp_bn_ = 0, pp_cluster_ = 0;
  aipe::DeviceBuffer<__nv_bfloat16> w_, x_, y_, bias_;
  aipe::DeviceBuffer<unsigned char> ws_;
  aipe::CublasHandle handle_;
  aipe::CublasLtHandle lt_;
  aipe::LtMatmulDesc desc_, plain_;
  aipe::LtLayout la_, lb_, ly_;
  cublasLtMatmulAlgo_t algo_{}, algo_plain_{};
  std::vector<double> ref_;
  double gemm_rms_ = 1;
  std::string fused_skip_;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(GemmBiasGelu);
