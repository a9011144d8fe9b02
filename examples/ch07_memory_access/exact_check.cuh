// Exact verification on the device, for ch07's data-movement examples whose outputs are a
// permutation or selection of their inputs (copy, strided copy, gather, transpose): every output
// element must equal, bit for bit, the input value the counter-based generator gives for its source
// index. The reference is regenerated from (seed, index) on the device, so it is independent of the
// input buffer, and a GiB-sized output is checked in milliseconds instead of copied to the host.
// Bitwise equality also means the NaN poison never passes.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <cmath>
#include <cstring>

#include "aipe/buffer.hpp"
#include "aipe/check.hpp"
#include "aipe/verify.hpp"

namespace ch07 {

struct MismatchLog {
  unsigned long long count;
  unsigned long long first;  // smallest mismatching index (ULLONG_MAX: none)
};

// ref(i) returns the expected value of out[i]. One pass, grid-stride; records the count and the
// smallest wrong index.
template <class Ref>
__global__ void count_mismatches(const float* __restrict__ out, std::size_t n, Ref ref, MismatchLog* log) {
  unsigned long long local = 0, first = ~0ull;
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x) {
    const float e = ref(i);
    if (__float_as_uint(out[i]) != __float_as_uint(e)) {
      ++local;
      if (i < first) first = i;
    }
  }
  if (local) {
    atomicAdd(&log->count, local);
    atomicMin(&log->first, first);
  }
}

// Runs the check and turns it into a VerifyResult (with the first mismatch's values).
template <class Ref>
aipe::VerifyResult verify_exact(const float* out, std::size_t n, Ref ref, int sm_count, cudaStream_t s) {
  aipe::DeviceBuffer<MismatchLog> log(1);
  const MismatchLog init{0, ~0ull};
  AIPE_CUDA(cudaMemcpyAsync(log.get(), &init, sizeof init, cudaMemcpyHostToDevice, s));
  count_mismatches<<<4 * sm_count, 256, 0, s>>>(out, n, ref, log.get());
  AIPE_CHECK_LAUNCH();
  MismatchLog h{};
  AIPE_CUDA(cudaMemcpyAsync(&h, log.get(), sizeof h, cudaMemcpyDeviceToHost, s));
  AIPE_CUDA(cudaStreamSynchronize(s));
  aipe::VerifyResult r;
  r.checked = n;
  r.mismatches = h.count;
  r.ok = h.count == 0;
  if (!r.ok) {
    float got = 0;
    AIPE_CUDA(cudaMemcpy(&got, out + h.first, sizeof got, cudaMemcpyDeviceToHost));
    // The expected value: evaluate ref on the host (ref functors are __host__ __device__).
    const double want = ref(h.first);
    r.first.push_back({static_cast<std::size_t>(h.first), want, got});
    r.max_abs_error = std::isfinite(got) ? std::fabs(got - want) : INFINITY;
    r.note = "bitwise comparison with the regenerated input";
  }
  return r;
}

}  // namespace ch07
