// Why a GPU test of a Hopper kernel cannot run here, or nothing: no usable GPU, a build without sm_90a code, or
// a GPU that is not sm_90. `what` names the kernel in the reason.
#pragma once
#include <cuda_runtime_api.h>

#include <optional>
#include <string>

#include "aipe/check.hpp"
#include "aipe/device.hpp"

namespace aipe::test {

inline std::optional<std::string> no_hopper(const std::string& what) {
  if (auto why = gpu_unavailable_reason()) return why;
  if (!AIPE_HAVE_SM90A) return std::string("this build has no sm_90a code");
  int dev = 0;
  cudaDeviceProp p{};
  AIPE_CUDA(cudaGetDevice(&dev));
  AIPE_CUDA(cudaGetDeviceProperties(&p, dev));
  if (p.major != 9 || p.minor != 0) return what + " needs an sm_90 GPU; " + p.name + " is not";
  return std::nullopt;
}

}  // namespace aipe::test
