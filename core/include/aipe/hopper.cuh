// Hopper (sm_90 / sm_90a) device helpers shared by every TMA + WGMMA kernel in aipe: tensor-map
// (TMA descriptor) creation on the host, mbarrier waits with phase bits, 2D bulk-tensor loads (plain
// and cluster multicast), proxy fences, WGMMA shared-memory descriptors for the 128-byte swizzle,
// m64nNk16 BF16 WGMMA wrappers with their fence / commit / wait, setmaxnreg and cluster helpers.
//
// Conventions (the ones CUTLASS's sm90 collectives and DeepGEMM also use):
//  * Operands are K-major in shared memory: a tile of R rows x 64 BF16 (128 bytes) per row, written by
//    TMA with CU_TENSOR_MAP_SWIZZLE_128B, so row r's 16-byte chunk c sits at chunk c ^ (r % 8). Eight rows
//    form a 1024-byte "core matrix group"; tiles must start on a 1024-byte boundary for the swizzle
//    phase TMA writes to match the one WGMMA reads (descriptor base offset 0).
//  * A WGMMA descriptor for such a tile: start address >> 4 (bits 0-13), leading byte offset (unused
//    for swizzled K-major layouts, 1 by convention; bits 16-29), stride byte offset = 1024 >> 4 between
//    8-row groups (bits 32-45), layout 1 = 128B swizzle (bits 62-63). The k-th 16-wide K slice of the
//    64-wide tile starts 32*k bytes further: the hardware applies the swizzle to the final address.
//  * Accumulator fragment of wgmma m64nN (f32): thread t of the warpgroup holds rows
//    16*(t/32) + (t%32)/4 + {0, 8} and columns 8*j + 2*(t%4) + {0, 1}; register d[4*j + 2*h + e] is
//    row 16*(t/32) + (t%32)/4 + 8*h, column 8*j + 2*(t%4) + e.
//
// Host code needs only the CUDA runtime: cuTensorMapEncodeTiled is looked up through
// cudaGetDriverEntryPoint*, so nothing links libcuda directly.
#pragma once
#include <cuda_bf16.h>
#include <cuda.h>  // CUtensorMap and its enums (types only; no libcuda symbol is referenced)
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

#include "aipe/check.hpp"
#include "aipe/stream_k.hpp"

namespace aipe::hopper {

// ---------------------------------------------------------------------------------------------
// Host: tensor maps
// ---------------------------------------------------------------------------------------------

using EncodeTiledFn = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                   const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                   CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

inline EncodeTiledFn encode_tiled_fn() {
  static EncodeTiledFn fn = [] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult q{};
#if CUDART_VERSION >= 12050
    AIPE_CUDA(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q));
#else
    AIPE_CUDA(cudaGetDriverEntryPoint("cuTensorMapEncodeTiled", &p, cudaEnableDefault, &q));
#endif
    if (q != cudaDriverEntryPointSuccess || !p)
      throw std::runtime_error("cuTensorMapEncodeTiled is not available from this driver");
    return reinterpret_cast<EncodeTiledFn>(p);
  }();
  return fn;
}

// The L2 promotion of every tensor map in aipe: 128 bytes, one row of a 128-byte-swizzled box, so a box
// pulls into L2 only what it reads. With 256 bytes each row also brought in the next 128 bytes (the next
// K block's, not yet needed), and the GEMMs moved more bytes through the H100's L2 than cuBLASLt's
// kernels, a good part of them between its two L2 partitions (docs/ch10.md, "L2 promotion").
inline constexpr CUtensorMapL2promotion kTmaL2Promotion = CU_TENSOR_MAP_L2_PROMOTION_L2_128B;

