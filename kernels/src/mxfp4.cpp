// MXFP4 on the host (aipe/kernels/moe.hpp): the E8M0 scale and the reference dequantization the tests and the
// checkpoint checks compare against. The format is the OCP Microscaling Formats (MX) Specification v1.0's MXFP4
// (FP4 E2M1 elements, section 5.3.3; an E8M0 shared scale per block of 32, section 5.4.1), laid out as the gpt-oss
// checkpoints store it (transformers' convert_moe_packed_tensors: element 2i in the low nibble of byte i, the scale
// biased by 127).
#include <cmath>
#include <limits>

#include "aipe/kernels/moe.hpp"
#include "aipe/kernels/moe_checks.hpp"

namespace aipe::kernels::moe {

float e8m0_value(std::uint8_t s) {
  if (s == 255) return std::numeric_limits<float>::quiet_NaN();
  return std::ldexp(1.0f, int(s) - 127);  // 2^-127 (s == 0) is an FP32 subnormal: still exact
}

void dequantize_mxfp4_host(const Mxfp4Matrix& w, float* out) {
  check_mxfp4(w, out, "dequantize_mxfp4_host");
  const std::int64_t nblocks = w.cols / 32;
  for (std::int64_t r = 0; r < w.rows; ++r) {
    for (std::int64_t b = 0; b < nblocks; ++b) {
      const std::uint8_t* block = w.blocks + (r * nblocks + b) * 16;
      const float scale = e8m0_value(w.scales[r * nblocks + b]);
      float* o = out + r * w.cols + b * 32;
      for (int i = 0; i < 16; ++i) {
        // An E2M1 value has at most two significant bits: the product is exact, or +-inf past FP32's range,
        // which for these values is also where BF16's ends (the largest finite one, 1.5 * 2^127, is in both).
        o[2 * i] = e2m1_value(block[i] & 0xfu) * scale;
        o[2 * i + 1] = e2m1_value(block[i] >> 4) * scale;
      }
    }
  }
}

}  // namespace aipe::kernels::moe
