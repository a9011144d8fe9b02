// GptOssModel on the GPU against a float reference on the host that reads the same weights (MXFP4 experts
// dequantized here from their codes and exponents), at small awkward shapes: hidden 160, intermediate 96, 4 query
// heads and 2 K/V heads of 64, 8 experts top-2, vocab 301, YaRN RoPE, a 5-token sliding window under prompts of 9
// to 14 tokens. One model of one layer per kind (sliding with sinks, full with sinks): a prefill step of two
// prompts, batched decode steps, then mixed steps (a decode beside a new prompt, a decode beside a 6-token chunk
// over 12 cached tokens); every sequence's logits against the reference's. The reference rounds to BF16 where the model stores BF16, so the difference is GEMM
// summation order; a step whose last token's top-2 experts the reference cannot separate from the third within
// two BF16 ulps is skipped (the model may pick either), and most steps must be checked. Then a two-layer model:
// decode eager and replayed from a CUDA graph give bit-identical logits.
#include <cuda_bf16.h>
#include <gtest/gtest.h>

#include "../kernels/hopper_gpu.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/check.hpp"
#include "aipe/kernels/moe.hpp"
#include "aipe/llm/gpt_oss.hpp"
#include "aipe/llm/model_files.hpp"
#include "aipe/llm/weight_specs.hpp"
#include "aipe/random.hpp"

namespace {

using aipe::llm::GptOssModel;
using aipe::llm::GptOssShape;
using aipe::llm::ModelConfig;
using aipe::llm::ModelLimits;
using aipe::llm::StepBatch;
using bf16 = __nv_bfloat16;

std::optional<std::string> no_hopper() { return aipe::test::no_hopper("the gpt-oss model"); }

float bf(double v) { return __bfloat162float(__float2bfloat16_rn(float(v))); }

constexpr int kPage = 16, kPagesPerSeq = 4, kSeqs = 4;

ModelConfig small_config(const std::vector<std::string>& layer_types) {
  nlohmann::json j = {{"model_type", "gpt_oss"},     {"hidden_size", 160},       {"intermediate_size", 96},
                      {"num_hidden_layers", int(layer_types.size())},          {"num_attention_heads", 4},
                      {"num_key_value_heads", 2},    {"head_dim", 64},           {"vocab_size", 301},
                      {"max_position_embeddings", 256}, {"rms_norm_eps", 1e-5},  {"num_local_experts", 8},
                      {"num_experts_per_tok", 2},    {"sliding_window", 5},      {"torch_dtype", "bfloat16"},
                      {"layer_types", layer_types},  {"rope_theta", 150000.0},
                      {"quantization_config", {{"quant_method", "mxfp4"}}},
                      {"rope_scaling", {{"rope_type", "yarn"}, {"factor", 4.0}, {"beta_fast", 32.0},
                                        {"beta_slow", 1.0}, {"truncate", false},
                                        {"original_max_position_embeddings", 64}}}};
  return aipe::llm::parse_model_config(j.dump(), "small/config.json");
}

// The host's copy of every weight: BF16 tensors as floats, U8 tensors as bytes.
struct HostWeights {
  std::map<std::string, std::vector<float>> f;
  std::map<std::string, std::vector<std::uint8_t>> u8;
  const std::vector<float>& operator[](const std::string& n) const { return f.at(n); }
};

// Synthetic weights, with every bias redrawn in [-0.5, 0.5] (the default 1 +- 0.02 for vectors would make V,
// and so the attention output, nearly constant) and planted sink logits, copied to the host.
aipe::llm::DeviceWeights make_weights(const ModelConfig& c, HostWeights& host) {
  aipe::llm::DeviceWeights w(aipe::llm::weight_specs(c, aipe::llm::DType::BF16));
  w.fill_synthetic({.seed = 7}, nullptr);
  std::uint64_t seed = 100;
  for (const auto& s : w.specs()) {
    const std::size_t n = s.bytes() / aipe::llm::dtype_size(s.dtype);
    if (s.name.size() > 4 && s.name.compare(s.name.size() - 4, 4, "bias") == 0)
      aipe::fill_uniform(w.get<bf16>(s.name), n, seed++, -0.5f, 0.5f, nullptr);
    if (s.name.find("self_attn.sinks") != std::string::npos) {
      const std::vector<bf16> sinks = {__float2bfloat16(2.0f), __float2bfloat16(-1.0f), __float2bfloat16(0.5f),
                                       __float2bfloat16(3.0f)};
      AIPE_CUDA(cudaMemcpy(w.get<bf16>(s.name), sinks.data(), sinks.size() * sizeof(bf16), cudaMemcpyHostToDevice));
    }
  }
  AIPE_CUDA(cudaDeviceSynchronize());
  for (const auto& s : w.specs()) {
    if (s.dtype == aipe::llm::DType::U8) {
      std::vector<std::uint8_t> v(s.bytes());
      AIPE_CUDA(cudaMemcpy(v.data(), w.raw(s.name), v.size(), cudaMemcpyDeviceToHost));
      host.u8[s.name] = std::move(v);
    } else {
      std::vector<bf16> v(s.bytes() / sizeof(bf16));
      AIPE_CUDA(cudaMemcpy(v.data(), w.raw(s.name), s.bytes(), cudaMemcpyDeviceToHost));
      std::vector<float> fv(v.size());
      for (std::size_t i = 0; i < v.size(); ++i) fv[i] = __bfloat162float(v[i]);
      host.f[s.name] = std::move(fv);
    }
  }
  return w;
}

// W [rows][cols] of expert e from MXFP4 blocks [E][rows][cols/32][16] and scales [E][rows][cols/32].
std::vector<float> dequant(const HostWeights& w, const std::string& name, int e, int rows, int cols) {
  const auto& blocks = w.u8.at(name + "_blocks");
  const auto& scales = w.u8.at(name + "_scales");
  const int nb = cols / 32;
  std::vector<float> out(std::size_t(rows) * cols);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      const std::size_t blk = (std::size_t(e) * rows + r) * nb + c / 32;
      const std::uint8_t byte = blocks[blk * 16 + (c % 32) / 2];
      const unsigned code = (c % 2 == 0) ? (byte & 0xFu) : (byte >> 4);
      out[std::size_t(r) * cols + c] =
          float(std::ldexp(double(aipe::kernels::moe::e2m1_value(code)), int(scales[blk]) - 127));
    }
  return out;
}