// A 2D row-major BF16 matrix of `rows` x `cols` (cols contiguous, row pitch `ld` elements) read in boxes of
// box_rows x box_cols. With SWIZZLE_128B, box_cols * 2 bytes must be 128 (64 BF16). Out-of-bounds
// elements of a box are filled with zeros, which is how the kernels handle edges of non-multiple sizes.
// TMA's rule: the row pitch in bytes must be a multiple of 16 (ld % 8 == 0) and the base 16-byte aligned.
// L2 promotion: kTmaL2Promotion.
inline CUtensorMap make_tma_2d_bf16(const void* base, std::uint64_t rows, std::uint64_t cols, std::uint64_t ld,
                                    std::uint32_t box_rows, std::uint32_t box_cols,
                                    CUtensorMapSwizzle swizzle = CU_TENSOR_MAP_SWIZZLE_128B) {
  if ((ld * 2) % 16 != 0 || reinterpret_cast<std::uintptr_t>(base) % 16 != 0)
    throw std::invalid_argument("TMA needs a 16-byte aligned base and a row pitch that is a multiple of 16 bytes");
  CUtensorMap map{};
  const cuuint64_t dims[2] = {cols, rows};      // innermost first
  const cuuint64_t strides[1] = {ld * 2};       // bytes between rows (dimension 1)
  const cuuint32_t box[2] = {box_cols, box_rows};
  const cuuint32_t elem_strides[2] = {1, 1};
  const CUresult r = encode_tiled_fn()(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<void*>(base), dims,
                                       strides, box, elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle,
                                       kTmaL2Promotion, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS)
    throw std::runtime_error("cuTensorMapEncodeTiled failed with CUresult " + std::to_string(static_cast<int>(r)));
  return map;
}

#if defined(__CUDACC__)
// ---------------------------------------------------------------------------------------------
// Host: launches in thread-block clusters
// ---------------------------------------------------------------------------------------------

// The launch configuration of `grid` CTAs (a multiple of `cluster`) of `block` threads, with `smem` bytes
// of dynamic shared memory, in clusters of `cluster` CTAs along x. Not copyable: cfg points at attr.
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

// ---------------------------------------------------------------------------------------------
// Device: addresses, fences, mbarriers
// ---------------------------------------------------------------------------------------------

__device__ __forceinline__ std::uint32_t smem_u32(const void* p) {
  return static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
}

// Makes generic-proxy shared-memory writes (ordinary stores, stmatrix) visible to the async proxy
// (TMA, WGMMA) that reads them next; and orders barrier initialisation before async-proxy use.
__device__ __forceinline__ void fence_proxy_async() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// mbarrier initialisation must be visible to the other CTAs of the cluster (and to the async proxy)
// before anyone arrives on it remotely or TMA completes a transaction on it.
__device__ __forceinline__ void fence_barrier_init() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void mbar_init(std::uint64_t* bar, std::uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(count) : "memory");
}

// Arrive (count 1) and tell the barrier that `bytes` more will land through TMA in this phase.
__device__ __forceinline__ void mbar_arrive_expect_tx(std::uint64_t* bar, std::uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(bytes)
               : "memory");
}

__device__ __forceinline__ void mbar_arrive(std::uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_u32(bar)) : "memory");
}

// Arrive on the barrier at the same shared-memory offset in CTA `cta` of this cluster (may be this CTA).
// Default (.release.cta) semantics, as CUTLASS's ClusterBarrier uses to free a multicast slot: the arriving
// thread only read the slot (through wgmma, already waited for), so no cluster-scope release is needed. It
// matters: with .release.cluster on this arrive, ch10/gemm_bf16's cluster rung measured 362 TFLOP/s on the
// H100 instead of 626 (presumably the cluster-scope release stalls each consumer once per K step).
__device__ __forceinline__ void mbar_arrive_cluster(std::uint64_t* bar, std::uint32_t cta) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "{\n.reg .b32 remote;\n"
      "mapa.shared::cluster.u32 remote, %0, %1;\n"
      "mbarrier.arrive.shared::cluster.b64 _, [remote];\n}\n" ::"r"(smem_u32(bar)),
      "r"(cta)
      : "memory");
#endif
}

// Blocks until the barrier's phase with parity `phase` has completed. A fresh barrier is in phase 0,
// so waiting on parity 1 returns at once: that is how a producer sees a ring of empty slots as free.
// try_wait suspends the thread until the phase completes or a time limit passes; the suspend-time hint
// (10 ms) replaces the short system default, so a waiting warp sleeps instead of looping: a producer that
// runs ahead of its consumers for a whole GEMM otherwise issues a try_wait and a branch every few dozen
// cycles, and under a power cap those instructions cost clock.
__device__ __forceinline__ void mbar_wait(std::uint64_t* bar, std::uint32_t phase) {
  asm volatile(
      "{\n.reg .pred done;\n"
      "WAIT_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1, %2;\n"
      "@!done bra WAIT_%=;\n}\n" ::"r"(smem_u32(bar)),
      "r"(phase), "r"(10000000u)
      : "memory");
}

