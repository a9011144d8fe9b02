// Seeded, counter-based random inputs: element i of a stream with seed s is a pure function of
// (s, i), so the device fills buffers in parallel and the host can regenerate any element for a
// reference without copying the input back. Values are never all zero.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "aipe/hd.hpp"

struct __nv_bfloat16;
struct __half;
struct __nv_fp8_e4m3;

namespace aipe {

AIPE_HD std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Uniform in [lo, hi), 24 bits of randomness (exact in float).
AIPE_HD float uniform_at(std::uint64_t seed, std::uint64_t i, float lo, float hi) {
  const std::uint64_t h = splitmix64(seed * 0x632BE59BD9B4E019ull ^ splitmix64(i));
  const float u = static_cast<float>(h >> 40) * (1.0f / 16777216.0f);
  // Two roundings on both sides: nvcc would contract the device expression into one FMA, and a value that then
  // lands on the other side of a BF16 rounding boundary than the host's makes a host reference disagree.
#if defined(__CUDA_ARCH__)
  return __fadd_rn(lo, __fmul_rn(hi - lo, u));
#else
  return lo + (hi - lo) * u;
#endif
}

AIPE_HD std::uint32_t bits_at(std::uint64_t seed, std::uint64_t i) {
  return static_cast<std::uint32_t>(splitmix64(seed * 0x632BE59BD9B4E019ull ^ splitmix64(i)) >> 32);
}

// Device fills (core/src/random.cu). Values are uniform_at(seed, i, lo, hi) rounded to the type.
void fill_uniform(float* p, std::size_t n, std::uint64_t seed, float lo, float hi, cudaStream_t s);
void fill_uniform(double* p, std::size_t n, std::uint64_t seed, float lo, float hi, cudaStream_t s);
void fill_uniform(__nv_bfloat16* p, std::size_t n, std::uint64_t seed, float lo, float hi, cudaStream_t s);
void fill_uniform(__half* p, std::size_t n, std::uint64_t seed, float lo, float hi, cudaStream_t s);
void fill_uniform(__nv_fp8_e4m3* p, std::size_t n, std::uint64_t seed, float lo, float hi, cudaStream_t s);
// Integers uniform in [lo, hi].
void fill_uniform_int(int* p, std::size_t n, std::uint64_t seed, int lo, int hi, cudaStream_t s);

// Derives independent seeds for the several inputs of one example.
inline std::uint64_t sub_seed(std::uint64_t seed, std::uint64_t k) { return splitmix64(seed ^ (k * 0xD1B54A32D192ED03ull)); }

}  // namespace aipe
