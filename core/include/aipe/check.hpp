// CUDA error checking: every runtime call goes through AIPE_CUDA, which throws aipe::CudaError
// naming the failing call, its file and line. Sticky errors (the context is lost) are marked so the
// runner can stop instead of reporting garbage for the examples that follow.
#pragma once
#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace aipe {

class CudaError : public std::runtime_error {
 public:
  CudaError(cudaError_t code, const std::string& what) : std::runtime_error(what), code_(code) {}
  cudaError_t code() const { return code_; }
  // True when the CUDA context can no longer be used (illegal address, launch failure, ...).
  bool sticky() const;

 private:
  cudaError_t code_;
};

// Bad input from the user (a size out of range, an axis an example cannot take): exit code 2.
class BadInput : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void throw_cuda_error(cudaError_t code, const char* call, const char* file, int line);

}  // namespace aipe

#define AIPE_CUDA(call)                                                         \
  do {                                                                          \
    const cudaError_t aipe_status_ = (call);                                    \
    if (aipe_status_ != cudaSuccess)                                            \
      ::aipe::throw_cuda_error(aipe_status_, #call, __FILE__, __LINE__);        \
  } while (0)

// After a kernel launch: catches bad launch configurations at once (asynchronous faults surface
// at the next synchronization, which the runner checks).
#define AIPE_CHECK_LAUNCH() AIPE_CUDA(cudaGetLastError())