// The warpgroup index of the calling thread (threadIdx.x / 128) as a value the compiler knows is the
// same across the warp, so what derives from it (shared-memory offsets, wgmma descriptors) can live in
// uniform registers and be computed once per warp on the uniform datapath.
__device__ __forceinline__ int warpgroup_index() {
  return __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x / 128), 0);
}

// ---------------------------------------------------------------------------------------------
// Device: TMA (cp.async.bulk.tensor) loads
// ---------------------------------------------------------------------------------------------

// Loads the box at (c0 = column/innermost, c1 = row) into shared memory; completion is counted as
// bytes on `bar` (the issuing thread must have announced them with mbar_arrive_expect_tx).
__device__ __forceinline__ void tma_load_2d(void* dst, const CUtensorMap* map, std::uint64_t* bar, int c0, int c1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], [%2];\n" ::
          "r"(smem_u32(dst)),
      "l"(map), "r"(smem_u32(bar)), "r"(c0), "r"(c1)
      : "memory");
#endif
}

// As tma_load_2d, but the box is written to the same offset in every CTA of the cluster named in
// `cta_mask`, and each destination CTA's barrier (same offset) receives the byte count.
__device__ __forceinline__ void tma_load_2d_multicast(void* dst, const CUtensorMap* map, std::uint64_t* bar, int c0,
                                                      int c1, std::uint16_t cta_mask) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster"
      " [%0], [%1, {%3, %4}], [%2], %5;\n" ::"r"(smem_u32(dst)),
      "l"(map), "r"(smem_u32(bar)), "r"(c0), "r"(c1), "h"(cta_mask)
      : "memory");
#endif
}

// ---------------------------------------------------------------------------------------------
// Device: TMA stores (shared -> global), tracked as bulk groups of the issuing thread
// ---------------------------------------------------------------------------------------------
// The usual sequence: every writing thread stores its part of the box into shared memory, then
// fence_proxy_async() (its generic-proxy writes become visible to the TMA unit), a barrier over the
// writers, then one thread issues tma_store_2d(...) and bulk_commit(). Before the same shared memory is
// written again, that thread waits with bulk_wait_read<0>() (TMA has finished *reading* it; the global
// writes may still be in flight) and a barrier tells the writers. TMA drops the parts of a box outside
// the tensor, so edge tiles need no guards. Before the CTA exits: bulk_wait<0>().

// Stores the box at (c0 = column/innermost, c1 = row) from shared memory `src`.
__device__ __forceinline__ void tma_store_2d(const CUtensorMap* map, const void* src, int c0, int c1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%2, %3}], [%1];\n" ::"l"(map),
               "r"(smem_u32(src)), "r"(c0), "r"(c1)
               : "memory");
#endif
}
// Closes the bulk group of this thread's stores issued since the last commit.
__device__ __forceinline__ void bulk_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
#endif
}
// Waits until at most N of this thread's bulk groups are still reading their shared-memory source.
template <int N>
__device__ __forceinline__ void bulk_wait_read() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.wait_group.read %0;\n" ::"n"(N) : "memory");
#endif
}
// Waits until at most N of this thread's bulk groups are incomplete (global writes done).
template <int N>
__device__ __forceinline__ void bulk_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

// Pulls the 128-byte tensor map into the constant cache before the first TMA uses it.
__device__ __forceinline__ void tma_prefetch_descriptor(const CUtensorMap* map) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(map) : "memory");
#endif
}

// ---------------------------------------------------------------------------------------------
// Device: clusters
// ---------------------------------------------------------------------------------------------

__device__ __forceinline__ std::uint32_t cluster_ctarank() {
  std::uint32_t r = 0;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
#endif
  return r;
}

// Full cluster barrier (every thread of every CTA of the cluster), with release/acquire semantics.
__device__ __forceinline__ void cluster_sync() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
#endif
}

