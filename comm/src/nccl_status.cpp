#include "aipe/comm/nccl_status.hpp"

#if AIPE_HAVE_NCCL
#include <nccl.h>
#endif

namespace aipe::comm {

NcclStatus nccl_status() {
#if AIPE_HAVE_NCCL
  return {true, std::to_string(NCCL_MAJOR) + "." + std::to_string(NCCL_MINOR) + "." + std::to_string(NCCL_PATCH), ""};
#else
  return {false, "", "built without NCCL (no nccl.h/libnccl found at configure time; set AIPE_NCCL_ROOT)"};
#endif
}

}  // namespace aipe::comm
