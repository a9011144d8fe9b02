// Whether this process can use NCCL, and which: the build must have found nccl.h (CMake looks in the CUDA
// toolkit, PyTorch's environment and AIPE_NCCL_ROOT) and libnccl must load at run time (see nccl_api.hpp's
// search order). Without it `aipe comm` exits 4 with this reason and the NCCL tests skip with it.
#pragma once
#include <string>

namespace aipe::comm {

struct NcclStatus {
  bool available = false;
  std::string version;  // "2.28.3", of the library loaded (the headers' when none loads); empty without NCCL
  std::string library;  // the file loaded; empty when unavailable
  std::string reason;   // why unavailable; empty when available
};
NcclStatus nccl_status();

}  // namespace aipe::comm