// ---------------------------------------------------------------------------------------------
// Device: register reallocation between warpgroups (sm_90a)
// ---------------------------------------------------------------------------------------------
// Takes effect only when the kernel has a register cap at entry (__launch_bounds__(threads, 1)) and
// each warpgroup's role is one branch of an if/else; the producer gives registers back, consumers take them.
template <int Regs>
__device__ __forceinline__ void setmaxnreg_dec() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(Regs));
#endif
}
template <int Regs>
__device__ __forceinline__ void setmaxnreg_inc() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(Regs));
#endif
}

// ---------------------------------------------------------------------------------------------
// Device: WGMMA (sm_90a)
// ---------------------------------------------------------------------------------------------

// Shared-memory matrix descriptor for a K-major tile written by TMA with the 128-byte swizzle
// (rows of 64 BF16, 8-row groups 1024 bytes apart). `p` must lie in a 1024-byte aligned tile
// (plus the 32-byte steps that select a K slice).
__device__ __forceinline__ std::uint64_t wgmma_desc_sw128(const void* p) {
  const std::uint64_t addr = smem_u32(p);
  std::uint64_t d = 0;
  d |= (addr & 0x3FFFF) >> 4;              // start address, bits 0-13
  d |= std::uint64_t(1) << 16;             // leading byte offset (unused with swizzled K-major)
  d |= std::uint64_t(1024 >> 4) << 32;     // stride byte offset: 8 rows x 128 bytes
  d |= std::uint64_t(1) << 62;             // layout: 128-byte swizzle
  return d;
}

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

// D[64 x 64] (+)= A[64 x 16] * B[16 x 64]; A and B from shared memory (K-major, 128B swizzle).
__device__ __forceinline__ void wgmma_m64n64k16(float (&d)[32], std::uint64_t desc_a, std::uint64_t desc_b, int scale_d) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17,"
      "%18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
      "}, %32, %33, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]),
        "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]),
        "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]),
        "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
#else
  (void)d; (void)desc_a; (void)desc_b; (void)scale_d;
  __trap();
#endif
}

// D[64 x 128] (+)= A[64 x 16] * B[16 x 128]; A and B from shared memory (K-major, 128B swizzle).
__device__ __forceinline__ void wgmma_m64n128k16(float (&d)[64], std::uint64_t desc_a, std::uint64_t desc_b, int scale_d) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17,"
      "%18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33,"
      "%34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49,"
      "%50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
      "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]),
        "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]),
        "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]),
        "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]),
        "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]),
        "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]),
        "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]),
        "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
#else
  (void)d; (void)desc_a; (void)desc_b; (void)scale_d;
  __trap();
#endif
}

// D[64 x 256] (+)= A[64 x 16] * B[16 x 256]; A and B from shared memory (K-major, 128B swizzle).
__device__ __forceinline__ void wgmma_m64n256k16(float (&d)[128], std::uint64_t desc_a, std::uint64_t desc_b, int scale_d) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17,"
      "%18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33,"
      "%34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49,"
      "%50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65,"
      "%66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81,"
      "%82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97,"
      "%98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110,"
      "%111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123,"
      "%124, %125, %126, %127"
      "}, %128, %129, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]),
        "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]),
        "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]),
        "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]),
        "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]),
        "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]),
        "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]),
        "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
        "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]),
        "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]),
        "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]),
        "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]),
        "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]),
        "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]),
        "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]),
        "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]),
        "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]),
        "+f"(d[127])
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
#else
  (void)d; (void)desc_a; (void)desc_b; (void)scale_d;
  __trap();
#endif
}

// Dispatch on N: one m64nNk16 step for the N the tile uses.
template <int N>
__device__ __forceinline__ void wgmma_m64k16(float (&d)[N / 2], std::uint64_t desc_a, std::uint64_t desc_b,
                                             int scale_d) {
  static_assert(N == 64 || N == 128 || N == 256, "wrappers exist for N = 64, 128, 256");
  if constexpr (N == 64) wgmma_m64n64k16(d, desc_a, desc_b, scale_d);
  else if constexpr (N == 128) wgmma_m64n128k16(d, desc_a, desc_b, scale_d);
  else wgmma_m64n256k16(d, desc_a, desc_b, scale_d);
}

// ---------------------------------------------------------------------------------------------
// Device: epilogue of a warpgroup's accumulator tile through shared memory and TMA stores
// ---------------------------------------------------------------------------------------------