std::vector<float> rmsnorm(const std::vector<float>& x, const std::vector<float>& w, float eps) {
  double ss = 0;
  for (float v : x) ss += double(v) * v;
  const double r = 1.0 / std::sqrt(ss / x.size() + eps);
  std::vector<float> y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) y[i] = bf(x[i] * r * w[i]);
  return y;
}

// y[n] = sum_k x[k] W[n][k] (+ b[n]), W rows `ld` apart from `w0`.
std::vector<double> linear(const std::vector<float>& x, const float* w0, int n, const float* b) {
  std::vector<double> y(static_cast<std::size_t>(n));
  const std::size_t k = x.size();
  for (int i = 0; i < n; ++i) {
    double s = b ? b[i] : 0.0;
    for (std::size_t j = 0; j < k; ++j) s += double(x[j]) * w0[std::size_t(i) * k + j];
    y[std::size_t(i)] = s;
  }
  return y;
}

std::vector<float> round_all(const std::vector<double>& v) {
  std::vector<float> o(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) o[i] = bf(v[i]);
  return o;
}

double bf16_ulp(double m) { return m == 0 ? 0 : std::ldexp(1.0, int(std::floor(std::log2(std::abs(m)))) - 7); }

// The logits after the last of `tokens` (positions 0 .. n-1) of a one-layer model; *ambiguous when that token's
// top-k experts are within two BF16 ulps of the next one.
std::vector<double> reference(const GptOssShape& s, const HostWeights& w, const std::vector<int>& tokens,
                              bool* ambiguous) {
  const int H = s.hidden, I = s.intermediate, d = s.head_dim, nq = s.heads * d, nkv = s.kv_heads * d;
  const int n = int(tokens.size()), p = n - 1;
  const std::string L = "model.layers.0.";
  const auto freq = aipe::kernels::rope_frequencies(s.rope);
  auto rope = [&](float* v, int pos) {
    for (int j = 0; j < d / 2; ++j) {
      const float angle = float(pos) * freq.inv_freq[std::size_t(j)];
      const float c = float(std::cos(double(angle))) * freq.attention_scaling;
      const float sn = float(std::sin(double(angle))) * freq.attention_scaling;
      const float x1 = v[j], x2 = v[j + d / 2];
      v[j] = bf(double(x1) * c - double(x2) * sn);
      v[j + d / 2] = bf(double(x2) * c + double(x1) * sn);
    }
  };
  // Every position's k and v (the cache), and the last token's q.
  std::vector<std::vector<float>> ks(n), vs(n), xs(n);
  std::vector<float> q;
  for (int t = 0; t < n; ++t) {
    const float* e = w["model.embed_tokens.weight"].data() + std::size_t(tokens[t]) * H;
    xs[t].assign(e, e + H);
    const auto h = rmsnorm(xs[t], w[L + "input_layernorm.weight"], s.rms_eps);
    auto qkv = round_all(linear(h, w[L + "self_attn.qkv_proj.weight"].data(), nq + 2 * nkv,
                                w[L + "self_attn.qkv_proj.bias"].data()));
    for (int hh = 0; hh < s.heads; ++hh) rope(qkv.data() + hh * d, t);
    for (int hh = 0; hh < s.kv_heads; ++hh) rope(qkv.data() + nq + hh * d, t);
    ks[t].assign(qkv.begin() + nq, qkv.begin() + nq + nkv);
    vs[t].assign(qkv.begin() + nq + nkv, qkv.end());
    if (t == p) q.assign(qkv.begin(), qkv.begin() + nq);
  }
  const bool sliding = s.sliding[0];
  const int lo = sliding ? std::max(0, p - s.sliding_window + 1) : 0;
  const std::vector<float>& sinks = w[L + "self_attn.sinks"];
  std::vector<float> o(static_cast<std::size_t>(nq));
  for (int hh = 0; hh < s.heads; ++hh) {
    const int g = hh / (s.heads / s.kv_heads);
    std::vector<double> sc;
    double m = sinks[std::size_t(hh)];
    for (int t = lo; t <= p; ++t) {
      double dot = 0;
      for (int i = 0; i < d; ++i) dot += double(q[std::size_t(hh * d + i)]) * ks[t][std::size_t(g * d + i)];
      sc.push_back(dot / std::sqrt(double(d)));
      m = std::max(m, sc.back());
    }
    double den = std::exp(sinks[std::size_t(hh)] - m);
    for (double v : sc) den += std::exp(v - m);
    for (int i = 0; i < d; ++i) {
      double acc = 0;
      for (int t = lo; t <= p; ++t) acc += std::exp(sc[std::size_t(t - lo)] - m) * vs[t][std::size_t(g * d + i)];
      o[std::size_t(hh * d + i)] = bf(acc / den);
    }
  }
  const auto delta = round_all(linear(o, w[L + "self_attn.o_proj.weight"].data(), H, w[L + "self_attn.o_proj.bias"].data()));
  std::vector<float> x(static_cast<std::size_t>(H));
  for (int i = 0; i < H; ++i) x[std::size_t(i)] = bf(double(xs[p][std::size_t(i)]) + delta[std::size_t(i)]);
  const auto h = rmsnorm(x, w[L + "post_attention_layernorm.weight"], s.rms_eps);
  const auto r = round_all(linear(h, w[L + "mlp.router.weight"].data(), s.experts, w[L + "mlp.router.bias"].data()));
  std::vector<int> order(static_cast<std::size_t>(s.experts));
  for (int e = 0; e < s.experts; ++e) order[std::size_t(e)] = e;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return r[std::size_t(a)] > r[std::size_t(b)]; });
  const double kth = r[std::size_t(order[std::size_t(s.top_k - 1)])], next = r[std::size_t(order[std::size_t(s.top_k)])];
  *ambiguous = kth - next <= 2 * bf16_ulp(kth);
  double mx = -INFINITY, den = 0;
  for (int j = 0; j < s.top_k; ++j) mx = std::max(mx, double(r[std::size_t(order[std::size_t(j)])]));
  for (int j = 0; j < s.top_k; ++j) den += std::exp(r[std::size_t(order[std::size_t(j)])] - mx);
  std::vector<double> moe(std::size_t(H), 0.0);
  for (int j = 0; j < s.top_k; ++j) {
    const int e = order[std::size_t(j)];
    const double wt = std::exp(r[std::size_t(e)] - mx) / den;
    const auto wgu = dequant(w, L + "mlp.experts.gate_up_proj", e, 2 * I, H);
    const auto gu = round_all(linear(h, wgu.data(), 2 * I, w[L + "mlp.experts.gate_up_proj_bias"].data() + std::size_t(e) * 2 * I));
    std::vector<float> a(static_cast<std::size_t>(I));
    for (int i = 0; i < I; ++i) {
      const double g = std::min<double>(gu[std::size_t(2 * i)], s.act.limit);
      const double u = std::clamp<double>(gu[std::size_t(2 * i + 1)], -s.act.limit, s.act.limit);
      a[std::size_t(i)] = bf((u + 1) * g / (1 + std::exp(-double(s.act.alpha) * g)));
    }
    const auto wd = dequant(w, L + "mlp.experts.down_proj", e, H, I);
    const auto y = round_all(linear(a, wd.data(), H, w[L + "mlp.experts.down_proj_bias"].data() + std::size_t(e) * H));
    for (int i = 0; i < H; ++i) moe[std::size_t(i)] += wt * y[std::size_t(i)];
  }
  for (int i = 0; i < H; ++i) x[std::size_t(i)] = bf(double(x[std::size_t(i)]) + moe[std::size_t(i)]);
  const auto hf = rmsnorm(x, w["model.norm.weight"], s.rms_eps);
  return linear(hf, w["lm_head.weight"].data(), s.vocab, nullptr);
}

