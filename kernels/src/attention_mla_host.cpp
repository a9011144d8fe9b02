// Host side of MLA decode (mla.hpp): the argument checks, the split plan, the FP8 row decoder and the float32
// reference. No CUDA runtime call here, so the CPU tests reach all of it.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "aipe/kernels/attention/mla.hpp"

namespace aipe::kernels::attention {

namespace {

[[noreturn]] void fail(const std::string& what) { throw std::invalid_argument(what); }

bool aligned16(const void* p) { return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0; }

std::string str(std::int64_t v) { return std::to_string(v); }

constexpr int kRowTile = 64;  // query rows per CTA (attention_mla.cu)

float bf16_bits_to_float(std::uint16_t bits) {
  const std::uint32_t u = std::uint32_t(bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

}  // namespace

void check_mla_decode_args(const MlaDecodeArgs& a) {
  if (!a.q) fail("mla_decode: q must not be null");
  if (!a.out) fail("mla_decode: out must not be null");
  if (!a.kv) fail("mla_decode: kv must not be null");
  if (!a.block_table) fail("mla_decode: block_table must not be null");
  if (!a.context_lens) fail("mla_decode: context_lens must not be null");
  if (a.format != MlaKvFormat::bf16 && a.format != MlaKvFormat::fp8_flashmla)
    fail("mla_decode: format must be bf16 or fp8_flashmla");
  if (a.batch < 1 || a.batch > 65535) fail("mla_decode: batch must be in [1, 65535] (got " + str(a.batch) + ")");
  if (a.q_len < 1 || a.q_len > 2) fail("mla_decode: q_len must be 1 or 2 (got " + str(a.q_len) + ")");
  if (a.heads < 1 || a.heads > 256) fail("mla_decode: heads must be in [1, 256] (got " + str(a.heads) + ")");
  if (a.num_pages < 1) fail("mla_decode: num_pages must be at least 1 (got " + str(a.num_pages) + ")");
  if (a.max_pages_per_seq < 1)
    fail("mla_decode: max_pages_per_seq must be at least 1 (got " + str(a.max_pages_per_seq) + ")");
  const std::int64_t capacity = std::int64_t(a.max_pages_per_seq) * kMlaPageTokens;
  if (capacity > std::numeric_limits<int>::max())
    fail("mla_decode: max_pages_per_seq * 64 (" + str(capacity) + ") exceeds int32 positions");
  if (a.max_context < 0 || a.max_context > capacity)
    fail("mla_decode: max_context (" + str(a.max_context) + ") must be in [0, max_pages_per_seq * 64 = " +
         str(capacity) + "]");
  if (a.total_context < 0) fail("mla_decode: total_context must be >= 0 (0: unknown)");
  if (!(a.scale >= 0.f) || std::isinf(a.scale)) fail("mla_decode: scale must be finite and >= 0 (0: 1/sqrt(576))");
  if (a.schedule.num_splits < 0) fail("mla_decode: schedule.num_splits must be >= 0");
  if (!aligned16(a.q) || !aligned16(a.out) || !aligned16(a.kv))
    fail("mla_decode: q, out and kv must be 16-byte aligned (cp.async)");
  if (a.workspace && !aligned16(a.workspace)) fail("mla_decode: workspace must be 16-byte aligned");
}

MlaDecodePlan plan_mla_decode(const MlaDecodeArgs& a, int sm_count) {
  check_mla_decode_args(a);
  if (sm_count < 1) fail("mla_decode: sm_count must be at least 1");
  MlaDecodePlan p;
  p.row_tiles = (a.q_len * a.heads + kRowTile - 1) / kRowTile;
  const int max_ctx = a.max_context > 0 ? a.max_context : a.max_pages_per_seq * kMlaPageTokens;
  const int max_tiles = std::max(1, (max_ctx + kMlaPageTokens - 1) / kMlaPageTokens);
  if (a.schedule.num_splits > 0) {
    p.split = plan_splits({.sm_count = sm_count,
                           .ctas_per_sm = 1,
                           .ctas_per_split = a.batch * p.row_tiles,
                           .max_context = max_ctx,
                           .tile_tokens = kMlaPageTokens,
                           .requested = a.schedule.num_splits});
  } else {
    // The time model of the header, in tiles per SM. The sum of contexts, unknown, is taken as 3/4 of
    // batch x max_context (a ragged batch of lengths in [max/2, max]).
    const double total_tiles = a.total_context > 0 ? double(a.total_context) / kMlaPageTokens
                                                   : 0.75 * double(a.batch) * max_tiles;
    const double tile_bytes = a.format == MlaKvFormat::bf16 ? double(kMlaPageTokens) * kMlaDimQk * 2
                                                            : double(kMlaPageTokens) * kMlaFp8TokenBytes;
    const double partial = 2.0 * kRowTile * kMlaDimV * sizeof(float) / tile_bytes;
    double best = 0;
    int best_tiles = max_tiles;
    for (int s = 1; s <= std::min(max_tiles, 128); ++s) {
      const int per_split = (max_tiles + s - 1) / s;
      const int splits = (max_tiles + per_split - 1) / per_split;
      if (splits != s) continue;  // the same cut as a smaller count
      const double overhead = 1.0 + (s > 1 ? partial : 0.0);
      const double all = double(p.row_tiles) * (total_tiles + double(a.batch) * s * overhead) / sm_count;
      const double time = std::max(all, per_split + overhead);
      if (s == 1 || time < best * 0.98) {  // a split must win clearly: each one adds a partial O
        best = time;
        best_tiles = per_split;
      }
    }
    p.split = {.num_splits = (max_tiles + best_tiles - 1) / best_tiles, .tokens_per_split = best_tiles * kMlaPageTokens};
  }
  if (p.split.num_splits > 1) {
    const std::size_t rows = std::size_t(a.batch) * a.q_len * a.heads;
    p.workspace_bytes = std::size_t(p.split.num_splits) * rows * (kMlaDimV + 1) * sizeof(float);
  }
  return p;
}

float e4m3_to_float(std::uint8_t bits) {
  const bool neg = bits & 0x80u;
  const int exp = (bits >> 3) & 0xF, man = bits & 0x7;
  float v;
  if (exp == 0xF && man == 0x7) v = std::numeric_limits<float>::quiet_NaN();
  else if (exp == 0) v = std::ldexp(float(man) / 8.f, -6);
  else v = std::ldexp(1.f + float(man) / 8.f, exp - 7);
  return neg ? -v : v;
}

void dequantize_mla_fp8_row(const std::uint8_t* row, float* out576) {
  float scales[kMlaDimV / kMlaFp8ScaleGroup];
  std::memcpy(scales, row + kMlaDimV, sizeof scales);
  for (int i = 0; i < kMlaDimV; ++i) out576[i] = e4m3_to_float(row[i]) * scales[i / kMlaFp8ScaleGroup];
  const std::uint8_t* rope = row + kMlaDimV + sizeof scales;
  for (int i = 0; i < kMlaDimRope; ++i) {
    std::uint16_t bits;
    std::memcpy(&bits, rope + 2 * i, 2);
    out576[kMlaDimV + i] = bf16_bits_to_float(bits);
  }
}

void mla_reference(const MlaReferenceArgs& a, std::vector<float>& out, std::vector<float>& lse) {
  const std::size_t batch = a.context_lens.size();
  if (a.heads < 1 || a.q_len < 1 || a.max_pages_per_seq < 1) fail("mla_reference: heads, q_len, max_pages >= 1");
  if (a.q.size() != batch * a.q_len * a.heads * kMlaDimQk) fail("mla_reference: q has the wrong size");
  if (a.kv.size() % (std::size_t(kMlaPageTokens) * kMlaDimQk) != 0) fail("mla_reference: kv is not whole pages");
  const std::size_t pages = a.kv.size() / (std::size_t(kMlaPageTokens) * kMlaDimQk);
  check_block_table(a.block_table, a.context_lens, a.max_pages_per_seq, kMlaPageTokens, int(pages));
  const float scale = a.scale > 0.f ? a.scale : 1.f / std::sqrt(float(kMlaDimQk));
  out.assign(batch * a.q_len * a.heads * kMlaDimV, 0.f);
  lse.assign(batch * a.heads * a.q_len, -std::numeric_limits<float>::infinity());
  std::vector<float> s;
  for (std::size_t b = 0; b < batch; ++b) {
    const int ctx = a.context_lens[b];
    auto key = [&](int t) {
      const int page = a.block_table[b * a.max_pages_per_seq + t / kMlaPageTokens];
      return a.kv.data() + (std::size_t(page) * kMlaPageTokens + t % kMlaPageTokens) * kMlaDimQk;
    };
    for (int qi = 0; qi < a.q_len; ++qi) {
      const int visible = std::clamp(ctx - a.q_len + qi + 1, 0, ctx);  // keys t <= position
      for (int h = 0; h < a.heads; ++h) {
        const std::size_t row = (b * a.q_len + qi) * a.heads + h;
        const float* q = a.q.data() + row * kMlaDimQk;
        if (visible == 0) continue;
        s.assign(visible, 0.f);
        float mx = -std::numeric_limits<float>::infinity();
        for (int t = 0; t < visible; ++t) {
          const float* k = key(t);
          float acc = 0.f;
          for (int i = 0; i < kMlaDimQk; ++i) acc += q[i] * k[i];
          s[t] = acc * scale;
          mx = std::max(mx, s[t]);
        }
        float sum = 0.f;
        for (int t = 0; t < visible; ++t) {
          s[t] = std::exp(s[t] - mx);
          sum += s[t];
        }
        float* o = out.data() + row * kMlaDimV;
        for (int t = 0; t < visible; ++t) {
          const float* v = key(t);
          const float w = s[t] / sum;
          for (int i = 0; i < kMlaDimV; ++i) o[i] += w * v[i];
        }
        lse[(b * a.heads + h) * a.q_len + qi] = mx + std::log(sum);
      }
    }
  }
}

}  // namespace aipe::kernels::attention