// Barrier over `threads` threads (a multiple of 32) on hardware barrier `id` (1..15; 0 is __syncthreads).
__device__ __forceinline__ void named_barrier_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// Writes one warpgroup's m64nBN accumulator fragment (FP32, or already packed by pack_bf16) to C as BF16
// through TMA stores.
// The 64 x BN tile leaves in BN/64 boxes of 64 rows x 64 columns (8 KiB each, 128-byte swizzle: row r's
// 16-byte chunk c sits at c ^ (r % 8), so the fragment's 4-byte writes hit 32 distinct banks per warp).
// The boxes alternate between two 8 KiB slots of `epi` (16 KiB, 1024-byte aligned, owned by this
// warpgroup): before a slot is rewritten, the stores of the box before last (the previous tile's, at the
// first boxes) must have finished reading it; the stores themselves run on while the warpgroup goes back
// to its tensor cores. `map`: C as a row-major BF16 tensor map with 64 x 64 boxes, SWIZZLE_128B; TMA
// drops whatever falls outside M x N. `bar_id`: a named barrier private to this warpgroup. Thread 0 of
// the warpgroup issues (and so owns) every bulk group: it must call bulk_wait<0>() before the CTA exits.
// An m64nBN FP32 accumulator fragment as BF16 pairs: p[2j + h] = (acc[4j + 2h], acc[4j + 2h + 1]), the
// two adjacent columns 8j + 2(lane % 4) + {0, 1} of row 16 warp + lane / 4 + 8h. Half the registers,
// which is what lets a warpgroup keep a finished tile while its accumulator starts the next one.
template <int BN>
__device__ __forceinline__ void pack_bf16(const float (&acc)[BN / 2], std::uint32_t (&p)[BN / 4]) {
#pragma unroll
  for (int i = 0; i < BN / 4; ++i) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(acc[2 * i], acc[2 * i + 1]);
    p[i] = *reinterpret_cast<const std::uint32_t*>(&v);
  }
}

// Box b alone (columns 64b .. 64b+63 of the tile, slot b % 2): one step of epilogue_tma_store. `b` must be
// a constant once inlined (the fragment's registers need compile-time indices): a literal, an unrolled
// loop's index, or epilogue_tma_store_box_at's switch.
template <int BN>
__device__ __forceinline__ void epilogue_tma_store_box(const std::uint32_t (&p)[BN / 4], unsigned char* epi,
                                                       const CUtensorMap* map, int row0, int col0, int bar_id, int b) {
  static_assert(BN % 64 == 0, "the tile leaves in 64-column boxes");
  const int t = threadIdx.x % 128, warp = t / 32, lane = t % 32;
  unsigned char* slot = epi + (b & 1) * 8192;
  if (t == 0) bulk_wait_read<1>();  // the last group (the other slot) may still be reading
  named_barrier_sync(bar_id, 128);
#pragma unroll
  for (int jj = 0; jj < 8; ++jj) {
    const int j = 8 * b + jj;  // fragment column group: columns 8j .. 8j+7 of the tile
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = 16 * warp + lane / 4 + 8 * h;
      *reinterpret_cast<std::uint32_t*>(slot + r * 128 + ((jj ^ (r & 7)) << 4) + 4 * (lane % 4)) = p[2 * j + h];
    }
  }
  fence_proxy_async();  // this thread's writes, visible to the TMA unit ...
  named_barrier_sync(bar_id, 128);  // ... for every thread of the warpgroup
  if (t == 0) {
    tma_store_2d(map, slot, col0 + 64 * b, row0);
    bulk_commit();
  }
}

// The same with b known only at run time: a caller that spreads a tile's boxes over time (one box under
// each of the next tile's first K blocks), so that a box's slot has long been read by TMA when it comes round.
template <int BN>
__device__ __forceinline__ void epilogue_tma_store_box_at(const std::uint32_t (&p)[BN / 4], unsigned char* epi,
                                                          const CUtensorMap* map, int row0, int col0, int bar_id,
                                                          int b) {
  static_assert(BN == 128 || BN == 256, "two or four boxes");
  switch (b) {
    case 0: epilogue_tma_store_box<BN>(p, epi, map, row0, col0, bar_id, 0); break;
    case 1: epilogue_tma_store_box<BN>(p, epi, map, row0, col0, bar_id, 1); break;
    case 2: if constexpr (BN == 256) epilogue_tma_store_box<BN>(p, epi, map, row0, col0, bar_id, 2); break;
    default: if constexpr (BN == 256) epilogue_tma_store_box<BN>(p, epi, map, row0, col0, bar_id, 3); break;
  }
}

