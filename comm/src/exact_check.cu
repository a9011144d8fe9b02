// Fill and exact check of `aipe comm` (see exact_check.hpp). One grid-stride kernel each, instantiated per
// element type; the check counts mismatches per warp and adds them with one atomic per warp.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstring>

#include "aipe/check.hpp"
#include "aipe/comm/exact_check.hpp"

namespace aipe::comm {
namespace {

template <class T>
__device__ __forceinline__ T from_int(std::int64_t v) {
  if constexpr (std::is_same_v<T, __half>) return __float2half_rn(static_cast<float>(v));
  else if constexpr (std::is_same_v<T, __nv_bfloat16>) return __float2bfloat16_rn(static_cast<float>(v));
  else return static_cast<T>(v);
}

// Exact equality of a stored element with an integer; NaN (the poison of the floating types) never matches.
template <class T>
__device__ __forceinline__ bool equals(T x, std::int64_t v) {
  if constexpr (std::is_same_v<T, __half>) return __half2float(x) == static_cast<float>(v);
  else if constexpr (std::is_same_v<T, __nv_bfloat16>) return __bfloat162float(x) == static_cast<float>(v);
  else if constexpr (std::is_floating_point_v<T>) return x == static_cast<T>(v);
  else return x == static_cast<T>(v);  // the 0xFF.. poison is -1 or the type's maximum, never an expected value
}

template <class T>
__global__ void fill_kernel(T* buf, std::int64_t count, Collective c, ReduceOp op, int n, int rank) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    buf[i] = from_int<T>(input_for(c, op, n, rank, i));
}

template <class T>
__global__ void check_kernel(const T* buf, std::int64_t recv_count, Collective c, ReduceOp op, int n, int rank,
                             std::int64_t count, CheckResult* result) {
  unsigned long long wrong = 0, first = ~0ull;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < recv_count;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    std::int64_t want = 0;
    if (!expected_for(c, op, n, rank, count, i, &want)) continue;
    if (!equals(buf[i], want)) {
      ++wrong;
      first = min(first, static_cast<unsigned long long>(i));
    }
  }
  for (int o = 16; o > 0; o >>= 1) {
    wrong += __shfl_down_sync(0xffffffffu, wrong, o);
    first = min(first, __shfl_down_sync(0xffffffffu, first, o));
  }
  if ((threadIdx.x & 31) == 0 && wrong) {
    atomicAdd(&result->wrong, wrong);
    atomicMin(&result->first, first);
  }
}

unsigned grid_for(std::int64_t count) {
  // Enough blocks to fill any GPU several times over; the loops stride past the grid.
  return static_cast<unsigned>(std::clamp<std::int64_t>((count + 255) / 256, 1, 4096));
}

template <class F>
void dispatch(DataType t, F&& f) {
  switch (t) {
    case DataType::int8: f(std::int8_t{}); return;
    case DataType::uint8: f(std::uint8_t{}); return;
    case DataType::int32: f(std::int32_t{}); return;
    case DataType::uint32: f(std::uint32_t{}); return;
    case DataType::int64: f(std::int64_t{}); return;
    case DataType::uint64: f(std::uint64_t{}); return;
    case DataType::float16: f(__half{}); return;
    case DataType::float32: f(float{}); return;
    case DataType::float64: f(double{}); return;
    case DataType::bfloat16: f(__nv_bfloat16{}); return;
  }
}

}  // namespace

void fill_inputs(DataType t, void* buf, std::int64_t count, Collective c, ReduceOp op, int n, int rank,
                 cudaStream_t stream) {
  if (count <= 0) return;
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    fill_kernel<T><<<grid_for(count), 256, 0, stream>>>(static_cast<T*>(buf), count, c, op, n, rank);
  });
  AIPE_CHECK_LAUNCH();
}

void check_outputs(DataType t, const void* buf, std::int64_t recv_count, Collective c, ReduceOp op, int n,
                   int rank, std::int64_t count, CheckResult* result, cudaStream_t stream) {
  AIPE_CUDA(cudaMemsetAsync(&result->wrong, 0, sizeof result->wrong, stream));
  AIPE_CUDA(cudaMemsetAsync(&result->first, 0xFF, sizeof result->first, stream));  // UINT64_MAX: none yet
  if (recv_count <= 0) return;
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    check_kernel<T><<<grid_for(recv_count), 256, 0, stream>>>(static_cast<const T*>(buf), recv_count, c, op, n,
                                                              rank, count, result);
  });
  AIPE_CHECK_LAUNCH();
}

double element_as_double(DataType t, const void* host_buf, std::int64_t i) {
  double out = 0;
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    T x;
    std::memcpy(&x, static_cast<const unsigned char*>(host_buf) + i * sizeof(T), sizeof(T));
    if constexpr (std::is_same_v<T, __half>) out = __half2float(x);
    else if constexpr (std::is_same_v<T, __nv_bfloat16>) out = __bfloat162float(x);
    else out = static_cast<double>(x);
  });
  return out;
}

}  // namespace aipe::comm
