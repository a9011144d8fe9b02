// Whether this build has NCCL, and which: decided at configure time (CMake looks in the CUDA toolkit, PyTorch's
// environment and AIPE_NCCL_ROOT). Without it the comm commands and tests skip with this reason.
#pragma once
#include <string>

namespace aipe::comm {

struct NcclStatus {
  bool available = false;
  std::string version;  // "2.28.3" from the headers built against; empty when unavailable
  std::string reason;   // why unavailable; empty when available
};
NcclStatus nccl_status();

}  // namespace aipe::comm
