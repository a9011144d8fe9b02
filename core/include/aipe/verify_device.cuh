// Verification on the device, for references too big to bring to the host: a GiB-sized output is
// compared in milliseconds instead of copied. The output and the reference are each a device pointer
// or a __device__ callable i -> value (a reference regenerated from (seed, index), see aipe/random.hpp,
// is then independent of the input buffers). Elements are judged exactly as core/verify judges them on
// the host (detail::check_element: |out - ref| <= abs + rel*|ref|, NaN and Inf never pass), integers
// exactly, and the result is the same VerifyResult: counts, max errors, the relative norm, and the
// first mismatches with index, expected and actual.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/check.hpp"
#include "aipe/verify.hpp"

namespace aipe {

namespace detail {

template <class T>
__host__ __device__ __forceinline__ double value_as_double(T v) {
  if constexpr (std::is_arithmetic_v<T>) return static_cast<double>(v);
  else return static_cast<double>(static_cast<float>(v));  // __half, __nv_bfloat16, FP8 types
}

// Element i of a pointer, as a callable (so pointers and generators take one path).
template <class T>
struct DeviceRead {
  const T* p;
  __device__ __forceinline__ T operator()(std::size_t i) const { return p[i]; }
};

template <class O, class E>
__device__ __forceinline__ ElementError check_device_element(O o, E e, const Tolerance& tol) {
  const double od = value_as_double(o), ed = value_as_double(e);
  if constexpr (std::is_integral_v<O> && std::is_integral_v<E>) {
    // Integers and bytes are compared exactly, in their own type: a double would round above 2^53.
    using C = std::common_type_t<O, E>;
    ElementError r;
    r.bad = static_cast<C>(o) != static_cast<C>(e);
    r.abs = od > ed ? od - ed : ed - od;
    const double ae = ed < 0 ? -ed : ed;
    if (ae > 0) r.rel = r.abs / ae;
    return r;
  } else {
    return check_element(od, ed, tol.abs, tol.rel);
  }
}

// One grid-stride pass: counts, the smallest wrong index, the maxima and the two sums of squares.
template <class OutFn, class RefFn>
__global__ void compare_kernel(std::size_t n, OutFn out, RefFn ref, Tolerance tol, DeviceCompareLog* log) {
  unsigned long long bad = 0, non_finite = 0, first = ~0ull;
  double max_abs = 0, max_rel = 0, diff_sq = 0, ref_sq = 0;
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x) {
    const auto e = ref(i);
    const ElementError x = check_device_element(out(i), e, tol);
    if (x.non_finite) {
      ++non_finite;
    } else {
      const double ed = value_as_double(e);
      diff_sq += x.abs * x.abs;
      ref_sq += ed * ed;
      max_abs = fmax(max_abs, x.abs);
      max_rel = fmax(max_rel, x.rel);
    }
    if (x.bad) {
      ++bad;
      if (i < first) first = i;
    }
  }
  if (bad) {
    atomicAdd(&log->mismatches, bad);
    atomicMin(&log->first, first);
  }
  if (non_finite) atomicAdd(&log->non_finite, non_finite);
  if (max_abs > 0) atomicMax(&log->max_abs_bits, static_cast<unsigned long long>(__double_as_longlong(max_abs)));
  if (max_rel > 0) atomicMax(&log->max_rel_bits, static_cast<unsigned long long>(__double_as_longlong(max_rel)));
  if (diff_sq > 0) atomicAdd(&log->diff_sq, diff_sq);
  if (ref_sq > 0) atomicAdd(&log->ref_sq, ref_sq);
}

// The smallest wrong index at or after `from` (~0 if none): where the next window of mismatches starts.
template <class OutFn, class RefFn>
__global__ void first_bad_kernel(std::size_t n, std::size_t from, OutFn out, RefFn ref, Tolerance tol,
                                 unsigned long long* first) {
  unsigned long long mine = ~0ull;
  for (std::size_t i = from + blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x)
    if (check_device_element(out(i), ref(i), tol).bad) {
      mine = i;  // a thread's indices only grow: its first hit is its smallest
      break;
    }
  if (mine != ~0ull) atomicMin(first, mine);
}

// The values and verdicts of `count` elements from `start`: where the first mismatches are read from.
template <class OutFn, class RefFn>
__global__ void compare_window_kernel(std::size_t start, std::size_t count, OutFn out, RefFn ref, Tolerance tol,
                                      double* out_w, double* ref_w, unsigned char* bad_w) {
  for (std::size_t k = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; k < count;
       k += std::size_t(gridDim.x) * blockDim.x) {
    const auto o = out(start + k);
    const auto e = ref(start + k);
    out_w[k] = value_as_double(o);
    ref_w[k] = value_as_double(e);
    bad_w[k] = check_device_element(o, e, tol).bad ? 1 : 0;
  }
}

template <class F>
struct AsCallable {
  using type = F;
  static F wrap(F f) { return f; }
};
template <class T>
struct AsCallable<T*> {
  using type = DeviceRead<T>;
  static DeviceRead<T> wrap(T* p) { return {p}; }
};
template <class T>
struct AsCallable<const T*> {
  using type = DeviceRead<T>;
  static DeviceRead<T> wrap(const T* p) { return {p}; }
};

}  // namespace detail

