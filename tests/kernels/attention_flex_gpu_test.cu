// aipe::kernels::attention::forward_flex on the GPU against the plain FP32 device reference (reference.cuh, given
// the same mask and score functors; their element semantics are CPU-tested in attention_flex_test.cpp), at
// sizes that are not tile multiples (seq 1000 and 777, batch 2, GQA 6:2), for every built-in modifier (causal,
// sliding window, prefix-LM, document, ALiBi, soft-capping) and the combinations causal & document,
// sliding window | prefix-LM and causal & document with soft-capping then ALiBi, and learned sinks under a sliding
// window. Each runs dense (no block map:
// every tile masked element by element) and block-sparse (the map: empty tiles skipped, full ones unmasked), under
// the production schedule and with pingpong and persistence off. O and LSE are poisoned (NaN) before every call.
// The block map itself is checked against a host brute force of the document mask, with its visible-pair count.
//
// Tolerances as tests/kernels/attention_forward_gpu_test.cu: |O - ref| <= 2e-2 + 2e-2 |ref| per element and
// ||O - ref|| / ||ref|| < 1e-2; LSE within 2e-3 (soft-capping's tanh.approx adds ~2^-11 relative per logit);
// rows that see nothing: O = 0 and LSE = -inf exactly. Skipped, with the reason, without a Hopper GPU.
#include <cuda_bf16.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/kernels/attention/block_map.cuh"
#include "aipe/kernels/attention/forward_flex.hpp"
#include "aipe/kernels/attention/masks.cuh"
#include "aipe/kernels/attention/reference.cuh"
#include "aipe/kernels/attention/score_mods.cuh"
#include "aipe/random.hpp"
#include "aipe/verify.hpp"
#include "hopper_gpu.hpp"

namespace {

namespace at = aipe::kernels::attention;
using bf16 = __nv_bfloat16;

std::optional<std::string> no_hopper() { return aipe::test::no_hopper("attention::forward_flex"); }

// Document ids of `seq` positions per batch entry: documents of pseudo-random lengths 1 .. 400 (a few of
// length 1), the same pattern the ch18 ladder packs.
std::vector<int> document_ids(int batch, int seq, std::uint64_t seed) {
  std::vector<int> ids(std::size_t(batch) * seq);
  std::uint64_t x = seed;
  for (int b = 0; b < batch; ++b) {
    int doc = 0, left = 0;
    for (int i = 0; i < seq; ++i) {
      if (left == 0) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        left = 1 + int((x >> 33) % 400);
        if ((x >> 20) % 7 == 0) left = 1;
        ++doc;
      }
      ids[std::size_t(b) * seq + i] = doc;
      --left;
    }
  }
  return ids;
}

struct Shape {
  int b = 2, h = 6, kvh = 2, sq = 1000, sk = 1000, d = 128;
  bool sinks = false;  // learned sink logits per head (forward()'s, which forward_flex keeps)
};

class Problem {
 public:
  explicit Problem(const Shape& s) : s_(s) {
    q_row_ = std::int64_t(s.h) * s.d;
    kv_row_ = std::int64_t(s.kvh) * s.d;
    q_ = aipe::DeviceBuffer<bf16>(std::size_t(s.b) * s.sq * q_row_);
    o_ = aipe::DeviceBuffer<bf16>(q_.size());
    k_ = aipe::DeviceBuffer<bf16>(std::size_t(s.b) * s.sk * kv_row_);
    v_ = aipe::DeviceBuffer<bf16>(k_.size());
    lse_ = aipe::DeviceBuffer<float>(std::size_t(s.b) * s.h * s.sq);
    const std::uint64_t seed = aipe::sub_seed(0xF1E, std::uint64_t(s.sq * 31 + s.sk + s.d));
    aipe::fill_uniform(q_.get(), q_.size(), aipe::sub_seed(seed, 1), -2.f, 2.f, nullptr);
    aipe::fill_uniform(k_.get(), k_.size(), aipe::sub_seed(seed, 2), -2.f, 2.f, nullptr);
    aipe::fill_uniform(v_.get(), v_.size(), aipe::sub_seed(seed, 3), -1.f, 1.f, nullptr);
    if (s.sinks) {
      sinks_ = aipe::DeviceBuffer<float>(std::size_t(s.h));
      aipe::fill_uniform(sinks_.get(), sinks_.size(), aipe::sub_seed(seed, 4), -1.f, 4.f, nullptr);
    }
    ref_o_ = aipe::DeviceBuffer<float>(std::size_t(s.b) * s.sq * s.h * s.d);
    ref_lse_ = aipe::DeviceBuffer<float>(lse_.size());
    map_ = at::BlockMap::shape(s.b, 1, s.sq, s.sk);
    classes_ = aipe::DeviceBuffer<std::uint8_t>(map_.bytes());
  }

