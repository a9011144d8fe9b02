// libnccl, loaded at run time (dlopen) rather than linked: an aipe binary starts on a machine whose NCCL sits
// elsewhere than where it was built (PyTorch's wheel on the GPU machine, the CUDA toolkit here) or is missing,
// and every command but `aipe comm` keeps working. Built only where nccl.h was found (AIPE_HAVE_NCCL); the
// function types come from that header, so a call through the table is type-checked like a direct call.
//
// Search order: $AIPE_NCCL_LIBRARY (a path) alone when set; else "libnccl.so.2" through the loader
// (LD_LIBRARY_PATH, the cache), then the library CMake found (AIPE_NCCL_CONFIGURED_LIBRARY), then PyTorch's wheel.
#pragma once
#if AIPE_HAVE_NCCL
#include <nccl.h>

#include <string>

namespace aipe::comm::detail {

struct NcclApi {
  std::string path;  // the file that was loaded
  int version = 0;   // ncclGetVersion's code: 22803 is 2.28.3
  decltype(&::ncclGetVersion) GetVersion = nullptr;
  decltype(&::ncclGetUniqueId) GetUniqueId = nullptr;
  decltype(&::ncclCommInitRank) CommInitRank = nullptr;
  decltype(&::ncclCommInitAll) CommInitAll = nullptr;
  decltype(&::ncclCommDestroy) CommDestroy = nullptr;
  decltype(&::ncclCommAbort) CommAbort = nullptr;
  decltype(&::ncclGetErrorString) GetErrorString = nullptr;
  decltype(&::ncclGetLastError) GetLastError = nullptr;
  decltype(&::ncclCommGetAsyncError) CommGetAsyncError = nullptr;
  decltype(&::ncclCommCount) CommCount = nullptr;
  decltype(&::ncclCommCuDevice) CommCuDevice = nullptr;
  decltype(&::ncclCommUserRank) CommUserRank = nullptr;
  decltype(&::ncclMemAlloc) MemAlloc = nullptr;
  decltype(&::ncclMemFree) MemFree = nullptr;
  decltype(&::ncclCommRegister) CommRegister = nullptr;
  decltype(&::ncclCommDeregister) CommDeregister = nullptr;
  decltype(&::ncclAllReduce) AllReduce = nullptr;
  decltype(&::ncclAllGather) AllGather = nullptr;
  decltype(&::ncclReduceScatter) ReduceScatter = nullptr;
  decltype(&::ncclBroadcast) Broadcast = nullptr;
  decltype(&::ncclReduce) Reduce = nullptr;
  decltype(&::ncclSend) Send = nullptr;
  decltype(&::ncclRecv) Recv = nullptr;
  decltype(&::ncclGroupStart) GroupStart = nullptr;
  decltype(&::ncclGroupEnd) GroupEnd = nullptr;
};

// The loaded library, once per process; nullptr with `why` (every path tried and dlerror's answer) when none
// loads or one lacks a symbol.
const NcclApi* nccl_api(std::string* why);

}  // namespace aipe::comm::detail
#endif
