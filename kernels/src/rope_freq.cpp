// RoPE inverse frequencies, computed as transformers' modeling_rope_utils does (FP32 tensors, Python-float scalars
// that PyTorch applies in FP32), so that a checkpoint's positions rotate exactly as they did in training.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "aipe/kernels/rope.hpp"

namespace aipe::kernels {
namespace {

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument("rope: " + what); }

// _compute_default_rope_parameters: 1 / theta^(2j / dim), the exponent and the power in FP32.
std::vector<float> default_inv_freq(double theta, int dim) {
  std::vector<float> f(std::size_t(dim / 2));
  for (int j = 0; j < dim / 2; ++j) {
    const float e = float(2 * j) / float(dim);
    // torch.pow(python float, FP32 tensor): FP32 result; the FP64 power rounded once is what a correctly rounded
    // powf gives.
    const float p = float(std::pow(double(float(theta)), double(e)));
    f[std::size_t(j)] = 1.0f / p;
  }
  return f;
}

}  // namespace

std::string to_string(RopeType t) {
  switch (t) {
    case RopeType::plain: return "default";
    case RopeType::llama3: return "llama3";
    case RopeType::yarn: return "yarn";
  }
  return "?";
}

void check_rope_config(const RopeConfig& c) {
  if (!(c.theta > 1.0) || !std::isfinite(c.theta)) bad("rope_theta must be finite and > 1, got " + std::to_string(c.theta));
  if (c.dim < 2 || c.dim > kRopeMaxHeadDim || c.dim % 2)
    bad("rotary dim must be even and in [2, " + std::to_string(kRopeMaxHeadDim) + "], got " + std::to_string(c.dim));
  if (c.type == RopeType::plain) return;
  const std::string t = to_string(c.type);
  if (!(c.factor >= 1.0) || !std::isfinite(c.factor)) bad(t + ": factor must be finite and >= 1, got " + std::to_string(c.factor));
  if (c.original_max_positions < 1)
    bad(t + ": original_max_position_embeddings must be >= 1, got " + std::to_string(c.original_max_positions));
  if (c.type == RopeType::llama3) {
    if (!(c.low_freq_factor > 0.0) || !(c.high_freq_factor > c.low_freq_factor))
      bad("llama3: need 0 < low_freq_factor < high_freq_factor, got " + std::to_string(c.low_freq_factor) + " and " +
          std::to_string(c.high_freq_factor));
  } else {
    if (!(c.beta_slow > 0.0) || !(c.beta_fast > c.beta_slow))
      bad("yarn: need 0 < beta_slow < beta_fast, got beta_fast " + std::to_string(c.beta_fast) + ", beta_slow " +
          std::to_string(c.beta_slow));
    if (c.attention_factor < 0.0) bad("yarn: attention_factor must be >= 0, got " + std::to_string(c.attention_factor));
  }
}

RopeFrequencies rope_frequencies(const RopeConfig& c) {
  check_rope_config(c);
  RopeFrequencies out;
  out.inv_freq = default_inv_freq(c.theta, c.dim);
  if (c.type == RopeType::plain) return out;

  if (c.type == RopeType::llama3) {
    // _compute_llama3_parameters: wavelengths above original/low_freq_factor are divided by factor, below
    // original/high_freq_factor kept, and in between interpolated by the smooth factor. FP32 throughout.
    const float factor = float(c.factor), lo = float(c.low_freq_factor), hi = float(c.high_freq_factor);
    const float old_len = float(c.original_max_positions);
    const float low_freq_wavelen = float(double(c.original_max_positions) / c.low_freq_factor);
    const float high_freq_wavelen = float(double(c.original_max_positions) / c.high_freq_factor);
    const float two_pi = float(2.0 * M_PI);
    for (float& f : out.inv_freq) {
      const float wavelen = two_pi / f;
      float g = wavelen > low_freq_wavelen ? f / factor : f;
      const float smooth = (old_len / wavelen - lo) / (hi - lo);
      const float smoothed = (1.0f - smooth) * g / factor + smooth * g;
      const bool medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
      f = medium ? smoothed : g;
    }
    return out;
  }

  // _compute_yarn_parameters. The correction range and the attention factor are Python floats (FP64); the
  // frequencies and the ramp FP32 tensors.
  const int dim = c.dim;
  auto get_mscale = [](double scale, double m) { return scale <= 1.0 ? 1.0 : 0.1 * m * std::log(scale) + 1.0; };
  double attention = c.attention_factor;
  if (attention == 0.0)
    attention = (c.mscale != 0.0 && c.mscale_all_dim != 0.0)
                    ? get_mscale(c.factor, c.mscale) / get_mscale(c.factor, c.mscale_all_dim)
                    : get_mscale(c.factor, 1.0);
  out.attention_scaling = float(attention);
  auto correction_dim = [&](double rotations) {
    return (dim * std::log(double(c.original_max_positions) / (rotations * 2.0 * M_PI))) / (2.0 * std::log(c.theta));
  };
  double low = correction_dim(c.beta_fast), high = correction_dim(c.beta_slow);
  if (c.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, double(dim - 1));
  if (low == high) high += 0.001;  // linear_ramp_factor's guard against a zero-width ramp
  const float factor = float(c.factor);
  for (int j = 0; j < dim / 2; ++j) {
    const float p = float(std::pow(double(float(c.theta)), double(float(2 * j) / float(dim))));  // pos_freqs
    const float extrapolation = 1.0f / p;
    const float interpolation = 1.0f / (factor * p);
    // (arange(dim / 2) - low) / (high - low): the difference of the two Python floats is taken in FP64.
    const float ramp = std::clamp((float(j) - float(low)) / float(high - low), 0.0f, 1.0f);
    const float extrapolation_factor = 1.0f - ramp;
    out.inv_freq[std::size_t(j)] =
        interpolation * (1.0f - extrapolation_factor) + extrapolation * extrapolation_factor;
  }
  return out;
}

}  // namespace aipe::kernels