  template <class Mask, class Score>
  void reference(const Mask& mask, const Score& score) {
    at::ReferenceArgs<bf16> r;
    r.q = q_.get(), r.k = k_.get(), r.v = v_.get();
    r.q_batch = s_.sq * q_row_, r.q_row = q_row_, r.q_head = s_.d;
    r.kv_batch = s_.sk * kv_row_, r.kv_row = kv_row_, r.kv_head = s_.d;
    r.batch = s_.b, r.heads = s_.h, r.kv_heads = s_.kvh, r.seq_q = s_.sq, r.seq_kv = s_.sk, r.d = s_.d;
    r.scale = 1.f / std::sqrt(float(s_.d));
    r.sinks = s_.sinks ? sinks_.get() : nullptr;
    r.o = ref_o_.get();
    r.lse = ref_lse_.get();
    at::reference_attention(r, mask, score, nullptr);
    AIPE_CUDA(cudaDeviceSynchronize());
    ref_o_h_ = aipe::to_host(ref_o_, nullptr);
    ref_lse_h_ = aipe::to_host(ref_lse_, nullptr);
  }

  template <class Mask>
  void build_map(const Mask& mask) {
    at::build_block_map(mask, map_, classes_.get(), s_.sq, s_.sk, nullptr);
    AIPE_CUDA(cudaDeviceSynchronize());
  }
  std::vector<std::uint8_t> map_host() const { return aipe::to_host(classes_, nullptr); }
  const at::BlockMap& map() const { return map_; }
  std::uint8_t* classes() { return classes_.get(); }

  template <class Mask, class Score>
  void run(const Mask& mask, const Score& score, bool sparse, const at::ForwardSchedule& sched) {
    AIPE_CUDA(cudaMemset(o_.get(), 0xFF, o_.bytes()));  // BF16 0xFFFF: NaN
    AIPE_CUDA(cudaMemset(lse_.get(), 0xFF, lse_.bytes()));
    at::FlexArgs f;
    at::ForwardArgs& a = f.attn;
    a.q = q_.get(), a.k = k_.get(), a.v = v_.get(), a.o = o_.get(), a.lse = lse_.get();
    a.q_batch = s_.sq * q_row_, a.q_row = q_row_, a.q_head = s_.d;
    a.kv_batch = s_.sk * kv_row_, a.kv_row = kv_row_, a.kv_head = s_.d;
    a.batch = s_.b, a.heads = s_.h, a.kv_heads = s_.kvh, a.seq_q = s_.sq, a.seq_kv = s_.sk, a.d = s_.d;
    a.sinks = s_.sinks ? sinks_.get() : nullptr;
    a.schedule = sched;
    if (sparse) {
      f.block_map = map_;
      f.block_map.classes = classes_.get();
    }
    at::forward_flex(f, mask, score, nullptr);
    AIPE_CUDA(cudaDeviceSynchronize());
    out_o_ = aipe::to_host(o_, nullptr);
    out_lse_ = aipe::to_host(lse_, nullptr);
  }

  // O against the reference (same [b][sq][h][d] order), then LSE; "" when both match.
  std::string check() const {
    const std::size_t n = out_o_.size();
    auto out = [&](std::size_t i) { return double(static_cast<float>(out_o_[i])); };
    auto ref = [&](std::size_t i) { return double(ref_o_h_[i]); };
    aipe::Tolerance tol;
    tol.abs = 2e-2;
    tol.rel = 2e-2;
    tol.norm_rel = 1e-2;
    const aipe::VerifyResult r = aipe::compare(n, out, ref, tol);
    std::ostringstream bad;
    if (!r.ok || r.non_finite) {
      const std::size_t i = r.first.empty() ? 0 : r.first[0].index;
      bad << "O: " << r.message() << " (first at b " << i / (s_.d * s_.h * s_.sq) << " q " << i / (s_.d * s_.h) % s_.sq
          << " head " << i / s_.d % s_.h << ")";
      return bad.str();
    }
    for (std::size_t i = 0; i < n; ++i)
      if (ref_o_h_[i] == 0.f && out(i) != 0.0) return "a fully masked row has O != 0 at element " + std::to_string(i);
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < out_lse_.size(); ++i) {
      const float want = ref_lse_h_[i], got = out_lse_[i];
      const bool ok = std::isinf(want) ? got == want : std::isfinite(got) && std::fabs(got - want) <= 2e-3f;
      if (!ok && wrong++ < 5) bad << " [" << i << "] expected " << want << ", got " << got;
    }
    if (wrong) return std::to_string(wrong) + " LSE values wrong:" + bad.str();
    return "";
  }

 private:
  Shape s_;
  std::int64_t q_row_ = 0, kv_row_ = 0;
  aipe::DeviceBuffer<bf16> q_, k_, v_, o_;
  aipe::DeviceBuffer<float> lse_, ref_o_, ref_lse_, sinks_;
  aipe::DeviceBuffer<std::uint8_t> classes_;
  at::BlockMap map_;
  std::vector<float> ref_o_h_, ref_lse_h_, out_lse_;
  std::vector<bf16> out_o_;
};

