// ch10/gemm_bf16_skinny: the decode-shaped GEMM of LLM inference, C = A * W^T with few rows of A
// (tokens, M = 1..256) and a large weight W (N x K = 4096..16384 squared), BF16 in, FP32 accumulate,
// BF16 out, against cuBLAS / cuBLASLt.
//
// Layouts (as in ch10/gemm_bf16): A is M x K row-major, W is N x K row-major (K-major; the K x N operand
// in column-major), C is M x N row-major.
//
// Why a separate kernel: a 128 x 256 output tile (the square GEMM's) covers all of M = 16 with 87% of
// its rows empty, and N / 256 tiles give 32 CTAs for N = 8192: a quarter of the SMs stream the weights.
// The problem is memory bound (at M = 64, N = K = 8192: 134 MB of weights for 8.6 GFLOP, 64 FLOP/byte,
// under the H100's ridge of ~295), so what matters is keeping every SM's memory pipe full.
//
// Ladder (every rung but the library ones is aipe::kernels::gemm_skinny, kernels/src/gemm_bf16_skinny.cu, with
// its switches named; that file holds the one copy of the kernels):
//   1 swap_ab          C^T = W * A^T: the weight rows fill WGMMA's M = 64 side (two consumer warpgroups,
//                      128 rows of W per CTA), the few tokens ride on WGMMA's N side (M rounded up to a token
//                      tile of 8 / 16 / ... / 256; TMA zero-fills the missing rows, so they cost no DRAM bytes).
//                      Warp-specialized: one TMA producer, an mbarrier ring of up to 8 stages. SkinnySplit::none.
//   2 swap_ab_split_k  the same kernel with K split across CTAs so that the grid covers every SM
//                      (splits = SMs / CTAs along N, each split >= 4 K steps); FP32 partial tiles then one
//                      small kernel that sums them and rounds to BF16. The partials are extra traffic the rung
//                      pays for (not counted in the work model, which holds the minimum bytes). SkinnySplit::reduce.
//   3 cluster_multicast
//                      rung 2 in clusters of 2 CTAs along N. Every CTA needs the same token tile (all M
//                      rows, the same K step); each CTA of a pair loads half of its rows and multicasts it
//                      into both CTAs' shared memory (TMA .multicast::cluster), so the tokens cross
//                      L2 -> SM once per pair. At M = 256 the token tile is twice the W tile, so a CTA's
//                      bytes per K step fall from 48 to 32 KiB. A slot is refilled only when the consumers
//                      of both CTAs released it (remote mbarrier arrives). SkinnyOptions::multicast.
//   4 split_k_dsmem    K in two halves on a cluster of 2 CTAs (same 128 rows of W), summed through
//                      distributed shared memory: the CTA that does not own a warp's rows writes that warp's
//                      FP32 fragment into the owner's idle ring (map_shared_rank), a cluster barrier, the
//                      owner adds and stores BF16. Rung 2's FP32 partials never reach global memory and its
//                      second kernel goes away; the price is a fixed split of 2 (grid 2 x N / 128: one wave
//                      up to N = 8448 on 132 SMs, two above). SkinnySplit::dsmem.
//   library            aipe::kernels::gemm as the LLM engine calls it for every projection: its dispatch takes
//                      the skinny kernel up to M = 64 (rung 2 where the split is 3 or more, else rung 1:
//                      dispatch_skinny_options) and the square kernel above
//   cublas             cublasGemmEx (BF16 in, FP32 compute)
//   cublaslt           cublasLtMatmul, top heuristic, 32 MiB workspace
//
// Napkin math: bytes = 2 (MK + NK + MN), dominated by the weight's 2NK; flops = 2MNK. At ~3 TB/s the
// weight of N = K = 8192 takes ~45 us: that is the bar, whatever M is up to ~256.
// Inputs, reference and tolerance, work model and the cuBLAS / cuBLASLt rungs: gemm_bf16_common.cuh,
// shared with ch10/gemm_bf16 (there B is the weight W: N x K row-major).
#include <cuda_bf16.h>

#include <map>
#include <string>
#include <vector>

#include "aipe/kernels/gemm.hpp"
#include "gemm_bf16_common.cuh"

