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

// Programmatic dependent launch (ptx.cuh: grid_dependency_wait / launch_dependents) for the kernels launched
// through launch_pdl and launch_in_clusters(..., pdl = true): on by default; set_programmatic_launch(false) makes
// every such launch an ordinary one (what `--no-pdl` measures). Process-wide, read at each launch.
void set_programmatic_launch(bool on);
bool programmatic_launch();

// The launch configuration of `grid` CTAs of `block` threads, with `smem` bytes of dynamic shared memory, in
// clusters of `cluster` CTAs along x (grid.x a multiple of it; 1: no cluster attribute), launched with the
// programmatic-stream-serialization attribute when `pdl` (and programmatic_launch()). Not copyable: cfg points
// at attrs.
struct ClusterConfig {
  cudaLaunchConfig_t cfg{};
  cudaLaunchAttribute attrs[2]{};
  ClusterConfig(dim3 grid, int block, std::size_t smem, int cluster, cudaStream_t stream = nullptr, bool pdl = false) {
    cfg.gridDim = grid;
    cfg.blockDim = dim3(static_cast<unsigned>(block));
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    unsigned n = 0;
    if (cluster > 1) {
      attrs[n].id = cudaLaunchAttributeClusterDimension;
      attrs[n].val.clusterDim.x = static_cast<unsigned>(cluster);
      attrs[n].val.clusterDim.y = 1;
      attrs[n].val.clusterDim.z = 1;
      ++n;
    }
    if (pdl && programmatic_launch()) {
      attrs[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
      attrs[n].val.programmaticStreamSerializationAllowed = 1;
      ++n;
    }
    cfg.attrs = attrs;
    cfg.numAttrs = n;
  }
  ClusterConfig(const ClusterConfig&) = delete;
  ClusterConfig& operator=(const ClusterConfig&) = delete;
};

// Launches `kernel(args...)` on `grid` CTAs in clusters of `cluster` along x (cudaLaunchKernelEx);
// grid.x must be a multiple of `cluster`. With `pdl` the kernel must call grid_dependency_wait() first.
template <class... Params, class... Args>
void launch_in_clusters(void (*kernel)(Params...), dim3 grid, int block, std::size_t smem, int cluster,
                        cudaStream_t stream, Args&&... args) {
  const ClusterConfig c(grid, block, smem, cluster, stream);
  AIPE_CUDA(cudaLaunchKernelEx(&c.cfg, kernel, std::forward<Args>(args)...));
}
template <class... Params, class... Args>
void launch_in_clusters_pdl(void (*kernel)(Params...), dim3 grid, int block, std::size_t smem, int cluster,
                            cudaStream_t stream, Args&&... args) {
  const ClusterConfig c(grid, block, smem, cluster, stream, true);
  AIPE_CUDA(cudaLaunchKernelEx(&c.cfg, kernel, std::forward<Args>(args)...));
}

// kernel<<<grid, block, smem, stream>>>(args...) as a programmatic dependent launch: the kernel may start
// while the one before it in the stream finishes, so it must call grid_dependency_wait() before it touches
// memory an earlier kernel writes or reads (ptx.cuh). The decode step's chain of small kernels and skinny GEMMs
// is launched this way: each one's launch and prologue hide under the previous one's tail.
template <class... Params, class... Args>
void launch_pdl(void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t smem, cudaStream_t stream,
                Args&&... args) {
  ClusterConfig c(grid, 1, smem, 1, stream, true);
  c.cfg.blockDim = block;
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