// Dense and block-sparse, under two schedules: each must match the reference.
template <class Mask, class Score>
void expect_matches(const Shape& shape, const Mask& mask, const Score& score) {
  Problem p(shape);
  p.reference(mask, score);
  p.build_map(mask);
  const at::ForwardSchedule schedules[] = {{}, {.pingpong = false, .intra_overlap = true, .persistent = false}};
  for (const bool sparse : {false, true})
    for (const at::ForwardSchedule& s : schedules) {
      SCOPED_TRACE(std::string(sparse ? "block-sparse" : "dense") + (s.persistent ? " production schedule" :
                                                                     " pingpong and persistent off"));
      p.run(mask, score, sparse, s);
      const std::string why = p.check();
      EXPECT_TRUE(why.empty()) << why;
    }
}

// Device copies of document ids and ALiBi slopes for one shape.
struct Data {
  aipe::DeviceBuffer<int> ids;
  aipe::DeviceBuffer<float> slopes;
  std::vector<int> ids_h;
  Data(const Shape& s) : ids_h(document_ids(s.b, s.sq, 77 + s.sq)) {
    ids = aipe::DeviceBuffer<int>(ids_h.size());
    AIPE_CUDA(cudaMemcpy(ids.get(), ids_h.data(), ids.bytes(), cudaMemcpyHostToDevice));
    const std::vector<float> sl = at::alibi_slopes(s.h);
    slopes = aipe::DeviceBuffer<float>(sl.size());
    AIPE_CUDA(cudaMemcpy(slopes.get(), sl.data(), slopes.bytes(), cudaMemcpyHostToDevice));
  }
  at::Document doc(const Shape& s) const { return {.q_ids = ids.get(), .kv_ids = ids.get(), .seq_q = s.sq, .seq_kv = s.sk}; }
  at::Alibi alibi(const Shape& s) const { return {.slopes = slopes.get(), .offset = s.sk - s.sq}; }
};

const Shape kSquare{.sq = 1000, .sk = 1000};
const Shape kShortQ{.sq = 777, .sk = 1000};  // bottom-right alignment with seq_q < seq_kv
const Shape kLongQ{.sq = 1000, .sk = 777};   // seq_q > seq_kv: the first 223 rows of causal masks see nothing

TEST(AttentionFlexGpu, Causal) {
  if (auto why = no_hopper()) GTEST_SKIP() << *why;
  // With sinks on seq_q > seq_kv: the rows that see no key get O = 0 and LSE = the sink.
  for (const Shape& s : {kShortQ, kLongQ, Shape{.sq = 1000, .sk = 777, .sinks = true}})
    expect_matches(s, at::Causal::bottom_right(s.sq, s.sk), at::NoScoreMod{});
}

TEST(AttentionFlexGpu, SlidingWindow) {
  if (auto why = no_hopper()) GTEST_SKIP() << *why;
  for (const Shape& s : {kSquare, kShortQ, Shape{.sq = 777, .sk = 1000, .sinks = true}})
    expect_matches(s, at::SlidingWindow::bottom_right(s.sq, s.sk, 200), at::NoScoreMod{});
}

TEST(AttentionFlexGpu, PrefixLM) {
  if (auto why = no_hopper()) GTEST_SKIP() << *why;
  for (const Shape& s : {kSquare, kLongQ}) expect_matches(s, at::PrefixLM::bottom_right(s.sq, s.sk, 300), at::NoScoreMod{});
}

