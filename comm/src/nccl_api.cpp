#include "nccl_api.hpp"

#if AIPE_HAVE_NCCL
#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <vector>

namespace aipe::comm::detail {
namespace {

struct Loaded {
  NcclApi api;
  bool ok = false;
  std::string why;
};

template <class F>
bool bind(void* lib, const char* name, F& fn, std::string& missing) {
  fn = reinterpret_cast<F>(dlsym(lib, name));
  if (!fn) missing += (missing.empty() ? "" : ", ") + std::string(name);
  return fn != nullptr;
}

Loaded load() {
  Loaded l;
  std::vector<std::string> candidates;
  if (const char* p = std::getenv("AIPE_NCCL_LIBRARY"); p && *p) {
    candidates.emplace_back(p);  // the user's choice, alone: no silent fallback to another NCCL
  } else {
    candidates.emplace_back("libnccl.so.2");
#ifdef AIPE_NCCL_CONFIGURED_LIBRARY
    candidates.emplace_back(AIPE_NCCL_CONFIGURED_LIBRARY);
#endif
    candidates.emplace_back("/opt/torch/.venv/lib/python3.12/site-packages/nvidia/nccl/lib/libnccl.so.2");
  }
  void* lib = nullptr;
  std::string tried;
  for (const auto& c : candidates) {
    lib = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib) {
      l.api.path = c;
      break;
    }
    const char* e = dlerror();
    tried += "\n  " + c + ": " + (e ? e : "not loadable");
  }
  if (!lib) {
    l.why = "NCCL library not found at run time (set AIPE_NCCL_LIBRARY or LD_LIBRARY_PATH); tried:" + tried;
    return l;
  }
  // The file the loader actually picked, for the report.
  if (Dl_info info{}; dladdr(dlsym(lib, "ncclGetVersion"), &info) && info.dli_fname) l.api.path = info.dli_fname;
  std::string missing;
  NcclApi& a = l.api;
  bind(lib, "ncclGetVersion", a.GetVersion, missing);
  bind(lib, "ncclGetUniqueId", a.GetUniqueId, missing);
  bind(lib, "ncclCommInitRank", a.CommInitRank, missing);
  bind(lib, "ncclCommInitAll", a.CommInitAll, missing);
  bind(lib, "ncclCommDestroy", a.CommDestroy, missing);
  bind(lib, "ncclCommAbort", a.CommAbort, missing);
  bind(lib, "ncclGetErrorString", a.GetErrorString, missing);
  bind(lib, "ncclGetLastError", a.GetLastError, missing);
  bind(lib, "ncclCommGetAsyncError", a.CommGetAsyncError, missing);
  bind(lib, "ncclCommCount", a.CommCount, missing);
  bind(lib, "ncclCommCuDevice", a.CommCuDevice, missing);
  bind(lib, "ncclCommUserRank", a.CommUserRank, missing);
  bind(lib, "ncclMemAlloc", a.MemAlloc, missing);
  bind(lib, "ncclMemFree", a.MemFree, missing);
  bind(lib, "ncclCommRegister", a.CommRegister, missing);
  bind(lib, "ncclCommDeregister", a.CommDeregister, missing);
  bind(lib, "ncclAllReduce", a.AllReduce, missing);
  bind(lib, "ncclAllGather", a.AllGather, missing);
  bind(lib, "ncclReduceScatter", a.ReduceScatter, missing);
  bind(lib, "ncclBroadcast", a.Broadcast, missing);
  bind(lib, "ncclReduce", a.Reduce, missing);
  bind(lib, "ncclSend", a.Send, missing);
  bind(lib, "ncclRecv", a.Recv, missing);
  bind(lib, "ncclGroupStart", a.GroupStart, missing);
  bind(lib, "ncclGroupEnd", a.GroupEnd, missing);
  if (!missing.empty()) {
    // NCCL before 2.19 lacks ncclMemAlloc and ncclCommRegister: older than anything aipe is built against.
    l.why = l.api.path + " lacks " + missing + " (aipe needs NCCL 2.19 or newer)";
    dlclose(lib);
    return l;
  }
  if (a.GetVersion(&a.version) != ncclSuccess) {
    l.why = l.api.path + ": ncclGetVersion failed";
    return l;
  }
  l.ok = true;  // never dlclosed: communicators may live until exit
  return l;
}

}  // namespace

const NcclApi* nccl_api(std::string* why) {
  static const Loaded loaded = load();
  if (!loaded.ok) {
    if (why) *why = loaded.why;
    return nullptr;
  }
  return &loaded.api;
}

}  // namespace aipe::comm::detail
#endif
