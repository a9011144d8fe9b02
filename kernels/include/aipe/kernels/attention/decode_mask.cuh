// The visibility rule of decode attention (decode.hpp) as a mask functor for the reference (reference.cuh), so
// that tests and the ch18 ladder check kernels::attention::decode against the same definition: query token q of
// sequence b stands at position p = ctx[b] - q_len + q and sees key kv iff kv < ctx[b], kv <= p and, with a
// window, kv > p - window.
#pragma once

namespace aipe::kernels::attention {

struct DecodeMask {
  const int* ctx = nullptr;  // [batch] context lengths, device
  int q_len = 1;
  int window = 0;  // 0: none
  __device__ bool operator()(int b, int, int q, int kv) const {
    const int c = ctx[b], pos = c - q_len + q;
    return kv < c && kv <= pos && (window <= 0 || kv > pos - window);
  }
};

}  // namespace aipe::kernels::attention