TEST(AttentionFlexGpu, Document) {
  if (auto why = no_hopper()) GTEST_SKIP() << *why;
  for (const Shape& s : {kSquare, Shape{.sq = 777, .sk = 777}}) {
    const Data data(s);
    expect_matches(s, data.doc(s), at::NoScoreMod{});
  }
}

TEST(AttentionFlexGpu, Alibi) {
  if (auto why = no_hopper()) GTEST_SKIP() << *why;
  for (const Shape& s : {kSquare, kShortQ}) {
    const Data data(s);
    expect_matches(s, at::NoMask{}, data.alibi(s));
  }
}

TEST(AttentionFlexGpu, SoftCap) {
  if (auto why = no_hopper()) GTEST_SKIP() << *why;
  for (const Shape& s : {kSquare, kLongQ}) expect_matches(s, at::NoMask{}, at::SoftCap::of(2.f));
}

TEST(AttentionFlexGpu, CausalAndDocument) {
  if (auto why = no_hopper()) GTEST_SKIP() << *why;
  const Shape s{.sq = 777, .sk = 777};
  const Data data(s);
  expect_matches(s, at::mask_and(at::Causal{0}, data.doc(s)), at::NoScoreMod{});
}

TEST(AttentionFlexGpu, SlidingWindowOrPrefixLM) {
  if (auto why = no_hopper()) GTEST_SKIP() << *why;
  for (const Shape& s : {kSquare, kShortQ})
    expect_matches(s, at::mask_or(at::SlidingWindow::bottom_right(s.sq, s.sk, 150),
                                  at::PrefixLM::bottom_right(s.sq, s.sk, 260)),
                   at::NoScoreMod{});
}

// The ch18/flex_attention problem at both built head dimensions.
TEST(AttentionFlexGpu, CausalDocumentWithSoftCapThenAlibi) {
  if (auto why = no_hopper()) GTEST_SKIP() << *why;
  for (const int d : {64, 128}) {
    const Shape s{.sq = 1000, .sk = 1000, .d = d};
    const Data data(s);
    SCOPED_TRACE("d " + std::to_string(d));
    expect_matches(s, at::mask_and(at::Causal{0}, data.doc(s)), at::compose(at::SoftCap::of(5.f), data.alibi(s)));
  }
}

// The block map of a data-dependent mask against a host brute force, and its visible-pair count.
TEST(AttentionFlexGpu, BlockMapOfDocumentsIsExact) {
  if (auto why = no_hopper()) GTEST_SKIP() << *why;
  const Shape s{.sq = 1000, .sk = 1000};
  const Data data(s);
  Problem p(s);
  aipe::DeviceBuffer<unsigned long long> visible(1);
  AIPE_CUDA(cudaMemset(visible.get(), 0, visible.bytes()));
  const auto mask = at::mask_and(at::Causal{0}, data.doc(s));
  at::build_block_map(mask, p.map(), p.classes(), s.sq, s.sk, nullptr, visible.get());
  AIPE_CUDA(cudaDeviceSynchronize());
  const std::vector<std::uint8_t> got = p.map_host();
  const at::Document host_doc{.q_ids = data.ids_h.data(), .kv_ids = data.ids_h.data(), .seq_q = s.sq, .seq_kv = s.sk};
  const auto host_mask = at::mask_and(at::Causal{0}, host_doc);
  std::uint64_t pairs = 0;
  int wrong = 0, empty = 0;
  for (int b = 0; b < s.b; ++b)
    for (int qb = 0; qb < p.map().q_blocks; ++qb)
      for (int kb = 0; kb < p.map().kv_blocks; ++kb) {
        bool any = false, all = true;
        for (int q = qb * at::kMapRows; q < std::min((qb + 1) * at::kMapRows, s.sq); ++q)
          for (int kv = kb * at::kMapKeys; kv < std::min((kb + 1) * at::kMapKeys, s.sk); ++kv) {
            const bool v = host_mask(b, 0, q, kv);
            any = any || v;
            all = all && v;
            pairs += v;
          }
        const auto want = !any ? at::TileClass::empty : all ? at::TileClass::full : at::TileClass::partial;
        const std::size_t i = (std::size_t(b) * p.map().q_blocks + qb) * p.map().kv_blocks + kb;
        wrong += got[i] != std::uint8_t(want);
        empty += want == at::TileClass::empty;
      }
  EXPECT_EQ(wrong, 0);
  EXPECT_GT(empty, 0);  // documents of <= 400 positions leave whole tiles empty: the map has something to skip
  EXPECT_EQ(aipe::to_host(visible, nullptr)[0], pairs);
}

}  // namespace