namespace {

namespace kn = aipe::kernels;
using aipe::ch10::bf16;

class GemmBf16Skinny final : public aipe::ch10::Bf16GemmProblem {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch10/gemm_bf16_skinny",
            "Decode-shaped BF16 GEMM (M = 1..256 tokens): swap A and B for WGMMA, split K, share tokens in clusters, vs cuBLAS",
            "With a handful of tokens a GEMM is a weight stream: the bytes of W set the time, not the FLOPs. The "
            "square GEMM's 128x256 tile wastes most of its rows and leaves most SMs idle. Swapping the operands "
            "(C^T = W A^T) puts the weight rows on WGMMA's 64-row side and the tokens on its narrow N side; "
            "splitting K across CTAs then gives every SM a share of the weight to stream, at the price of FP32 "
            "partial sums that a second small kernel adds up. At larger M every CTA also reloads the same token tile; "
            "CTA pairs in a cluster load half of it each and multicast it to both. Last, the two K halves of a "
            "cluster of 2 CTAs are summed through distributed shared memory, with no partials in global memory.",
            {{.name = "m",
              .def = 64,
              .quick = 32,
              .small = 37,
              .help = "tokens: rows of A and C (1..256 are decode shapes)",
              .min = 1,
              .max = 256},
             {.name = "n", .def = 8192, .quick = 4096, .small = 1000, .help = "rows of the weight W, columns of C"},
             {.name = "k", .def = 8192, .quick = 4096, .small = 1000, .help = "inner dimension", .min = 8, .max = 1 << 20}},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    using Out = std::map<std::string, double>;
    // A rung of the skinny kernel: the library with `o`'s switches; its metrics from the plan it runs.
    auto rung = [this](const char* name, const char* summary, kn::SkinnyOptions o) {
      return aipe::Variant{.name = name,
                           .summary = summary,
                           .launch = [this, o](cudaStream_t s) {
                             kn::gemm_skinny(a_matrix(), w_matrix(), c_matrix(), kn::Epilogue::none(), o, s);
                           },
                           .requires_ = {.sm90a = true},
                           .skip_if = [this] { return skip_; },
                           .metrics = [this, o](double, Out& out) { plan_metrics(kn::plan_gemm_skinny(
                                            a_matrix(), w_matrix(), c_matrix(), kn::Epilogue::none(), o), out); }};
    };
    return {rung("swap_ab", "W rows on WGMMA's M side, tokens on its N side; one CTA per 128 rows of W",
                 {.split = kn::SkinnySplit::none}),
            rung("swap_ab_split_k", "K split across CTAs to cover every SM; FP32 partials summed by a 2nd kernel",
                 {.split = kn::SkinnySplit::reduce}),
            rung("cluster_multicast", "rung 2 in clusters of 2 CTAs along N that share the token tile through TMA multicast",
                 {.split = kn::SkinnySplit::reduce, .multicast = true}),
            rung("split_k_dsmem",
                 "K in two halves on a cluster of 2 CTAs, summed through distributed shared memory: no partials, no "
                 "2nd kernel",
                 {.split = kn::SkinnySplit::dsmem}),
            {.name = "library",
             .summary = "aipe::kernels::gemm as the LLM engine calls it: the kernel its shape dispatch picks",
             .launch = [this](cudaStream_t s) { kn::gemm(a_matrix(), w_matrix(), c_matrix(), kn::Epilogue::none(), s); },
             .requires_ = {.sm90a = true},
             .skip_if = [this] { return skip_; },
             .metrics =
                 [this](double, Out& out) {
                   const kn::GemmPlan p = kn::plan_gemm(a_matrix(), w_matrix(), c_matrix());
                   out["skinny_kernel"] = p.kernel == kn::GemmKernel::skinny ? 1 : 0;
                   if (p.kernel == kn::GemmKernel::skinny) plan_metrics(p, out);
                   else out["ctas"] = p.grid_ctas;
                 }},
            cublas_rung(),
            cublaslt_rung()};
  }

  void setup(aipe::Context& ctx) override {
    setup_problem(ctx, "ch10/gemm_bf16_skinny");  // A, the weight (B), C, the reference, the library rungs
    skip_.clear();
    if (k_ % 8) skip_ = "TMA needs 16-byte aligned rows: K % 8 == 0";
  }

 private:
  kn::Matrix<const bf16> a_matrix() const { return kn::matrix<const bf16>(a_.get(), m_, k_); }
  kn::Matrix<const bf16> w_matrix() const { return kn::matrix<const bf16>(b_.get(), n_, k_); }
  kn::Matrix<bf16> c_matrix() const { return kn::matrix(c_.get(), m_, n_); }

  // The grid, the split and, for the split rungs, the DRAM traffic of the FP32 partials (written once, read
  // once), beyond the work model.
  void plan_metrics(const kn::GemmPlan& p, std::map<std::string, double>& out) const {
    out["ctas"] = p.skinny.grid_ctas;
    out["k_splits"] = p.skinny.splits;
    out["token_tile"] = p.skinny.token_tile;
    const bool partials = p.skinny.splits > 1 && !p.skinny.dsmem;
    if (partials) out["partial_bytes"] = 8.0 * p.skinny.splits * double(m_) * double(n_);
  }

  std::string skip_;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(GemmBf16Skinny);
