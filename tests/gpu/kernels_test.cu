// GPU tests of the kernel library's device pieces (kernels/include/aipe/kernels), beside the ladders that
// use them: the generated wgmma instructions at shapes no ladder uses (N = 8 .. 256, BF16 / FP16 / FP8,
// A from shared memory and from registers), and the epilogue's element-wise policies and register store at
// the edges of C. Inputs are small integers (times 1/2), so every product and sum is exact in FP32: the
// comparisons are exact, and outputs are poisoned with NaN first, so an element not written fails.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/check.hpp"
#include "aipe/device.hpp"
#include "aipe/kernels/epilogue.cuh"
#include "aipe/kernels/ptx.cuh"
#include "aipe/kernels/wgmma.cuh"
#include "aipe/random.hpp"

namespace {

namespace kn = aipe::kernels;
using kn::MmaType;

template <MmaType T>
struct Elem;
template <>
struct Elem<MmaType::bf16> {
  using type = __nv_bfloat16;
};
template <>
struct Elem<MmaType::f16> {
  using type = __half;
};
template <>
struct Elem<MmaType::e4m3> {
  using type = __nv_fp8_e4m3;
};
template <>
struct Elem<MmaType::e5m2> {
  using type = __nv_fp8_e5m2;
};

// Elements per 128-byte row: the K of one test GEMM (four instructions of 32 bytes each).
template <MmaType T>
constexpr int kK = 128 / static_cast<int>(sizeof(typename Elem<T>::type));

// Copies a rows x 128-byte K-major tile into shared memory with the 128-byte swizzle TMA writes: row r's
// 16-byte chunk c at chunk c ^ (r % 8).
__device__ void load_swizzled(unsigned char* dst, const unsigned char* src, int rows) {
  for (int i = threadIdx.x; i < rows * 8; i += blockDim.x) {
    const int r = i / 8, c = i % 8;
    *reinterpret_cast<uint4*>(dst + r * 128 + ((c ^ (r % 8)) << 4)) = *reinterpret_cast<const uint4*>(src + r * 128 + c * 16);
  }
}

// D[64 x N] = A[64 x K] * B[N x K]^T with one warpgroup. RegA: A read from registers (16-bit types: the
// accumulator-fragment layout of an m64nK tile, packed in pairs), B from shared memory.
template <int N, MmaType TA, MmaType TB, bool RegA>
__global__ void __launch_bounds__(128) wgmma_test_kernel(const unsigned char* A, const unsigned char* B, float* D) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ unsigned char smem_raw[];
  unsigned char* sA = reinterpret_cast<unsigned char*>((reinterpret_cast<std::uintptr_t>(smem_raw) + 1023) & ~std::uintptr_t(1023));
  unsigned char* sB = sA + 64 * 128;
  load_swizzled(sA, A, 64);
  load_swizzled(sB, B, N);
  kn::fence_proxy_async();  // the generic-proxy writes, visible to wgmma
  __syncthreads();
  const int t = threadIdx.x, warp = t / 32, lane = t % 32;
  const std::uint64_t da = kn::wgmma_desc_sw128(sA), db = kn::wgmma_desc_sw128(sB);
  float acc[N / 2];
#pragma unroll
  for (int i = 0; i < N / 2; ++i) acc[i] = 0.f;
  if constexpr (RegA) {
    static_assert(!kn::is_fp8(TA), "the register-A test covers the 16-bit types");
    // Thread t: rows r0 = 16 warp + lane / 4 and r0 + 8, K pairs 2 (lane % 4) and + 8 of each 16-wide slice.
    const std::uint16_t* a16 = reinterpret_cast<const std::uint16_t*>(A);
    const int r0 = 16 * warp + lane / 4, k0 = 2 * (lane % 4);
    std::uint32_t a[4][4];
    auto pair = [&](int r, int k) { return std::uint32_t(a16[r * 64 + k]) | (std::uint32_t(a16[r * 64 + k + 1]) << 16); };
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      a[kk][0] = pair(r0, 16 * kk + k0);
      a[kk][1] = pair(r0 + 8, 16 * kk + k0);
      a[kk][2] = pair(r0, 16 * kk + k0 + 8);
      a[kk][3] = pair(r0 + 8, 16 * kk + k0 + 8);
    }
    kn::wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) kn::wgmma_rs<N, TA, TB>(acc, a[kk], db + 2 * kk, kk != 0);
  } else {
    kn::wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) kn::wgmma_ss<N, TA, TB>(acc, da + 2 * kk, db + 2 * kk, kk != 0);
  }
  kn::wgmma_commit();
  kn::wgmma_wait<0>();
  kn::fence_regs(acc);
#pragma unroll
  for (int j = 0; j < N / 8; ++j)
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int e = 0; e < 2; ++e)
        D[(16 * warp + lane / 4 + 8 * h) * N + 8 * j + 2 * (lane % 4) + e] = acc[4 * j + 2 * h + e];
#else
  (void)A; (void)B; (void)D;
  __trap();
