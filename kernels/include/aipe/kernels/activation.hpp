// The activations aipe::kernels' fused epilogues apply (host and device code both name them).
#pragma once
#include <cstdint>

namespace aipe::kernels {

enum class Activation : std::uint8_t {
  none,
  gelu_tanh,  // 0.5 t (1 + tanh(sqrt(2/pi) (t + 0.044715 t^3))): PyTorch's gelu(approximate="tanh")
  silu,       // t sigmoid(t) = 0.5 t (1 + tanh(t / 2))
};

}  // namespace aipe::kernels
