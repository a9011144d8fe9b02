// CPU tests of the LLM kernels' host pieces: RoPE inverse frequencies against values computed by hand (FP32 steps of
// transformers' modeling_rope_utils, for the Llama-3.1 and gpt-oss configurations), and every entry point's argument
// checks (each bad argument is std::invalid_argument naming it, before any CUDA call).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "aipe/kernels/embedding.hpp"
#include "aipe/kernels/logits.hpp"
#include "aipe/kernels/norm.hpp"
#include "aipe/kernels/rope.hpp"
#include "aipe/kernels/sampling.hpp"
#include "aipe/kernels/swiglu.hpp"

namespace {

namespace k = aipe::kernels;

// Runs f, which must throw std::invalid_argument whose message contains `needle`.
template <class F>
void expect_invalid(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one mentioning '" << needle << "'";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
  }
}

void expect_rel(float actual, double expected, int j) {
  EXPECT_NEAR(actual, expected, std::abs(expected) * 2e-7) << "inv_freq[" << j << "]";
}

k::RopeConfig llama31() {
  return k::RopeConfig{.type = k::RopeType::llama3, .theta = 500000.0, .dim = 128, .factor = 8.0,
                       .original_max_positions = 8192, .low_freq_factor = 1.0, .high_freq_factor = 4.0};
}
k::RopeConfig gpt_oss(bool truncate) {
  return k::RopeConfig{.type = k::RopeType::yarn, .theta = 150000.0, .dim = 64, .factor = 32.0,
                       .original_max_positions = 4096, .beta_fast = 32.0, .beta_slow = 1.0, .truncate = truncate};
}

TEST(RopeFrequencies, PlainThetaIsOneOverThetaToTheTwoJOverDim) {
  const auto f = k::rope_frequencies(k::RopeConfig{.theta = 500000.0, .dim = 128});
  ASSERT_EQ(f.inv_freq.size(), 64u);
  EXPECT_EQ(f.attention_scaling, 1.0f);
  // By hand: 500000^(-2/128) = exp(-13.122363 / 64) = 0.81461722; 500000^(-40/128) = 0.01656044.
  expect_rel(f.inv_freq[0], 1.0, 0);
  expect_rel(f.inv_freq[1], 0.8146172165870667, 1);
  expect_rel(f.inv_freq[20], 0.016560440883040428, 20);
  expect_rel(f.inv_freq[63], 2.4551407022954663e-06, 63);
}

TEST(RopeFrequencies, Llama3KeepsHighDividesLowAndSmoothsBetween) {
  const auto f = k::rope_frequencies(llama31());
  ASSERT_EQ(f.inv_freq.size(), 64u);
  EXPECT_EQ(f.attention_scaling, 1.0f);
  // Wavelength 2 pi / inv_freq below 8192 / 4 = 2048: unchanged (j <= 28).
  expect_rel(f.inv_freq[0], 1.0, 0);
  expect_rel(f.inv_freq[20], 0.016560440883040428, 20);
  expect_rel(f.inv_freq[28], 0.0032114461064338684, 28);
  // Between 2048 and 8192 (j = 29..34): (1 - s) f / 8 + s f with s = (8192 / wavelen - 1) / 3. j = 30: f =
  // 0.0021311196, wavelen = 2948.3, s = 0.59283, so 0.0021311196 * (0.40717 / 8 + 0.59283) = 0.0013718937.
  expect_rel(f.inv_freq[29], 0.0021665706299245358, 29);
  expect_rel(f.inv_freq[30], 0.0013718936825171113, 30);
  expect_rel(f.inv_freq[34], 0.0001785077911335975, 34);
  // Above 8192 (j >= 35): divided by the factor 8.
  expect_rel(f.inv_freq[35], 0.0007644969737157226 / 8, 35);
  expect_rel(f.inv_freq[63], 2.4551407022954663e-06 / 8, 63);
}

