// ch18/flex_attention: FlexAttention's idea in C++: the mask and the score modifier are device functors compiled
// into the fused forward kernel (aipe::kernels::attention::forward_flex), and the mask's block sparsity is
// computed once, so that work the mask hides is not done at all.
//
// Problem: a packed batch for causal language modelling. Each of `batch` rows of `seq` tokens holds documents of
// random lengths (1 .. doc_max) packed back to back; a token attends causally within its own document only
// (mask_and(Causal, Document)). The logits are soft-capped (cap * tanh(s / cap), cap = 30) and then biased by
// ALiBi (the standard geometric per-head slopes, slope_h * (kv - q)): compose(SoftCap, Alibi).
//   Q, O [b][seq][heads][d] BF16    K, V [b][seq][kv_heads][d] BF16 (GQA)    LSE [b][heads][seq] FP32
//   doc ids [b][seq] int32 on the device (what the Document functor reads)
//
// Ladder (the identical problem; the same kernel and functors, what changed is on the right):
//   1 dense_masked   every (128-query, 128-key) tile is loaded, multiplied and masked element by element:
//                    the functor approach without block sparsity (FlexAttention without its BlockMask)
//   2 block_sparse   + the block map (kernels/attention/block_map.cuh, built once in setup, like
//                    create_block_mask): tiles no query sees are never loaded, tiles every query sees skip the
//                    per-element mask. Documents of <= 4096 tokens in 16384 leave ~85% of the causal tiles empty.
//   cudnn            skipped: cuDNN's fused SDPA has no document (block-diagonal) mask; its way to pack
//                    documents is a ragged batch of separate sequences, another problem (no tile ever spans two
//                    documents), which ch18/attention_forward's varlen path is the counterpart of.
//
// Napkin math at the default b = 2, heads = 16, kv_heads = 4, seq = 16384, d = 128, doc_max = 4096: ~8
// documents a row (mean length ~2 K), each seeing L^2 / 2 pairs, E[L^2] = 4096^2 / 3: ~8 x 2.8 M = 22 M of the
// 268 M (q, kv) pairs of a row (~8%). Useful FLOPs = 4 d pairs b heads ~ 0.37 TFLOP (counted exactly by the
// block-map kernel); the dense rung does 4 d seq^2 b heads = 4.4 TFLOP of tile work for them, ~12x, so its
// useful TFLOP/s is ~1/12 of its tensor rate. The block-sparse rung visits only the tiles that touch a
// document's causal triangle (~15% of the causal tiles): its useful rate is the kernel's rate times the
// fraction of visited work that is useful (~0.5 for documents of ~16 tiles).
// Inputs: Q, K, V uniform in [-1, 1) (sub-seeds 1, 2, 3); document lengths from sub-seed 4. Reference:
// aipe::kernels::attention::reference_attention with the same functors (plain FP32, whole score rows) on every
// row_step-th row; the functors' semantics are CPU-tested (tests/kernels/attention_flex_test.cpp).
// Tolerance as ch18/attention_forward: O elementwise 2^-7 |ref| + 2^-9 and norm-wise 2^-7 (P rounded to BF16,
// O rounded to BF16), LSE 2e-3 + 1e-4 |ref| (exp2 and tanh approximations, FP32 statistics).
// Work: flops = 4 d heads x visible pairs (mask verdicts counted on the device); bytes = Q, K, V, O once.
#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/check.hpp"
#include "aipe/kernels/attention/block_map.cuh"
#include "aipe/kernels/attention/forward_flex.hpp"
#include "aipe/kernels/attention/masks.cuh"
#include "aipe/kernels/attention/reference.cuh"
#include "aipe/kernels/attention/score_mods.cuh"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"
#include "aipe/verify.hpp"
#include "aipe/verify_device.cuh"

