// Host side of kernel launches the Hopper kernels share: launches in thread-block clusters, the number of
// clusters that fit at once (the grid of a persistent kernel), and the dynamic shared-memory opt-in, made
// once per kernel and device (an attribute set on device 0 does not hold on device 1).
#pragma once
#include <cuda_runtime.h>  // the C++ templates of cudaLaunchKernelEx and cudaOccupancyMaxActiveClusters

#include <cstddef>
#include <utility>

#include "aipe/check.hpp"

namespace aipe::kernels {

namespace detail {
// Sets cudaFuncAttributeMaxDynamicSharedMemorySize of `func` to `bytes` on the current device, unless this
// process already did so for that (func, device, bytes). Thread-safe. (kernels/src/launch.cpp)
void set_max_dynamic_smem(const void* func, int bytes);
// True the first time it sees (func, device, bytes) in this process; the bookkeeping of set_max_dynamic_smem.
bool first_smem_opt_in(const void* func, int device, int bytes);
void forget_smem_opt_in(const void* func, int device, int bytes);
}  // namespace detail

// Lets `kernel` use `bytes` of dynamic shared memory on the current device: the attribute is set once per
// kernel, device and size (it is a property of the kernel on one device, not of the process).
template <class... Params>
void set_max_dynamic_smem(void (*kernel)(Params...), std::size_t bytes) {
  detail::set_max_dynamic_smem(reinterpret_cast<const void*>(kernel), static_cast<int>(bytes));
}

// The launch configuration of `grid` CTAs (grid.x a multiple of `cluster`) of `block` threads, with `smem`
// bytes of dynamic shared memory, in clusters of `cluster` CTAs along x. Not copyable: cfg points at attr.
struct ClusterConfig {
  cudaLaunchConfig_t cfg{};
  cudaLaunchAttribute attr{};
  ClusterConfig(dim3 grid, int block, std::size_t smem, int cluster, cudaStream_t stream = nullptr) {
    cfg.gridDim = grid;
    cfg.blockDim = dim3(static_cast<unsigned>(block));
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    attr.id = cudaLaunchAttributeClusterDimension;
    attr.val.clusterDim.x = static_cast<unsigned>(cluster);
    attr.val.clusterDim.y = 1;
    attr.val.clusterDim.z = 1;
    cfg.attrs = &attr;
    cfg.numAttrs = 1;
  }
  ClusterConfig(const ClusterConfig&) = delete;
  ClusterConfig& operator=(const ClusterConfig&) = delete;
};

// Launches `kernel(args...)` on `grid` CTAs in clusters of `cluster` along x (cudaLaunchKernelEx);
// grid.x must be a multiple of `cluster`.
template <class... Params, class... Args>
void launch_in_clusters(void (*kernel)(Params...), dim3 grid, int block, std::size_t smem, int cluster,
                        cudaStream_t stream, Args&&... args) {
  const ClusterConfig c(grid, block, smem, cluster, stream);
  AIPE_CUDA(cudaLaunchKernelEx(&c.cfg, kernel, std::forward<Args>(args)...));
}

// How many clusters of `cluster` CTAs of `kernel` (block threads, smem bytes of dynamic shared memory,
// which the kernel must already be allowed) fit on the device at once: the grid of a persistent kernel
// that never waits for a second wave. GPCs whose SM count is not a multiple of the cluster size leave
// the rest of their SMs idle.
template <class... Params>
int cluster_occupancy(void (*kernel)(Params...), int block, std::size_t smem, int cluster) {
  const ClusterConfig c(dim3(static_cast<unsigned>(cluster)), block, smem, cluster);
  int n = 0;
  AIPE_CUDA(cudaOccupancyMaxActiveClusters(&n, kernel, &c.cfg));
  return n;
}

}  // namespace aipe::kernels