// Compares n elements of `out` with `ref` on `stream` (synchronized before returning). Each of `out`
// and `ref` is a device pointer or a trivially copyable callable with a __device__ operator()(size_t).
template <class Out, class Ref>
VerifyResult compare_on_device(std::size_t n, Out out_src, Ref ref_src, const Tolerance& tol, cudaStream_t stream) {
  using OutFn = typename detail::AsCallable<Out>::type;
  using RefFn = typename detail::AsCallable<Ref>::type;
  const OutFn out = detail::AsCallable<Out>::wrap(out_src);
  const RefFn ref = detail::AsCallable<Ref>::wrap(ref_src);
  int dev = 0, sms = 0;
  AIPE_CUDA(cudaGetDevice(&dev));
  AIPE_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));

  DeviceBuffer<detail::DeviceCompareLog> log(1);
  const detail::DeviceCompareLog init{};
  AIPE_CUDA(cudaMemcpyAsync(log.get(), &init, sizeof init, cudaMemcpyHostToDevice, stream));
  if (n > 0) {
    detail::compare_kernel<<<4 * sms, 256, 0, stream>>>(n, out, ref, tol, log.get());
    AIPE_CHECK_LAUNCH();
  }
  detail::DeviceCompareLog h{};
  AIPE_CUDA(cudaMemcpyAsync(&h, log.get(), sizeof h, cudaMemcpyDeviceToHost, stream));
  AIPE_CUDA(cudaStreamSynchronize(stream));

  // The first mismatches, in index order: a window of 4096 elements from the smallest wrong index is read
  // back with its verdicts; where it holds fewer than kFirstMismatches and more exist, the next window
  // starts at the smallest wrong index past it (sparse mismatches cost one pass over n per window).
  std::vector<Mismatch> first;
  const std::size_t want = std::min<std::size_t>(detail::kFirstMismatches, h.mismatches);
  constexpr std::size_t kWindow = 4096;
  DeviceBuffer<double> dout(kWindow), dref(kWindow);
  DeviceBuffer<unsigned char> dbad(kWindow);
  DeviceBuffer<unsigned long long> dnext(1);
  for (std::size_t start = static_cast<std::size_t>(h.first); first.size() < want && start < n;) {
    const std::size_t count = std::min(kWindow, n - start);
    detail::compare_window_kernel<<<static_cast<unsigned>((count + 255) / 256), 256, 0, stream>>>(
        start, count, out, ref, tol, dout.get(), dref.get(), dbad.get());
    AIPE_CHECK_LAUNCH();
    const std::vector<double> out_w = to_host(dout, stream), ref_w = to_host(dref, stream);
    const std::vector<unsigned char> bad_w = to_host(dbad, stream);
    for (std::size_t k = 0; k < count && first.size() < want; ++k)
      if (bad_w[k]) first.push_back({start + k, ref_w[k], out_w[k]});
    if (first.size() >= want || start + count >= n) break;
    const unsigned long long none = ~0ull;
    AIPE_CUDA(cudaMemcpyAsync(dnext.get(), &none, sizeof none, cudaMemcpyHostToDevice, stream));
    detail::first_bad_kernel<<<4 * sms, 256, 0, stream>>>(n, start + count, out, ref, tol, dnext.get());
    AIPE_CHECK_LAUNCH();
    const unsigned long long next = to_host(dnext, stream)[0];
    if (next == ~0ull) break;
    start = static_cast<std::size_t>(next);
  }
  return detail::finish_device_compare(h, n, tol, first);
}

}  // namespace aipe
