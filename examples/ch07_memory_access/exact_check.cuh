// Transitional: ch07's exact device-side check now lives in core (aipe/verify_device.cuh,
// aipe::compare_on_device). This forwards the old spelling until its last callers move over.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "aipe/verify.hpp"
#include "aipe/verify_device.cuh"

namespace ch07 {

// Every out[i] must equal ref(i) exactly (NaN never passes). `sm_count` is no longer needed: the
// core helper sizes its own grid.
template <class Ref>
aipe::VerifyResult verify_exact(const float* out, std::size_t n, Ref ref, int /*sm_count*/, cudaStream_t s) {
  aipe::VerifyResult r = aipe::compare_on_device(n, out, ref, aipe::tolerance_for(aipe::DType::exact), s);
  if (!r.ok) r.note = "exact comparison with the regenerated input";
  return r;
}

}  // namespace ch07