#endif
}

std::string sm90a_skip_reason() {
  if (auto why = aipe::gpu_unavailable_reason()) return *why;
  if (!AIPE_HAVE_SM90A) return "built without sm_90a";
  if (aipe::query_device().cc() != 90) return "wgmma needs an sm_90 GPU";
  return {};
}

// Small exact values: k/2 for k in -4..4 (representable in every type here, products and 128-term sums
// exact in FP32).
float value_at(std::uint64_t seed, std::size_t i) { return 0.5f * float(int(aipe::bits_at(seed, i) % 9) - 4); }

template <class T>
void encode(std::vector<unsigned char>& bytes, std::size_t i, float v) {
  const T x(v);
  std::memcpy(bytes.data() + i * sizeof(T), &x, sizeof(T));
}

template <int N, MmaType TA, MmaType TB = TA, bool RegA = false>
void check_wgmma() {
  if (const std::string why = sm90a_skip_reason(); !why.empty()) GTEST_SKIP() << why;
  using EA = typename Elem<TA>::type;
  using EB = typename Elem<TB>::type;
  static_assert(kK<TA> == kK<TB>, "both operands have the same K");
  constexpr int K = kK<TA>;
  std::vector<unsigned char> ha(64 * 128), hb(std::size_t(N) * 128);
  std::vector<float> va(64 * K), vb(std::size_t(N) * K);
  for (int i = 0; i < 64 * K; ++i) encode<EA>(ha, i, va[i] = value_at(11 + N, i));
  for (int i = 0; i < N * K; ++i) encode<EB>(hb, i, vb[i] = value_at(23 + N, i));
  aipe::DeviceBuffer<unsigned char> a(ha.size()), b(hb.size());
  aipe::DeviceBuffer<float> d(std::size_t(64) * N);
  AIPE_CUDA(cudaMemcpy(a.get(), ha.data(), ha.size(), cudaMemcpyHostToDevice));
  AIPE_CUDA(cudaMemcpy(b.get(), hb.data(), hb.size(), cudaMemcpyHostToDevice));
  AIPE_CUDA(cudaMemset(d.get(), 0xFF, d.bytes()));  // NaN everywhere: an element not written fails
  const std::size_t smem = 1024 + 64 * 128 + std::size_t(N) * 128;
  auto* kernel = wgmma_test_kernel<N, TA, TB, RegA>;
  AIPE_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  kernel<<<1, 128, smem>>>(a.get(), b.get(), d.get());
  AIPE_CHECK_LAUNCH();
  AIPE_CUDA(cudaDeviceSynchronize());
  std::vector<float> hd(std::size_t(64) * N);
  AIPE_CUDA(cudaMemcpy(hd.data(), d.get(), d.bytes(), cudaMemcpyDeviceToHost));
  int wrong = 0;
  for (int m = 0; m < 64; ++m)
    for (int n = 0; n < N; ++n) {
      double ref = 0;
      for (int k = 0; k < K; ++k) ref += double(va[m * K + k]) * vb[std::size_t(n) * K + k];
      const float got = hd[std::size_t(m) * N + n];
      if (!(got == float(ref)) && ++wrong <= 5)
        ADD_FAILURE() << "D[" << m << "][" << n << "] = " << got << ", expected " << ref;
    }
  EXPECT_EQ(wrong, 0) << "of " << 64 * N << " elements";
}

TEST(KernelsWgmma, Bf16SharedA) {
  check_wgmma<8, MmaType::bf16>();
  check_wgmma<24, MmaType::bf16>();
  check_wgmma<64, MmaType::bf16>();
  check_wgmma<136, MmaType::bf16>();
  check_wgmma<256, MmaType::bf16>();
}
TEST(KernelsWgmma, Fp16SharedA) {
  check_wgmma<16, MmaType::f16>();
  check_wgmma<200, MmaType::f16>();
}
TEST(KernelsWgmma, Fp8SharedA) {
  check_wgmma<8, MmaType::e4m3>();
  check_wgmma<128, MmaType::e4m3>();
  check_wgmma<256, MmaType::e4m3>();
  check_wgmma<40, MmaType::e5m2>();
  check_wgmma<32, MmaType::e4m3, MmaType::e5m2>();
  check_wgmma<96, MmaType::e5m2, MmaType::e4m3>();
}
TEST(KernelsWgmma, Bf16AndFp16RegisterA) {
  check_wgmma<8, MmaType::bf16, MmaType::bf16, true>();
  check_wgmma<64, MmaType::bf16, MmaType::bf16, true>();
  check_wgmma<256, MmaType::bf16, MmaType::bf16, true>();
  check_wgmma<48, MmaType::f16, MmaType::f16, true>();
}

// ---------------------------------------------------------------------------------------------
// Epilogue: element-wise policies composed, then the register store at the edges of C
// ---------------------------------------------------------------------------------------------

