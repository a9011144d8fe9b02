#include "aipe/cublas.hpp"

#include <string>

#include "aipe/check.hpp"

namespace aipe {

void throw_cublas_error(cublasStatus_t s, const char* call, const char* file, int line) {
  std::string where = file;
  if (auto p = where.rfind("/examples/"); p != std::string::npos) where = where.substr(p + 1);
  // An allocation failure inside cuBLAS is an out-of-memory, not a bug: say so.
  throw CudaError(s == CUBLAS_STATUS_ALLOC_FAILED ? cudaErrorMemoryAllocation : cudaErrorNotSupported,
                  std::string(cublasGetStatusName(s)) + " (" + cublasGetStatusString(s) + ") in " + call + " at " +
                      where + ":" + std::to_string(line));
}

CublasHandle CublasHandle::create() {
  CublasHandle h;
  AIPE_CUBLAS(cublasCreate(&h.h_));
  return h;
}
CublasLtHandle CublasLtHandle::create() {
  CublasLtHandle h;
  AIPE_CUBLAS(cublasLtCreate(&h.h_));
  return h;
}

}  // namespace aipe