// A step's arrays for sequences (id, tokens so far, new tokens this step); sequence id owns pages
// id * kPagesPerSeq ...
StepBatch make_step(const std::vector<std::pair<int, std::pair<int, std::vector<int>>>>& seqs) {
  StepBatch b;
  for (const auto& [id, rest] : seqs) {
    const auto& [cached, toks] = rest;
    for (std::size_t i = 0; i < toks.size(); ++i) {
      const int pos = cached + int(i);
      b.tokens.push_back(toks[i]);
      b.positions.push_back(pos);
      b.slots.push_back(std::int64_t(id * kPagesPerSeq + pos / kPage) * kPage + pos % kPage);
    }
    b.q_lens.push_back(int(toks.size()));
    b.context_lens.push_back(cached + int(toks.size()));
    for (int pg = 0; pg < kPagesPerSeq; ++pg) b.block_table.push_back(id * kPagesPerSeq + pg);
  }
  return b;
}

std::vector<float> logits_rows(const GptOssModel& m, int seqs) {
  std::vector<bf16> h(std::size_t(seqs) * m.info().vocab);
  AIPE_CUDA(cudaMemcpy(h.data(), m.logits(), h.size() * sizeof(bf16), cudaMemcpyDeviceToHost));
  std::vector<float> f(h.size());
  for (std::size_t i = 0; i < h.size(); ++i) f[i] = __bfloat162float(h[i]);
  return f;
}