constexpr int kEpiBN = 64;
// A fragment whose element (row, col) of the 64 x kEpiBN tile at (row0, col0) holds x(row, col), through the
// epilogue ops and store_fragment into C (M x N, row pitch ldc).
__device__ __host__ inline float epi_input(int row, int col) { return 0.25f * float((row * 7 + col * 3) % 17 - 8); }

template <class Op>
__global__ void __launch_bounds__(128) epilogue_test_kernel(__nv_bfloat16* C, std::size_t ldc, int M, int N, int row0,
                                                            int col0, Op op) {
  const int t = threadIdx.x, warp = t / 32, lane = t % 32;
  float acc[kEpiBN / 2];
  const int r = row0 + 16 * warp + lane / 4, c = col0 + 2 * (lane % 4);
#pragma unroll
  for (int j = 0; j < kEpiBN / 8; ++j)
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int e = 0; e < 2; ++e) acc[4 * j + 2 * h + e] = epi_input(r + 8 * h, c + 8 * j + e);
  kn::apply_fragment<kEpiBN>(acc, op, r, c, M, N);
  kn::store_fragment<kEpiBN>(acc, C, ldc, M, N, row0, col0);
}

double gelu_ref(double v) { return 0.5 * v * (1 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v))); }

TEST(KernelsEpilogue, ScaleBiasGeluResidualAtTheEdges) {
  if (auto why = aipe::gpu_unavailable_reason()) GTEST_SKIP() << *why;
  // C is 70 x 93 with a pitch of 95 (odd: pairs are stored one by one); tiles at an interior corner, at the
  // bottom-right edge (rows and columns past M and N dropped), and fully inside with an even pitch.
  struct Case {
    int M, N;
    std::size_t ldc;
    int row0, col0;
  };
  for (const Case cs : {Case{70, 93, 95, 0, 0}, Case{70, 93, 95, 64, 64}, Case{130, 200, 200, 64, 128}, Case{37, 61, 62, 0, 0}}) {
    SCOPED_TRACE("M " + std::to_string(cs.M) + " N " + std::to_string(cs.N) + " tile (" + std::to_string(cs.row0) + ", " +
                 std::to_string(cs.col0) + ")");
    std::vector<__nv_bfloat16> hbias(cs.N), hres(std::size_t(cs.M) * cs.ldc);
    for (int n = 0; n < cs.N; ++n) hbias[n] = __float2bfloat16(0.125f * float(n % 9 - 4));
    for (std::size_t i = 0; i < hres.size(); ++i) hres[i] = __float2bfloat16(0.5f * float(int(i % 5) - 2));
    aipe::DeviceBuffer<__nv_bfloat16> bias(hbias.size()), res(hres.size()), c(hres.size());
    AIPE_CUDA(cudaMemcpy(bias.get(), hbias.data(), bias.bytes(), cudaMemcpyHostToDevice));
    AIPE_CUDA(cudaMemcpy(res.get(), hres.data(), res.bytes(), cudaMemcpyHostToDevice));
    AIPE_CUDA(cudaMemset(c.get(), 0xFF, c.bytes()));  // BF16 NaN: what the tile does not cover stays NaN
    using namespace kn::epi;
    const Chain<Scale, Bias<__nv_bfloat16>, Gelu, Residual<__nv_bfloat16>> op{{1.5f}, {{bias.get()}, {{}, {{res.get(), cs.ldc}, {}}}}};
    epilogue_test_kernel<<<1, 128>>>(c.get(), cs.ldc, cs.M, cs.N, cs.row0, cs.col0, op);
    AIPE_CHECK_LAUNCH();
    AIPE_CUDA(cudaDeviceSynchronize());
    std::vector<__nv_bfloat16> hc(hres.size());
    AIPE_CUDA(cudaMemcpy(hc.data(), c.get(), c.bytes(), cudaMemcpyDeviceToHost));
    int wrong = 0;
    for (int m = 0; m < cs.M; ++m)
      for (std::size_t n = 0; n < cs.ldc; ++n) {
        const float got = __bfloat162float(hc[m * cs.ldc + n]);
        const bool inside = m >= cs.row0 && m < cs.row0 + 64 && int(n) >= cs.col0 && int(n) < cs.col0 + kEpiBN && int(n) < cs.N;
        if (!inside) {
          if (!std::isnan(got) && ++wrong <= 5) ADD_FAILURE() << "C[" << m << "][" << n << "] written outside the tile or N";
          continue;
        }
        const double v = gelu_ref(1.5 * epi_input(m, int(n)) + __bfloat162float(hbias[n])) +
                         __bfloat162float(hres[m * cs.ldc + n]);
        // BF16 output: 2^-8 relative, plus tanhf's few ulp.
        if (!(std::fabs(got - v) <= 1e-5 + std::fabs(v) * (1.0 / 256)) && ++wrong <= 5)
          ADD_FAILURE() << "C[" << m << "][" << n << "] = " << got << ", expected " << v;
      }
    EXPECT_EQ(wrong, 0);
  }
}

}  // namespace