namespace {

using bf16 = __nv_bfloat16;
namespace att = aipe::kernels::attention;

constexpr float kSoftCap = 30.f;

// Element i of the reference's compact sampled O [b][rows][heads][d] -> the rung's O at row r * row_step.
struct SampledO {
  const bf16* o;
  std::int64_t q_batch, q_row;
  int rows, heads, d, row_step;
  __device__ float operator()(std::size_t i) const {
    const int c = int(i % d);
    std::size_t r = i / d;
    const int h = int(r % heads);
    r /= heads;
    const int row = int(r % rows), b = int(r / rows);
    return __bfloat162float(o[b * q_batch + std::int64_t(row) * row_step * q_row + h * d + c]);
  }
};
// LSE [b][heads][seq] at the sampled rows; -inf (a row that sees nothing) compares as -1e30, NaN still fails.
struct SampledLse {
  const float* lse;
  int rows, seq, row_step;
  __device__ float operator()(std::size_t i) const {
    const float v = lse[i / rows * seq + (i % rows) * row_step];
    return v == -INFINITY ? -1e30f : v;
  }
};
struct FiniteLse {
  const float* lse;
  __device__ float operator()(std::size_t i) const { return lse[i] == -INFINITY ? -1e30f : lse[i]; }
};

class FlexAttention final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch18/flex_attention",
            "Masks and score modifiers as compiled functors: dense masked -> block-sparse (block map), vs cuDNN",
            "FlexAttention lets a user write the mask (which keys a query sees) and a score modifier (ALiBi, "
            "soft-capping) as small functions that a compiler fuses into the attention kernel; in C++ the compile "
            "step is the template: the functors are inlined into the softmax of the Hopper kernel. Fusion alone "
            "does not make a sparse mask cheap: a kernel that applies the mask element by element still loads and "
            "multiplies every tile. The block map, computed once per mask, classifies every (query block, key "
            "tile) as empty, full or partial, so empty tiles are never loaded and full ones skip the mask; the "
            "work model counts only the (query, key) pairs the mask lets through, so the rates are useful "
            "TFLOP/s. Packed documents (a causal mask within each document) are the case where it matters most.",
            {{.name = "batch", .def = 2, .quick = 2, .small = 2, .help = "packed rows in the batch", .max = 65535},
             {.name = "heads", .def = 16, .quick = 16, .small = 6, .help = "query heads", .max = 65535},
             {.name = "kv_heads", .def = 4, .quick = 4, .small = 2, .help = "key/value heads (GQA)", .max = 65535},
             {.name = "seq", .def = 16384, .quick = 4096, .small = 1000, .help = "tokens per packed row",
              .max = 1 << 20},
             {.name = "d", .def = 128, .quick = 128, .small = 64, .help = "head dimension: 64 or 128", .min = 64,
              .max = 128},
             {.name = "doc_max", .def = 4096, .quick = 1024, .small = 300,
              .help = "documents are 1 .. doc_max tokens long (uniform)", .max = 1 << 20}},
            {.min_cc = 90, .sm90a = true}};
  }

  std::vector<aipe::Variant> variants() override {
    return {{.name = "dense_masked",
             .summary = "functors fused, no block map: every tile loaded, multiplied and masked element by element",
             .launch = [this](cudaStream_t s) { launch(false, s); }},
            {.name = "block_sparse",
             .summary = "+ the block map: empty tiles never loaded, full tiles skip the per-element mask",
             .launch = [this](cudaStream_t s) { launch(true, s); }},
            {.name = "cudnn",
             .summary = "cuDNN 9 fused SDPA, where it offers the same mask",
             .launch = [](cudaStream_t) {},
             .skip_if = [] {
               return std::string("cuDNN's fused SDPA has no document (block-diagonal) mask; it packs documents "
                                  "as a ragged batch of separate sequences, a different problem");
             }}};
  }

  void setup(aipe::Context& ctx) override {
    const char* id = "ch18/flex_attention";
    b_ = int(ctx.size("batch"));
    h_ = int(ctx.size("heads"));
    kvh_ = int(ctx.size("kv_heads"));
    s_ = int(ctx.size("seq"));
    d_ = int(ctx.size("d"));
    const int doc_max = int(ctx.size("doc_max"));
    if (d_ != 64 && d_ != 128) throw aipe::BadInput(std::string(id) + ": d must be 64 or 128 (got " + std::to_string(d_) + ")");
    if (h_ % kvh_ != 0)
      throw aipe::BadInput(std::string(id) + ": heads (" + std::to_string(h_) + ") must be a multiple of kv_heads (" +
                           std::to_string(kvh_) + ")");
    q_row_ = std::int64_t(h_) * d_;
    kv_row_ = std::int64_t(kvh_) * d_;
    scale_ = 1.f / std::sqrt(float(d_));

    q_ = aipe::DeviceBuffer<bf16>(std::size_t(b_) * s_ * q_row_);
    k_ = aipe::DeviceBuffer<bf16>(std::size_t(b_) * s_ * kv_row_);
    v_ = aipe::DeviceBuffer<bf16>(k_.size());
    o_ = aipe::DeviceBuffer<bf16>(q_.size());
    lse_ = aipe::DeviceBuffer<float>(std::size_t(b_) * h_ * s_);
    cudaStream_t st = ctx.stream();
    aipe::fill_uniform(q_.get(), q_.size(), aipe::sub_seed(ctx.seed(), 1), -1.f, 1.f, st);
    aipe::fill_uniform(k_.get(), k_.size(), aipe::sub_seed(ctx.seed(), 2), -1.f, 1.f, st);
    aipe::fill_uniform(v_.get(), v_.size(), aipe::sub_seed(ctx.seed(), 3), -1.f, 1.f, st);
    ctx.output(o_.get(), o_.bytes());
    ctx.output(lse_.get(), lse_.bytes());

    // Documents: lengths uniform in 1 .. doc_max from a counter-based stream, ids counting up along each row.
    std::vector<int> ids(std::size_t(b_) * s_);
    std::uint64_t draw = 0;
    for (int b = 0; b < b_; ++b)
      for (int i = 0, doc = 0, left = 0; i < s_; ++i, --left) {
        if (left == 0) {
          left = 1 + int(aipe::bits_at(aipe::sub_seed(ctx.seed(), 4), draw++) % std::uint64_t(doc_max));
          ++doc;
        }
        ids[std::size_t(b) * s_ + i] = doc;
      }
    ids_ = aipe::DeviceBuffer<int>(ids.size());
    AIPE_CUDA(cudaMemcpyAsync(ids_.get(), ids.data(), ids_.bytes(), cudaMemcpyHostToDevice, st));
    const std::vector<float> sl = att::alibi_slopes(h_);
    slopes_ = aipe::DeviceBuffer<float>(sl.size());
    AIPE_CUDA(cudaMemcpyAsync(slopes_.get(), sl.data(), slopes_.bytes(), cudaMemcpyHostToDevice, st));

    // The block map, once, and the visible pairs of one head (the mask does not depend on the head).
    map_ = att::BlockMap::shape(b_, 1, s_, s_);
    classes_ = aipe::DeviceBuffer<std::uint8_t>(map_.bytes());
    aipe::DeviceBuffer<unsigned long long> visible(1);
    AIPE_CUDA(cudaMemsetAsync(visible.get(), 0, visible.bytes(), st));
    att::build_block_map(mask(), map_, classes_.get(), s_, s_, st, visible.get());
    pairs_ = double(aipe::to_host(visible, st)[0]);
    AIPE_CUDA(cudaStreamSynchronize(st));
    reference(ctx);
  }

  aipe::Work work() const override {
    const double qo = double(b_) * s_ * h_ * d_, kv = double(b_) * s_ * kvh_ * d_;
    return {2.0 * (2 * qo + 2 * kv), 4.0 * d_ * h_ * pairs_, aipe::ComputeUnit::bf16};
  }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    cudaStream_t st = ctx.stream();
    const int rows = (s_ + row_step_ - 1) / row_step_;
    const double u = std::ldexp(1.0, -9);
    const aipe::Tolerance tol_o{.abs = u, .rel = 4 * u, .norm_rel = 4 * u};
    const aipe::Tolerance tol_lse{.abs = 2e-3, .rel = 1e-4, .norm_rel = 1e-4};
    const SampledO out{o_.get(), s_ * q_row_, q_row_, rows, h_, d_, row_step_};
    aipe::VerifyResult r = aipe::compare_on_device(ref_o_.size(), out, static_cast<const float*>(ref_o_.get()), tol_o, st);
    r.merge(aipe::compare_on_device(ref_lse_.size(), SampledLse{lse_.get(), rows, s_, row_step_},
                                    FiniteLse{ref_lse_.get()}, tol_lse, st));
    if (row_step_ > 1) {  // the rows not sampled must still have been written (the poison is NaN)
      r.merge(aipe::compare_on_device(o_.size(), static_cast<const bf16*>(o_.get()), static_cast<const bf16*>(o_.get()),
                                      aipe::Tolerance{}, st));
      r.merge(aipe::compare_on_device(lse_.size(), FiniteLse{lse_.get()}, FiniteLse{lse_.get()}, aipe::Tolerance{}, st));
    }
    r.note = "O then LSE; O index ((b * " + std::to_string(rows) + " + r) * heads + h) * d + i, query row r * " +
             std::to_string(row_step_) + "; FP32 device reference with the same functors";
    return r;
  }

 private:
  att::And<att::Causal, att::Document> mask() const {
    return att::mask_and(att::Causal{0}, att::Document{.q_ids = ids_.get(), .kv_ids = ids_.get(), .seq_q = s_, .seq_kv = s_});
  }
  att::Compose<att::SoftCap, att::Alibi> score() const {
    return att::compose(att::SoftCap::of(kSoftCap), att::Alibi{.slopes = slopes_.get(), .offset = 0});
  }

  void reference(aipe::Context& ctx) {
    row_step_ = s_ <= 1024 ? 1 : ((s_ / 256) | 1);
    att::ReferenceArgs<bf16> a;
    a.q = q_.get(), a.k = k_.get(), a.v = v_.get();
    a.q_batch = s_ * q_row_, a.q_row = q_row_, a.q_head = d_;
    a.kv_batch = s_ * kv_row_, a.kv_row = kv_row_, a.kv_head = d_;
    a.batch = b_, a.heads = h_, a.kv_heads = kvh_, a.seq_q = s_, a.seq_kv = s_, a.d = d_;
    a.scale = scale_;
    a.row_step = row_step_;
    ref_o_ = aipe::DeviceBuffer<float>(std::size_t(b_) * a.rows() * h_ * d_);
    ref_lse_ = aipe::DeviceBuffer<float>(std::size_t(b_) * h_ * a.rows());
    a.o = ref_o_.get();
    a.lse = ref_lse_.get();
    try {
      att::reference_attention(a, mask(), score(), ctx.stream());
    } catch (const std::invalid_argument& e) {
      throw aipe::BadInput(std::string("ch18/flex_attention: ") + e.what());
    }
    AIPE_CUDA(cudaStreamSynchronize(ctx.stream()));
  }

  void launch(bool sparse, cudaStream_t st) {
    att::FlexArgs f;
    att::ForwardArgs& a = f.attn;
    a.q = q_.get(), a.k = k_.get(), a.v = v_.get(), a.o = o_.get(), a.lse = lse_.get();
    a.q_batch = s_ * q_row_, a.q_row = q_row_, a.q_head = d_;
    a.kv_batch = s_ * kv_row_, a.kv_row = kv_row_, a.kv_head = d_;
    a.batch = b_, a.heads = h_, a.kv_heads = kvh_, a.seq_q = s_, a.seq_kv = s_, a.d = d_;
    a.scale = scale_;
    if (sparse) {
      f.block_map = map_;
      f.block_map.classes = classes_.get();
    }
    att::forward_flex(f, mask(), score(), st);
  }

  int b_ = 0, h_ = 0, kvh_ = 0, s_ = 0, d_ = 0, row_step_ = 1;
  float scale_ = 1.f;
  double pairs_ = 0;
  std::int64_t q_row_ = 0, kv_row_ = 0;
  aipe::DeviceBuffer<bf16> q_, k_, v_, o_;
  aipe::DeviceBuffer<float> lse_, ref_o_, ref_lse_, slopes_;
  aipe::DeviceBuffer<int> ids_;
  aipe::DeviceBuffer<std::uint8_t> classes_;
  att::BlockMap map_;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(FlexAttention);