TEST(RopeFrequencies, YarnAsGptOssConfiguresIt) {
  // Correction range: dim ln(4096 / (beta 2 pi)) / (2 ln 150000) = 8.0928 (beta_fast 32) and 17.398 (beta_slow 1);
  // truncated to [8, 18]. Below low: extrapolation (the plain frequency); above high: interpolation (/ 32).
  for (const bool truncate : {false, true}) {
    SCOPED_TRACE(truncate ? "truncate" : "no truncate");
    const auto f = k::rope_frequencies(gpt_oss(truncate));
    ASSERT_EQ(f.inv_freq.size(), 32u);
    EXPECT_NEAR(f.attention_scaling, 0.1 * std::log(32.0) + 1.0, 1e-6);  // 1.3465736
    expect_rel(f.inv_freq[0], 1.0, 0);
    expect_rel(f.inv_freq[5], 0.15532298386096954, 5);
    expect_rel(f.inv_freq[8], 0.05081327259540558, 8);
    expect_rel(f.inv_freq[12], truncate ? 0.007015713956207037 : 0.006794959306716919, 12);
    expect_rel(f.inv_freq[20], 1.818833698052913e-05, 20);
    expect_rel(f.inv_freq[31], 3.023511396804679e-07, 31);
  }
}

TEST(RopeFrequencies, BadConfigsNameTheField) {
  expect_invalid([] { k::rope_frequencies(k::RopeConfig{.theta = 1.0}); }, "rope_theta");
  expect_invalid([] { k::rope_frequencies(k::RopeConfig{.dim = 63}); }, "rotary dim");
  expect_invalid([] { k::rope_frequencies(k::RopeConfig{.dim = 1024}); }, "rotary dim");
  auto c = llama31();
  c.factor = 0.5;
  expect_invalid([&] { k::rope_frequencies(c); }, "factor");
  c = llama31();
  c.high_freq_factor = 1.0;
  expect_invalid([&] { k::rope_frequencies(c); }, "high_freq_factor");
  c = llama31();
  c.original_max_positions = 0;
  expect_invalid([&] { k::rope_frequencies(c); }, "original_max_position_embeddings");
  auto y = gpt_oss(false);
  y.beta_fast = 0.5;
  expect_invalid([&] { k::rope_frequencies(y); }, "beta_fast");
}

// Fake, never dereferenced device addresses: the checks run before any launch.
auto* const P = reinterpret_cast<__nv_bfloat16*>(std::uintptr_t(0x10000));
auto* const P2 = reinterpret_cast<__nv_bfloat16*>(std::uintptr_t(0x20000));
auto* const I = reinterpret_cast<int*>(std::uintptr_t(0x30000));

TEST(LlmKernelChecks, RmsNorm) {
  expect_invalid([] { k::rmsnorm(P, P, P2, 3, 0, 1e-5f); }, "hidden");
  expect_invalid([] { k::rmsnorm(P, P, P2, 3, k::kRmsNormMaxHidden + 1, 1e-5f); }, "hidden");
  expect_invalid([] { k::rmsnorm(P, P, P2, -1, 64, 1e-5f); }, "tokens");
  expect_invalid([] { k::rmsnorm(P, P, P2, 3, 64, NAN); }, "eps");
  expect_invalid([] { k::rmsnorm(nullptr, P, P2, 3, 64, 1e-5f); }, "x is null");
  expect_invalid([] { k::rmsnorm(P, nullptr, P2, 3, 64, 1e-5f); }, "weight is null");
  expect_invalid([] { k::fused_add_rmsnorm(P, nullptr, P, P2, 3, 64, 1e-5f); }, "delta is null");
  expect_invalid([] { k::fused_add_rmsnorm(P, P2, P, P, 3, 64, 1e-5f); }, "hidden (residual) buffer");
  EXPECT_NO_THROW(k::rmsnorm(nullptr, nullptr, nullptr, 0, 64, 1e-5f));  // no tokens: nothing to do
}

TEST(LlmKernelChecks, Rope) {
  const auto* table = reinterpret_cast<const float2*>(std::uintptr_t(0x40000));
  const k::RopeArgs ok{.q = P, .q_stride = 4 * 128, .heads = 4, .k = P2, .k_stride = 128, .kv_heads = 1,
                       .positions = I, .tokens = 3};
  EXPECT_NO_THROW(k::check_rope(ok, table, 100, 128));
  auto a = ok;
  a.q_stride = 4 * 128 - 1;
  expect_invalid([&] { k::check_rope(a, table, 100, 128); }, "q_stride");
  a = ok;
  a.k = nullptr;
  expect_invalid([&] { k::check_rope(a, table, 100, 128); }, "k is null");
  a = ok;
  a.positions = nullptr;
  expect_invalid([&] { k::check_rope(a, table, 100, 128); }, "positions");
  a = ok;
  a.heads = -1;
  expect_invalid([&] { k::check_rope(a, table, 100, 128); }, "heads");
  expect_invalid([&] { k::check_rope(ok, nullptr, 0, 128); }, "table");
  a = ok;
  a.head_dim = 64;
  expect_invalid([&] { k::check_rope(a, table, 100, 128); }, "head_dim 64 is not the cos/sin table's rotary dim 128");
  expect_invalid([&] { k::apply_rope(ok, k::RopeTable{}); }, "table");
  expect_invalid([] { k::RopeTable(k::RopeFrequencies{}, 16); }, "inv_freq");
}

