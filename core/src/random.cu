#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include "aipe/check.hpp"
#include "aipe/random.hpp"

namespace aipe {

namespace {

template <class T>
__device__ T convert(float x);
template <>
__device__ float convert<float>(float x) { return x; }
template <>
__device__ double convert<double>(float x) { return x; }
template <>
__device__ __nv_bfloat16 convert<__nv_bfloat16>(float x) { return __float2bfloat16(x); }
template <>
__device__ __half convert<__half>(float x) { return __float2half(x); }
// Round to nearest even, saturating at +-448 (the E4M3 constructor's __NV_SATFINITE).
template <>
__device__ __nv_fp8_e4m3 convert<__nv_fp8_e4m3>(float x) { return __nv_fp8_e4m3(x); }

template <class T>
__global__ void fill_kernel(T* p, std::size_t n, std::uint64_t seed, float lo, float hi) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x)
    p[i] = convert<T>(uniform_at(seed, i, lo, hi));
}

__global__ void fill_int_kernel(int* p, std::size_t n, std::uint64_t seed, int lo, int hi) {
  const std::uint32_t span = static_cast<std::uint32_t>(hi - lo) + 1u;
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x)
    p[i] = lo + static_cast<int>(span ? bits_at(seed, i) % span : bits_at(seed, i));
}

unsigned grid_for(std::size_t n) {
  const std::size_t blocks = (n + 255) / 256;
  return static_cast<unsigned>(blocks < 65535 ? (blocks ? blocks : 1) : 65535);
}

template <class T>
void fill(T* p, std::size_t n, std::uint64_t seed, float lo, float hi, cudaStream_t s) {
  fill_kernel<T><<<grid_for(n), 256, 0, s>>>(p, n, seed, lo, hi);
  AIPE_CHECK_LAUNCH();
}

}  // namespace

void fill_uniform(float* p, std::size_t n, std::uint64_t seed, float lo, float hi, cudaStream_t s) { fill(p, n, seed, lo, hi, s); }
void fill_uniform(double* p, std::size_t n, std::uint64_t seed, float lo, float hi, cudaStream_t s) { fill(p, n, seed, lo, hi, s); }
void fill_uniform(__nv_bfloat16* p, std::size_t n, std::uint64_t seed, float lo, float hi, cudaStream_t s) { fill(p, n, seed, lo, hi, s); }
void fill_uniform(__half* p, std::size_t n, std::uint64_t seed, float lo, float hi, cudaStream_t s) { fill(p, n, seed, lo, hi, s); }
void fill_uniform(__nv_fp8_e4m3* p, std::size_t n, std::uint64_t seed, float lo, float hi, cudaStream_t s) { fill(p, n, seed, lo, hi, s); }
void fill_uniform_int(int* p, std::size_t n, std::uint64_t seed, int lo, int hi, cudaStream_t s) {
  fill_int_kernel<<<grid_for(n), 256, 0, s>>>(p, n, seed, lo, hi);
  AIPE_CHECK_LAUNCH();
}

}  // namespace aipe
