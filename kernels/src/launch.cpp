#include <cuda_runtime_api.h>

#include <atomic>
#include <mutex>
#include <set>
#include <tuple>

#include "aipe/check.hpp"
#include "aipe/kernels/launch.cuh"

namespace aipe::kernels {

namespace {
std::mutex& opt_in_mutex() {
  static std::mutex mu;
  return mu;
}
std::set<std::tuple<const void*, int, int>>& opt_ins() {
  static std::set<std::tuple<const void*, int, int>> done;
  return done;
}
std::atomic<bool>& pdl_switch() {
  static std::atomic<bool> on{true};
  return on;
}
}  // namespace

void set_programmatic_launch(bool on) { pdl_switch().store(on); }
bool programmatic_launch() { return pdl_switch().load(); }

namespace detail {
bool first_smem_opt_in(const void* func, int device, int bytes) {
  const std::lock_guard<std::mutex> lock(opt_in_mutex());
  return opt_ins().emplace(func, device, bytes).second;
}
void forget_smem_opt_in(const void* func, int device, int bytes) {
  const std::lock_guard<std::mutex> lock(opt_in_mutex());
  opt_ins().erase({func, device, bytes});
}

void set_max_dynamic_smem(const void* func, int bytes) {
  int device = 0;
  AIPE_CUDA(cudaGetDevice(&device));
  if (!detail::first_smem_opt_in(func, device, bytes)) return;
  const cudaError_t e = cudaFuncSetAttribute(func, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  if (e != cudaSuccess) {
    detail::forget_smem_opt_in(func, device, bytes);  // a later call tries again
    AIPE_CUDA(e);
  }
}

}  // namespace detail

}  // namespace aipe::kernels