TEST(LlmKernelChecks, SwiGluAndEmbedding) {
  expect_invalid([] { k::swiglu(P, P2, 3, 0); }, "inter");
  expect_invalid([] { k::swiglu(nullptr, P2, 3, 8); }, "gate_up is null");
  expect_invalid([] { k::swiglu(P, P + 8, 3, 8); }, "overlaps");
  expect_invalid([] { k::swiglu_clamped_interleaved(P, P2, 3, 8, {.alpha = 0.f, .limit = 7.f}); }, "alpha");
  expect_invalid([] { k::swiglu_clamped_interleaved(P, P2, 3, 8, {.alpha = 1.702f, .limit = std::nanf("")}); }, "limit");
  expect_invalid([] { k::swiglu_clamped_interleaved(P, P + 8, 3, 8, {}); }, "overlaps");
  expect_invalid([] { k::embedding(I, P, P2, nullptr, 3, 10, 8); }, "error");
  expect_invalid([] { k::embedding(nullptr, P, P2, I, 3, 10, 8); }, "ids is null");
  expect_invalid([] { k::embedding(I, P, P2, I, 3, 0, 8); }, "vocab");
  expect_invalid([] { k::embedding(I, P, P2, I, 3, 10, 0); }, "hidden");
}

TEST(LlmKernelChecks, Sampling) {
  const auto* logits = reinterpret_cast<const float*>(std::uintptr_t(0x50000));
  const auto* params = reinterpret_cast<const k::SamplingParams*>(std::uintptr_t(0x60000));
  expect_invalid([&] { k::argmax(logits, 99, 2, 100, I); }, "ld 99 is below vocab 100");
  expect_invalid([&] { k::argmax(logits, 100, 2, 0, I); }, "vocab");
  expect_invalid([&] { k::argmax(logits, 100, -1, 100, I); }, "batch");
  expect_invalid([&] { k::argmax(logits, 100, 2, 100, nullptr); }, "tokens is null");
  expect_invalid([&] { k::sample(logits, 100, 2, 100, nullptr, I); }, "params is null");
  expect_invalid([&] { k::sample(static_cast<const float*>(nullptr), 100, 2, 100, params, I); }, "logits is null");
  EXPECT_NO_THROW(k::check_sampling_params(k::SamplingParams{.temperature = 0.7f, .top_k = 50, .top_p = 0.9f}));
  expect_invalid([] { k::check_sampling_params(k::SamplingParams{.temperature = -1}); }, "temperature");
  expect_invalid([] { k::check_sampling_params(k::SamplingParams{.temperature = INFINITY}); }, "temperature");
  expect_invalid([] { k::check_sampling_params(k::SamplingParams{.top_k = -3}); }, "top_k");
  expect_invalid([] { k::check_sampling_params(k::SamplingParams{.top_p = 0}); }, "top_p");
  expect_invalid([] { k::check_sampling_params(k::SamplingParams{.top_p = 1.5f}); }, "top_p");
  expect_invalid([] { k::check_sampling_params(k::SamplingParams{.min_p = NAN}); }, "min_p");
}

TEST(LlmKernelChecks, SoftcapAndLogSoftmax) {
  auto* logits = reinterpret_cast<float*>(std::uintptr_t(0x50000));
  expect_invalid([&] { k::softcap(logits, 100, 2, 100, 0.f); }, "cap");
  expect_invalid([&] { k::softcap(logits, 100, 2, 100, NAN); }, "cap");
  expect_invalid([&] { k::softcap(logits, 99, 2, 100, 30.f); }, "ld 99");
  expect_invalid([&] { k::log_softmax(logits, 100, 2, 100, nullptr, 100); }, "out is null");
  expect_invalid([&] { k::log_softmax(logits, 100, 2, 100, logits, 50); }, "ld_out 50");
  expect_invalid([&] { k::log_softmax(logits, 100, -2, 100, logits, 100); }, "batch");
}

}  // namespace