std::unique_ptr<GptOssModel> make_model(const ModelConfig& c, HostWeights& host, cudaStream_t stream) {
  auto w = make_weights(c, host);
  const ModelLimits lim{.max_tokens = 64, .max_seqs = kSeqs, .max_pages_per_seq = kPagesPerSeq};
  return std::make_unique<GptOssModel>(aipe::llm::gpt_oss_shape(c), std::move(w),
                                       aipe::llm::GptOssCache{.num_pages = kSeqs * kPagesPerSeq, .page_size = kPage},
                                       lim, aipe::llm::ModelInfo{.name = "small", .family = "gpt_oss"}, stream);
}

}  // namespace

TEST(GptOssGpu, OneLayerOfEachKindMatchesTheFloatReference) {
  if (auto why = no_hopper()) GTEST_SKIP() << *why;
  for (const char* kind : {"sliding_attention", "full_attention"}) {
    SCOPED_TRACE(kind);
    const ModelConfig c = small_config({kind});
    const GptOssShape shape = aipe::llm::gpt_oss_shape(c);
    HostWeights host;
    aipe::Stream stream;
    auto m = make_model(c, host, stream.get());
    std::vector<std::vector<int>> seq(3);
    std::uint64_t draw = 0;
    auto token = [&] { return int(aipe::bits_at(11, draw++) % 301u); };
    for (int i = 0; i < 14; ++i) seq[0].push_back(token());
    for (int i = 0; i < 9; ++i) seq[1].push_back(token());
    int checked = 0, skipped = 0;
    // Each step: which sequences take part and how many new tokens each has (their last ones in seq[id]).
    auto run = [&](const std::vector<std::pair<int, int>>& part, const std::string& what) {
      std::vector<std::pair<int, std::pair<int, std::vector<int>>>> s;
      for (const auto& [id, fresh] : part) {
        const auto& t = seq[std::size_t(id)];
        s.push_back({id, {int(t.size()) - fresh, std::vector<int>(t.end() - fresh, t.end())}});
      }
      const StepBatch b = make_step(s);
      AIPE_CUDA(cudaMemset(const_cast<bf16*>(m->logits()), 0xff, std::size_t(part.size()) * 301 * sizeof(bf16)));
      m->step(b, stream.get());
      AIPE_CUDA(cudaStreamSynchronize(stream.get()));
      EXPECT_FALSE(m->take_error(stream.get())) << what;
      const auto got = logits_rows(*m, int(part.size()));
      for (std::size_t r = 0; r < part.size(); ++r) {
        bool ambiguous = false;
        const auto ref = reference(shape, host, seq[std::size_t(part[r].first)], &ambiguous);
        if (ambiguous) {
          ++skipped;
          continue;
        }
        ++checked;
        double scale = 0, worst = 0;
        std::size_t at = 0;
        for (std::size_t v = 0; v < ref.size(); ++v) {
          scale = std::max(scale, std::abs(ref[v]));
          const double e = std::abs(double(got[r * 301 + v]) - ref[v]);
          if (!(e <= worst)) worst = e, at = v;  // NaN lands here
        }
        EXPECT_LE(worst, 0.03 * scale) << what << ", sequence " << part[r].first << ": logit " << at << " is "
                                       << got[r * 301 + at] << ", reference " << ref[at] << " (max |ref| " << scale << ")";
      }
    };
    run({{0, 14}, {1, 9}}, "prefill of two prompts");
    for (int step = 0; step < 3; ++step) {
      seq[0].push_back(token());
      seq[1].push_back(token());
      run({{0, 1}, {1, 1}}, "decode step " + std::to_string(step));
    }
    seq[0].push_back(token());
    for (int i = 0; i < 11; ++i) seq[2].push_back(token());
    run({{0, 1}, {2, 11}}, "a decode beside a new prompt");
    seq[0].push_back(token());
    for (int i = 0; i < 6; ++i) seq[1].push_back(token());
    run({{0, 1}, {1, 6}}, "a decode beside a chunk over a cached prefix");
    EXPECT_GE(checked, 2 * skipped + 4) << checked << " sequences checked, " << skipped << " ambiguous";
  }
}

