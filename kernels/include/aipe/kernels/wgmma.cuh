// WGMMA (sm_90a warpgroup MMA): shared-memory matrix descriptors, fence / commit / wait, and the
// wgmma.mma_async instruction for every shape the ISA has with an FP32 accumulator: m64nNk16 for BF16 and
// FP16, m64nNk32 for FP8 (E4M3, E5M2, mixed), N = 8 .. 256 in steps of 8; A from shared memory (`ss`) or
// from registers (`rs`, what attention's second GEMM needs: P stays in registers). The instructions are
// generated from one definition per operand family (AIPE_WG_SHAPES below), not written out per shape.
//
// Conventions (the ones CUTLASS's sm90 collectives and DeepGEMM also use):
//  * Operands are K-major in shared memory: a tile of R rows x 128 bytes per row (64 BF16, 128 FP8),
//    written by TMA with CU_TENSOR_MAP_SWIZZLE_128B, so row r's 16-byte chunk c sits at chunk c ^ (r % 8).
//    Eight rows form a 1024-byte "core matrix group"; tiles must start on a 1024-byte boundary for the
//    swizzle phase TMA writes to match the one WGMMA reads (descriptor base offset 0). The 64- and 32-byte
//    swizzles are the same with 64- and 32-byte rows (512- and 256-byte groups).
//  * A descriptor: start address >> 4 (bits 0-13), leading byte offset (unused for swizzled K-major
//    layouts, 1 by convention; bits 16-29), stride byte offset between 8-row groups >> 4 (bits 32-45),
//    layout (bits 62-63: 1 = 128B, 2 = 64B, 3 = 32B swizzle). The k-th K slice of a tile starts
//    (slice bytes) * k further: the hardware applies the swizzle to the final address, so a slice step is
//    +2 (32 bytes) on the descriptor for k16 BF16 and k32 FP8.
//  * Accumulator fragment of wgmma m64nN (f32): thread t of the warpgroup holds rows
//    16*(t/32) + (t%32)/4 + {0, 8} and columns 8*j + 2*(t%4) + {0, 1}; register d[4*j + 2*h + e] is
//    row 16*(t/32) + (t%32)/4 + 8*h, column 8*j + 2*(t%4) + e.
//  * Register A fragment (rs): four 32-bit registers a[0..3] per thread, laid out as the accumulator
//    fragment of an m64n(K) tile packed in pairs (BF16/FP16: two elements a register; FP8: four).
//  * FP8 wgmma has no transpose immediates: both operands must be K-major. BF16/FP16 take TransA/TransB
//    (MN-major operands in shared memory; TransA only with A from shared memory).
#pragma once
#include <cstdint>

#include "aipe/kernels/ptx.cuh"

namespace aipe::kernels {

// ---------------------------------------------------------------------------------------------
// Descriptors
// ---------------------------------------------------------------------------------------------

enum class Swizzle { b128 = 1, b64 = 2, b32 = 3 };

// Bytes per row of a K-major tile with swizzle S (the swizzle span).
template <Swizzle S>
inline constexpr int kSwizzleBytes = S == Swizzle::b128 ? 128 : S == Swizzle::b64 ? 64 : 32;

// Shared-memory matrix descriptor for a K-major tile written by TMA with swizzle S. `p` must lie in a tile
// aligned to 8 rows of the swizzle span (1024 bytes for 128B), plus the steps that select a K slice.
template <Swizzle S>
__device__ __forceinline__ std::uint64_t wgmma_desc(const void* p) {
  const std::uint64_t addr = smem_u32(p);
  std::uint64_t d = 0;
  d |= (addr & 0x3FFFF) >> 4;                                 // start address, bits 0-13
  d |= std::uint64_t(1) << 16;                                // leading byte offset (unused with swizzled K-major)
  d |= std::uint64_t((8 * kSwizzleBytes<S>) >> 4) << 32;      // stride byte offset: 8 rows of the span
  d |= std::uint64_t(static_cast<int>(S)) << 62;              // layout
  return d;
}
// The 128-byte swizzle of every GEMM in aipe (rows of 64 BF16 or 128 FP8, 8-row groups 1024 bytes apart).
__device__ __forceinline__ std::uint64_t wgmma_desc_sw128(const void* p) { return wgmma_desc<Swizzle::b128>(p); }

// Descriptor for an MN-major B operand (BF16/FP16 with TransB = 1) in 128B-swizzled rows: the tile is stored
// [K][64 MN elements] per 128-byte row (as TMA writes a [rows][64] box whose rows are the K index), 8 K-rows
// 1024 bytes apart (stride byte offset), and the next 64 elements of N start `chunk_bytes` further (leading
// byte offset: the distance between two such [K][64] boxes). Attention's V tile [keys][d] is this operand of
// O += P V. Stepping K by 16 rows is +2048 bytes on the start address.
__device__ __forceinline__ std::uint64_t wgmma_desc_mn_sw128(const void* p, std::uint32_t chunk_bytes) {
  std::uint64_t d = wgmma_desc<Swizzle::b128>(p) & ~(std::uint64_t(0x3FFF) << 16);
  d |= std::uint64_t((chunk_bytes >> 4) & 0x3FFF) << 16;
  return d;
}

// ---------------------------------------------------------------------------------------------
// Fence, commit, wait
// ---------------------------------------------------------------------------------------------

// Orders register accesses to the accumulators before the next wgmma reads them.
__device__ __forceinline__ void wgmma_fence() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
// Closes the group of wgmma issued since the last commit.
__device__ __forceinline__ void wgmma_commit() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
// Waits until at most N committed groups are still in flight.
template <int N>
__device__ __forceinline__ void wgmma_wait() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}

