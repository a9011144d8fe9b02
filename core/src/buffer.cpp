#include "aipe/buffer.hpp"

#include <cstdio>
#include <string>

namespace aipe {

namespace {
std::string gib(std::size_t b) {
  char s[32];
  std::snprintf(s, sizeof s, "%.2f GiB", static_cast<double>(b) / (1024.0 * 1024.0 * 1024.0));
  return s;
}
}  // namespace

void* device_malloc(std::size_t bytes) {
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, bytes);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // not sticky: clear it
    std::size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    throw CudaError(e, "out of device memory: asked for " + gib(bytes) + ", " + gib(free_b) + " free of " +
                           gib(total_b) + " (use a smaller --size)");
  }
  if (e != cudaSuccess) throw_cuda_error(e, "cudaMalloc", __FILE__, __LINE__);
  return p;
}

void* pinned_malloc(std::size_t bytes, unsigned flags) {
  void* p = nullptr;
  const cudaError_t e = cudaHostAlloc(&p, bytes, flags);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    throw CudaError(e, "out of pinned host memory: asked for " + gib(bytes) + " (use a smaller --size)");
  }
  if (e != cudaSuccess) throw_cuda_error(e, "cudaHostAlloc", __FILE__, __LINE__);
  return p;
}

Graph Graph::create() {
  cudaGraph_t g = nullptr;
  AIPE_CUDA(cudaGraphCreate(&g, 0));
  return Graph(g);
}

}  // namespace aipe