template <int BN>
__device__ __forceinline__ void epilogue_tma_store(const std::uint32_t (&p)[BN / 4], unsigned char* epi,
                                                   const CUtensorMap* map, int row0, int col0, int bar_id) {
#pragma unroll
  for (int b = 0; b < BN / 64; ++b) epilogue_tma_store_box<BN>(p, epi, map, row0, col0, bar_id, b);
}

template <int BN>
__device__ __forceinline__ void epilogue_tma_store(const float (&acc)[BN / 2], unsigned char* epi,
                                                   const CUtensorMap* map, int row0, int col0, int bar_id) {
  std::uint32_t p[BN / 4];
  pack_bf16<BN>(acc, p);
  epilogue_tma_store<BN>(p, epi, map, row0, col0, bar_id);
}

// ---------------------------------------------------------------------------------------------
// Device: stream-K hand-over of partial tiles (the schedule itself: aipe/stream_k.hpp)
// ---------------------------------------------------------------------------------------------

// Release / acquire flags at GPU scope between CTAs that are resident at the same time (a persistent
// grid no larger than the resident clusters).
__device__ __forceinline__ void flag_store_release(int* f, int v) {
  asm volatile("st.release.gpu.global.s32 [%0], %1;\n" ::"l"(f), "r"(v) : "memory");
}
__device__ __forceinline__ int flag_load_acquire(const int* f) {
  int v;
  asm volatile("ld.acquire.gpu.global.s32 %0, [%1];\n" : "=r"(v) : "l"(f) : "memory");
  return v;
}

// A warpgroup's FP32 accumulator fragment (R registers a thread) to and from a stream-K partial slot of
// R * 128 floats in global memory, as float4 [R / 4][128 threads]: every warp instruction moves 512
// contiguous bytes. Written once and read once, by different SMs: both go through L2 only (.cg).
// Handing over: every thread stores, the warpgroup meets at `bar_id`, thread 0 releases the flag; the
// reader's thread 0 acquires it (and clears it for the next launch), the warpgroup meets, every thread adds.
template <int R>
__device__ __forceinline__ void sk_partial_store(float* slot, int* flag, const float (&acc)[R], int bar_id) {
  const int t = threadIdx.x % 128;
  float4* p = reinterpret_cast<float4*>(slot);
#pragma unroll
  for (int j = 0; j < R / 4; ++j) __stcg(p + j * 128 + t, make_float4(acc[4 * j], acc[4 * j + 1], acc[4 * j + 2], acc[4 * j + 3]));
  named_barrier_sync(bar_id, 128);
  if (t == 0) flag_store_release(flag, 1);
}

template <int R>
__device__ __forceinline__ void sk_partial_add(const float* slot, int* flag, float (&acc)[R], int bar_id) {
  const int t = threadIdx.x % 128;
  if (t == 0) {
    while (flag_load_acquire(flag) == 0) {
    }
    *flag = 0;  // nobody else reads it in this launch; the next launch starts after this one ends
  }
  named_barrier_sync(bar_id, 128);
  static_assert(R % 32 == 0, "the slot is added eight float4 at a time");
  const float4* p = reinterpret_cast<const float4*>(slot);
  // Eight loads in flight at a time: the compiler would otherwise hoist all R / 4 of them (R registers)
  // above the adds, next to a live accumulator.
#pragma unroll
  for (int j0 = 0; j0 < R / 4; j0 += 8) {
    float4 v[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = __ldcg(p + (j0 + j) * 128 + t);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      acc[4 * (j0 + j)] += v[j].x;
      acc[4 * (j0 + j) + 1] += v[j].y;
      acc[4 * (j0 + j) + 2] += v[j].z;
      acc[4 * (j0 + j) + 3] += v[j].w;
    }
    asm volatile("" ::: "memory");  // the next eight loads stay below these adds
  }
}

#endif  // __CUDACC__

}  // namespace aipe::hopper