// Keeps the compiler from moving accumulator reads/writes across wgmma issue and wait points.
template <int N>
__device__ __forceinline__ void fence_regs(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

// ---------------------------------------------------------------------------------------------
// The instructions
// ---------------------------------------------------------------------------------------------

enum class MmaType { bf16, f16, e4m3, e5m2 };
__host__ __device__ constexpr bool is_fp8(MmaType t) { return t == MmaType::e4m3 || t == MmaType::e5m2; }
// K of one instruction: 32 bytes of each operand row.
template <MmaType T>
inline constexpr int kMmaK = is_fp8(T) ? 32 : 16;

// Wgmma<N, A, B>::ss<TransA, TransB>(d, desc_a, desc_b, scale_d): D[64 x N] (+)= A[64 x K] * B[K x N], both
// from shared memory; scale_d == 0 overwrites D. ::rs<TransB>(d, a, desc_b, scale_d): A from registers.
// Specialised below for every valid (N, A, B); a shape the ISA does not have does not compile.
template <int N, MmaType A, MmaType B>
struct Wgmma;

// Operand text and constraints: AIPE_WG_ACC_R is "%0, ..., %(R-1)", AIPE_WG_OUT_R the R "+f" outputs.
#define AIPE_WG_D4(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3])
#define AIPE_WG_ACC_4 "%0, %1, %2, %3"
#define AIPE_WG_ACC_8 AIPE_WG_ACC_4 ", " "%4, %5, %6, %7"
#define AIPE_WG_ACC_12 AIPE_WG_ACC_8 ", " "%8, %9, %10, %11"
#define AIPE_WG_ACC_16 AIPE_WG_ACC_12 ", " "%12, %13, %14, %15"
#define AIPE_WG_ACC_20 AIPE_WG_ACC_16 ", " "%16, %17, %18, %19"
#define AIPE_WG_ACC_24 AIPE_WG_ACC_20 ", " "%20, %21, %22, %23"
#define AIPE_WG_ACC_28 AIPE_WG_ACC_24 ", " "%24, %25, %26, %27"
#define AIPE_WG_ACC_32 AIPE_WG_ACC_28 ", " "%28, %29, %30, %31"
#define AIPE_WG_ACC_36 AIPE_WG_ACC_32 ", " "%32, %33, %34, %35"
#define AIPE_WG_ACC_40 AIPE_WG_ACC_36 ", " "%36, %37, %38, %39"
#define AIPE_WG_ACC_44 AIPE_WG_ACC_40 ", " "%40, %41, %42, %43"
#define AIPE_WG_ACC_48 AIPE_WG_ACC_44 ", " "%44, %45, %46, %47"
#define AIPE_WG_ACC_52 AIPE_WG_ACC_48 ", " "%48, %49, %50, %51"
#define AIPE_WG_ACC_56 AIPE_WG_ACC_52 ", " "%52, %53, %54, %55"
#define AIPE_WG_ACC_60 AIPE_WG_ACC_56 ", " "%56, %57, %58, %59"
#define AIPE_WG_ACC_64 AIPE_WG_ACC_60 ", " "%60, %61, %62, %63"
#define AIPE_WG_ACC_68 AIPE_WG_ACC_64 ", " "%64, %65, %66, %67"
#define AIPE_WG_ACC_72 AIPE_WG_ACC_68 ", " "%68, %69, %70, %71"
#define AIPE_WG_ACC_76 AIPE_WG_ACC_72 ", " "%72, %73, %74, %75"
#define AIPE_WG_ACC_80 AIPE_WG_ACC_76 ", " "%76, %77, %78, %79"
#define AIPE_WG_ACC_84 AIPE_WG_ACC_80 ", " "%80, %81, %82, %83"
#define AIPE_WG_ACC_88 AIPE_WG_ACC_84 ", " "%84, %85, %86, %87"
#define AIPE_WG_ACC_92 AIPE_WG_ACC_88 ", " "%88, %89, %90, %91"
#define AIPE_WG_ACC_96 AIPE_WG_ACC_92 ", " "%92, %93, %94, %95"
#define AIPE_WG_ACC_100 AIPE_WG_ACC_96 ", " "%96, %97, %98, %99"
#define AIPE_WG_ACC_104 AIPE_WG_ACC_100 ", " "%100, %101, %102, %103"
#define AIPE_WG_ACC_108 AIPE_WG_ACC_104 ", " "%104, %105, %106, %107"
#define AIPE_WG_ACC_112 AIPE_WG_ACC_108 ", " "%108, %109, %110, %111"
#define AIPE_WG_ACC_116 AIPE_WG_ACC_112 ", " "%112, %113, %114, %115"
#define AIPE_WG_ACC_120 AIPE_WG_ACC_116 ", " "%116, %117, %118, %119"
#define AIPE_WG_ACC_124 AIPE_WG_ACC_120 ", " "%120, %121, %122, %123"
#define AIPE_WG_ACC_128 AIPE_WG_ACC_124 ", " "%124, %125, %126, %127"
#define AIPE_WG_OUT_4 AIPE_WG_D4(0)
#define AIPE_WG_OUT_8 AIPE_WG_OUT_4, AIPE_WG_D4(4)
#define AIPE_WG_OUT_12 AIPE_WG_OUT_8, AIPE_WG_D4(8)
#define AIPE_WG_OUT_16 AIPE_WG_OUT_12, AIPE_WG_D4(12)
#define AIPE_WG_OUT_20 AIPE_WG_OUT_16, AIPE_WG_D4(16)
#define AIPE_WG_OUT_24 AIPE_WG_OUT_20, AIPE_WG_D4(20)
#define AIPE_WG_OUT_28 AIPE_WG_OUT_24, AIPE_WG_D4(24)
#define AIPE_WG_OUT_32 AIPE_WG_OUT_28, AIPE_WG_D4(28)
#define AIPE_WG_OUT_36 AIPE_WG_OUT_32, AIPE_WG_D4(32)
#define AIPE_WG_OUT_40 AIPE_WG_OUT_36, AIPE_WG_D4(36)
#define AIPE_WG_OUT_44 AIPE_WG_OUT_40, AIPE_WG_D4(40)
#define AIPE_WG_OUT_48 AIPE_WG_OUT_44, AIPE_WG_D4(44)
#define AIPE_WG_OUT_52 AIPE_WG_OUT_48, AIPE_WG_D4(48)
#define AIPE_WG_OUT_56 AIPE_WG_OUT_52, AIPE_WG_D4(52)
#define AIPE_WG_OUT_60 AIPE_WG_OUT_56, AIPE_WG_D4(56)
#define AIPE_WG_OUT_64 AIPE_WG_OUT_60, AIPE_WG_D4(60)
#define AIPE_WG_OUT_68 AIPE_WG_OUT_64, AIPE_WG_D4(64)
#define AIPE_WG_OUT_72 AIPE_WG_OUT_68, AIPE_WG_D4(68)
#define AIPE_WG_OUT_76 AIPE_WG_OUT_72, AIPE_WG_D4(72)
#define AIPE_WG_OUT_80 AIPE_WG_OUT_76, AIPE_WG_D4(76)
#define AIPE_WG_OUT_84 AIPE_WG_OUT_80, AIPE_WG_D4(80)
#define AIPE_WG_OUT_88 AIPE_WG_OUT_84, AIPE_WG_D4(84)
#define AIPE_WG_OUT_92 AIPE_WG_OUT_88, AIPE_WG_D4(88)
#define AIPE_WG_OUT_96 AIPE_WG_OUT_92, AIPE_WG_D4(92)
#define AIPE_WG_OUT_100 AIPE_WG_OUT_96, AIPE_WG_D4(96)
#define AIPE_WG_OUT_104 AIPE_WG_OUT_100, AIPE_WG_D4(100)
#define AIPE_WG_OUT_108 AIPE_WG_OUT_104, AIPE_WG_D4(104)
#define AIPE_WG_OUT_112 AIPE_WG_OUT_108, AIPE_WG_D4(108)
#define AIPE_WG_OUT_116 AIPE_WG_OUT_112, AIPE_WG_D4(112)
#define AIPE_WG_OUT_120 AIPE_WG_OUT_116, AIPE_WG_D4(116)
#define AIPE_WG_OUT_124 AIPE_WG_OUT_120, AIPE_WG_D4(120)
#define AIPE_WG_OUT_128 AIPE_WG_OUT_124, AIPE_WG_D4(124)
// Every N of the ISA with its accumulator count R = N / 2 and the operand numbers that follow the R
// outputs (R, R + 1, ..., R + 6), spelled out because the preprocessor cannot add.
#define AIPE_WG_SHAPES(X) \
  X(8, 4, 4, 5, 6, 7, 8, 9, 10) \
  X(16, 8, 8, 9, 10, 11, 12, 13, 14) \
  X(24, 12, 12, 13, 14, 15, 16, 17, 18) \
  X(32, 16, 16, 17, 18, 19, 20, 21, 22) \
  X(40, 20, 20, 21, 22, 23, 24, 25, 26) \
  X(48, 24, 24, 25, 26, 27, 28, 29, 30) \
  X(56, 28, 28, 29, 30, 31, 32, 33, 34) \
  X(64, 32, 32, 33, 34, 35, 36, 37, 38) \
  X(72, 36, 36, 37, 38, 39, 40, 41, 42) \
  X(80, 40, 40, 41, 42, 43, 44, 45, 46) \
  X(88, 44, 44, 45, 46, 47, 48, 49, 50) \
  X(96, 48, 48, 49, 50, 51, 52, 53, 54) \
  X(104, 52, 52, 53, 54, 55, 56, 57, 58) \
  X(112, 56, 56, 57, 58, 59, 60, 61, 62) \
  X(120, 60, 60, 61, 62, 63, 64, 65, 66) \
  X(128, 64, 64, 65, 66, 67, 68, 69, 70) \
  X(136, 68, 68, 69, 70, 71, 72, 73, 74) \
  X(144, 72, 72, 73, 74, 75, 76, 77, 78) \
  X(152, 76, 76, 77, 78, 79, 80, 81, 82) \
  X(160, 80, 80, 81, 82, 83, 84, 85, 86) \
  X(168, 84, 84, 85, 86, 87, 88, 89, 90) \
  X(176, 88, 88, 89, 90, 91, 92, 93, 94) \
  X(184, 92, 92, 93, 94, 95, 96, 97, 98) \
  X(192, 96, 96, 97, 98, 99, 100, 101, 102) \
  X(200, 100, 100, 101, 102, 103, 104, 105, 106) \
  X(208, 104, 104, 105, 106, 107, 108, 109, 110) \
  X(216, 108, 108, 109, 110, 111, 112, 113, 114) \
  X(224, 112, 112, 113, 114, 115, 116, 117, 118) \
  X(232, 116, 116, 117, 118, 119, 120, 121, 122) \
  X(240, 120, 120, 121, 122, 123, 124, 125, 126) \
  X(248, 124, 124, 125, 126, 127, 128, 129, 130) \
  X(256, 128, 128, 129, 130, 131, 132, 133, 134)

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define AIPE_WG_ASM(...) asm volatile(__VA_ARGS__)
#else
#define AIPE_WG_ASM(...) __trap()  // wgmma needs sm_90a: a kernel built without it must not return garbage
#endif
#define AIPE_WG_STR(x) #x

// BF16 / FP16: k16, transpose immediates. ss operands: desc_a %R, desc_b %R+1, scale_d %R+2, TransA %R+3,
// TransB %R+4. rs operands: a[0..3] %R..%R+3, desc_b %R+4, scale_d %R+5, TransB %R+6.
#define AIPE_WG_16BIT(N, R, I0, I1, I2, I3, I4, I5, I6, TY, TS)                                                    \
  template <>                                                                                                      \
  struct Wgmma<N, MmaType::TY, MmaType::TY> {                                                                      \
    template <int TA, int TB>                                                                                      \
    __device__ static __forceinline__ void ss(float (&d)[R], std::uint64_t da, std::uint64_t db, int scale_d) {     \
      AIPE_WG_ASM("{\n.reg .pred p;\nsetp.ne.b32 p, %" AIPE_WG_STR(I2) ", 0;\n"                                     \
                  "wgmma.mma_async.sync.aligned.m64n" AIPE_WG_STR(N) "k16.f32." TS "." TS " {" AIPE_WG_ACC_##R       \
                  "}, %" AIPE_WG_STR(I0) ", %" AIPE_WG_STR(I1) ", p, 1, 1, %" AIPE_WG_STR(I3) ", %" AIPE_WG_STR(I4) \
                  ";\n}\n"                                                                                         \
                  : AIPE_WG_OUT_##R                                                                                \
                  : "l"(da), "l"(db), "r"(scale_d), "n"(TA), "n"(TB));                                             \
    }                                                                                                              \
    template <int TB>                                                                                              \
    __device__ static __forceinline__ void rs(float (&d)[R], const std::uint32_t (&a)[4], std::uint64_t db,         \
                                              int scale_d) {                                                       \
      AIPE_WG_ASM("{\n.reg .pred p;\nsetp.ne.b32 p, %" AIPE_WG_STR(I5) ", 0;\n"                                     \
                  "wgmma.mma_async.sync.aligned.m64n" AIPE_WG_STR(N) "k16.f32." TS "." TS " {" AIPE_WG_ACC_##R       \
                  "}, {%" AIPE_WG_STR(I0) ", %" AIPE_WG_STR(I1) ", %" AIPE_WG_STR(I2) ", %" AIPE_WG_STR(I3)          \
                  "}, %" AIPE_WG_STR(I4) ", p, 1, 1, %" AIPE_WG_STR(I6) ";\n}\n"                                     \
                  : AIPE_WG_OUT_##R                                                                                \
                  : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(scale_d), "n"(TB));                   \
    }                                                                                                              \
  };

// FP8: k32, no transposes. ss operands: desc_a %R, desc_b %R+1, scale_d %R+2. rs operands: a[0..3]
// %R..%R+3, desc_b %R+4, scale_d %R+5.
#define AIPE_WG_FP8(N, R, I0, I1, I2, I3, I4, I5, I6, TA_, SA, TB_, SB)                                             \
  template <>                                                                                                      \
  struct Wgmma<N, MmaType::TA_, MmaType::TB_> {                                                                    \
    template <int TA, int TB>                                                                                      \
    __device__ static __forceinline__ void ss(float (&d)[R], std::uint64_t da, std::uint64_t db, int scale_d) {     \
      static_assert(TA == 0 && TB == 0, "FP8 wgmma reads K-major operands only");                                  \
      AIPE_WG_ASM("{\n.reg .pred p;\nsetp.ne.b32 p, %" AIPE_WG_STR(I2) ", 0;\n"                                     \
                  "wgmma.mma_async.sync.aligned.m64n" AIPE_WG_STR(N) "k32.f32." SA "." SB " {" AIPE_WG_ACC_##R       \
                  "}, %" AIPE_WG_STR(I0) ", %" AIPE_WG_STR(I1) ", p, 1, 1;\n}\n"                                     \
                  : AIPE_WG_OUT_##R                                                                                \
                  : "l"(da), "l"(db), "r"(scale_d));                                                               \
    }                                                                                                              \
    template <int TB>                                                                                              \
    __device__ static __forceinline__ void rs(float (&d)[R], const std::uint32_t (&a)[4], std::uint64_t db,         \
                                              int scale_d) {                                                       \
      static_assert(TB == 0, "FP8 wgmma reads K-major operands only");                                             \
      AIPE_WG_ASM("{\n.reg .pred p;\nsetp.ne.b32 p, %" AIPE_WG_STR(I5) ", 0;\n"                                     \
                  "wgmma.mma_async.sync.aligned.m64n" AIPE_WG_STR(N) "k32.f32." SA "." SB " {" AIPE_WG_ACC_##R       \
                  "}, {%" AIPE_WG_STR(I0) ", %" AIPE_WG_STR(I1) ", %" AIPE_WG_STR(I2) ", %" AIPE_WG_STR(I3)          \
                  "}, %" AIPE_WG_STR(I4) ", p, 1, 1;\n}\n"                                                           \
                  : AIPE_WG_OUT_##R                                                                                \
                  : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(scale_d));                            \
    }                                                                                                              \
  };

#define AIPE_WG_BF16(N, R, ...) AIPE_WG_16BIT(N, R, __VA_ARGS__, bf16, "bf16")
#define AIPE_WG_F16(N, R, ...) AIPE_WG_16BIT(N, R, __VA_ARGS__, f16, "f16")
#define AIPE_WG_E4M3_E4M3(N, R, ...) AIPE_WG_FP8(N, R, __VA_ARGS__, e4m3, "e4m3", e4m3, "e4m3")
#define AIPE_WG_E4M3_E5M2(N, R, ...) AIPE_WG_FP8(N, R, __VA_ARGS__, e4m3, "e4m3", e5m2, "e5m2")
#define AIPE_WG_E5M2_E4M3(N, R, ...) AIPE_WG_FP8(N, R, __VA_ARGS__, e5m2, "e5m2", e4m3, "e4m3")
#define AIPE_WG_E5M2_E5M2(N, R, ...) AIPE_WG_FP8(N, R, __VA_ARGS__, e5m2, "e5m2", e5m2, "e5m2")
AIPE_WG_SHAPES(AIPE_WG_BF16)
AIPE_WG_SHAPES(AIPE_WG_F16)
AIPE_WG_SHAPES(AIPE_WG_E4M3_E4M3)
AIPE_WG_SHAPES(AIPE_WG_E4M3_E5M2)
AIPE_WG_SHAPES(AIPE_WG_E5M2_E4M3)
AIPE_WG_SHAPES(AIPE_WG_E5M2_E5M2)

// The tables are for the definitions above only.
#undef AIPE_WG_BF16
#undef AIPE_WG_F16
#undef AIPE_WG_E4M3_E4M3
#undef AIPE_WG_E4M3_E5M2
#undef AIPE_WG_E5M2_E4M3
#undef AIPE_WG_E5M2_E5M2
#undef AIPE_WG_16BIT
#undef AIPE_WG_FP8
#undef AIPE_WG_ASM
#undef AIPE_WG_STR

// One wgmma with A and B from shared memory: D[64 x N] (+)= A[64 x K] * B[K x N], K = kMmaK<A>.
template <int N, MmaType A = MmaType::bf16, MmaType B = A, bool TransA = false, bool TransB = false>
__device__ __forceinline__ void wgmma_ss(float (&d)[N / 2], std::uint64_t desc_a, std::uint64_t desc_b, int scale_d) {
  static_assert(N % 8 == 0 && N >= 8 && N <= 256, "wgmma has N = 8 .. 256 in steps of 8");
  Wgmma<N, A, B>::template ss<TransA ? 1 : 0, TransB ? 1 : 0>(d, desc_a, desc_b, scale_d);
}
// One wgmma with A from registers (the m64 x K fragment, four 32-bit registers a thread).
template <int N, MmaType A = MmaType::bf16, MmaType B = A, bool TransB = false>
__device__ __forceinline__ void wgmma_rs(float (&d)[N / 2], const std::uint32_t (&a)[4], std::uint64_t desc_b,
                                         int scale_d) {
  static_assert(N % 8 == 0 && N >= 8 && N <= 256, "wgmma has N = 8 .. 256 in steps of 8");
  Wgmma<N, A, B>::template rs<TransB ? 1 : 0>(d, a, desc_b, scale_d);
}

}  // namespace aipe::kernels