TEST(GptOssGpu, DecodeFromACudaGraphMatchesEager) {
  if (auto why = no_hopper()) GTEST_SKIP() << *why;
  const ModelConfig c = small_config({"sliding_attention", "full_attention"});
  HostWeights host;
  aipe::Stream stream;
  auto m = make_model(c, host, stream.get());
  std::vector<std::pair<int, std::pair<int, std::vector<int>>>> prompts;
  std::uint64_t draw = 0;
  for (int id = 0; id < 3; ++id) {
    std::vector<int> t;
    for (int i = 0; i < 5 + 14 * id; ++i) t.push_back(int(aipe::bits_at(12, draw++) % 301u));
    prompts.push_back({id, {0, t}});
  }
  m->step(make_step(prompts), stream.get());
  std::vector<std::pair<int, std::pair<int, std::vector<int>>>> dec;
  for (const auto& [id, rest] : prompts) dec.push_back({id, {int(rest.second.size()), {int(id) + 7}}});
  const StepBatch b = make_step(dec);
  m->upload(b, stream.get());
  m->run_decode(3, stream.get());  // eager: sizes the workspaces
  AIPE_CUDA(cudaStreamSynchronize(stream.get()));
  const auto eager = logits_rows(*m, 3);
  for (float v : eager) ASSERT_TRUE(std::isfinite(v));
  AIPE_CUDA(cudaMemset(const_cast<bf16*>(m->logits()), 0xff, 3 * 301 * sizeof(bf16)));
  const aipe::Graph g = aipe::Graph::capture(stream.get(), [&](cudaStream_t s) { m->run_decode(3, s); });
  const aipe::GraphExec ge(g);
  ge.launch(stream.get());
  AIPE_CUDA(cudaStreamSynchronize(stream.get()));
  const auto replay = logits_rows(*m, 3);
  ASSERT_EQ(eager.size(), replay.size());
  for (std::size_t i = 0; i < eager.size(); ++i)
    ASSERT_EQ(eager[i], replay[i]) << "logit " << i % 301 << " of sequence " << i / 301;
  EXPECT_FALSE(m->take_error(stream.get()));
}

