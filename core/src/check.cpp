#include "aipe/check.hpp"

#include <string>

namespace aipe {

bool CudaError::sticky() const {
  switch (code_) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorHardwareStackError:
    case cudaErrorAssert:
    case cudaErrorLaunchTimeout:
    case cudaErrorECCUncorrectable:
    case cudaErrorContextIsDestroyed:
    case cudaErrorUnknown:
      return true;
    default:
      return false;
  }
}

void throw_cuda_error(cudaError_t code, const char* call, const char* file, int line) {
  std::string where = file;
  if (auto p = where.rfind("/core/"); p != std::string::npos) where = where.substr(p + 1);
  else if (auto q = where.rfind("/examples/"); q != std::string::npos) where = where.substr(q + 1);
  throw CudaError(code, std::string(cudaGetErrorName(code)) + " (" + cudaGetErrorString(code) + ") in " + call +
                            " at " + where + ":" + std::to_string(line));
}

}  // namespace aipe
