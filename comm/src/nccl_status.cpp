#include "aipe/comm/nccl_status.hpp"

#include "nccl_api.hpp"

namespace aipe::comm {

NcclStatus nccl_status() {
#if AIPE_HAVE_NCCL
  NcclStatus s;
  std::string why;
  const detail::NcclApi* api = detail::nccl_api(&why);
  const int v = api ? api->version : NCCL_VERSION_CODE;
  // Since 2.9 the code is major * 10000 + minor * 100 + patch.
  s.version = std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
  if (!api) {
    s.reason = "built with NCCL " + s.version + " headers, but " + why;
    return s;
  }
  s.available = true;
  s.library = api->path;
  return s;
#else
  return {false, "", "", "built without NCCL (no nccl.h/libnccl found at configure time; set AIPE_NCCL_ROOT)"};
#endif
}

}  // namespace aipe::comm
