#include "aipe/example.hpp"

#include <array>
#include <stdexcept>

#include "aipe/check.hpp"

namespace aipe {

const char* to_string(Timing t) {
  switch (t) {
    case Timing::standard: return "standard";
    case Timing::hot_l2: return "hot_l2";
    case Timing::host_clock_no_sync: return "host_clock_no_sync";
    case Timing::first_launch: return "first_launch";
  }
  return "?";
}

std::int64_t Context::size(const std::string& axis) const {
  const auto it = sizes_.find(axis);
  if (it == sizes_.end()) throw std::logic_error("example asked for axis '" + axis + "' it did not declare");
  return it->second;
}

void Context::output(void* ptr, std::size_t bytes, unsigned char byte) { outputs_.push_back({ptr, bytes, byte}); }

void Context::poison_outputs() const {
  for (const auto& o : outputs_) AIPE_CUDA(cudaMemsetAsync(o.ptr, o.byte, o.bytes, stream_));
}

bool is_library_variant(const std::string& name) {
  static constexpr std::array<const char*, 6> kLibs = {"memcpy", "cub", "cublas", "cublaslt", "cudnn", "nccl"};
  for (const char* l : kLibs)
    if (name == l) return true;
  return false;
}

}  // namespace aipe