// aipe's side of scripts/gpt_oss_oracle.py: with AIPE_GPT_OSS_CHECKPOINT (a folder the script made) and
// AIPE_GPT_OSS_OUT set, each prompt of DIR/prompts.json is prefilled (its logits kept) and decoded greedily for
// max_new_tokens; the script's `check` compares both with transformers. Skips without the variables.
TEST(GptOssGpu, OracleCheckpointGreedy) {
  if (auto why = no_hopper()) GTEST_SKIP() << *why;
  const char* dir = std::getenv("AIPE_GPT_OSS_CHECKPOINT");
  const char* out = std::getenv("AIPE_GPT_OSS_OUT");
  if (!dir || !out) GTEST_SKIP() << "set AIPE_GPT_OSS_CHECKPOINT and AIPE_GPT_OSS_OUT (scripts/gpt_oss_oracle.py)";
  std::ifstream pf(std::string(dir) + "/prompts.json");
  ASSERT_TRUE(pf) << dir << "/prompts.json";
  const nlohmann::json pj = nlohmann::json::parse(pf);
  const int new_tokens = pj.value("max_new_tokens", 16);
  aipe::Stream stream;
  const aipe::llm::ModelFiles files = aipe::llm::open_model_files(dir);
  aipe::llm::LoadOptions opt;
  opt.limits = {.max_tokens = 512, .max_seqs = 1, .max_pages_per_seq = 0};
  opt.max_cache_pages = 64;
  auto m = aipe::llm::load_gpt_oss(files, opt, stream.get());
  const int V = m->info().vocab, maxp = m->limits().max_pages_per_seq;
  nlohmann::json outputs = nlohmann::json::array();
  for (const auto& pr : pj.at("prompts")) {
    const std::vector<int> prompt = pr.get<std::vector<int>>();
    ASSERT_LE(int(prompt.size()) + new_tokens, 64 * kPage);
    // One sequence on pages 0, 1, ... (each prompt overwrites the last one's).
    auto batch = [&](const std::vector<int>& toks, int cached) {
      StepBatch b;
      for (std::size_t i = 0; i < toks.size(); ++i) {
        const int pos = cached + int(i);
        b.tokens.push_back(toks[i]);
        b.positions.push_back(pos);
        b.slots.push_back(pos);
      }
      b.q_lens = {int(toks.size())};
      b.context_lens = {cached + int(toks.size())};
      for (int pg = 0; pg < maxp; ++pg) b.block_table.push_back(pg < 64 ? pg : 0);
      return b;
    };
    m->step(batch(prompt, 0), stream.get());
    std::vector<float> logits = logits_rows(*m, 1);
    const std::vector<float> prefill = logits;
    std::vector<int> gen;
    for (int t = 0; t < new_tokens; ++t) {
      const int next = int(std::max_element(logits.begin(), logits.end()) - logits.begin());
      gen.push_back(next);
      if (t + 1 == new_tokens) break;
      m->step(batch({next}, int(prompt.size()) + t), stream.get());
      logits = logits_rows(*m, 1);
    }
    ASSERT_FALSE(m->take_error(stream.get()));
    outputs.push_back({{"tokens", gen}, {"prefill_logits", prefill}});
    ASSERT_EQ(int(prefill.size()), V);
  }
  std::ofstream(out) << nlohmann::json{{"outputs", outputs}}.dump() << "\n";
}
