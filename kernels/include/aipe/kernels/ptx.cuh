// PTX wrappers for the Hopper (sm_90 / sm_90a) building blocks every TMA + WGMMA kernel of aipe uses:
// shared-memory addresses, proxy fences, mbarriers, cp.async and cp.async.bulk, TMA (cp.async.bulk.tensor)
// loads, multicast loads, stores and descriptor prefetch, bulk groups, setmaxnreg, cluster helpers,
// named barriers, cache-hinted global loads and stores, and release/acquire flags.
//
// Device code only: no host runtime call and no host-only header, so the header can also be compiled at
// run time. Tensor maps are passed as `const void*` (the address of a CUtensorMap, __grid_constant__ or in
// global memory); their host side is aipe/kernels/tma.hpp.
//
// Every wrapper compiles to nothing (or traps, where a missing result would be wrong) below the
// architecture it needs, so the header is safe to include from code built for several targets.
#pragma once
#include <cstdint>

namespace aipe::kernels {

// ---------------------------------------------------------------------------------------------
// Addresses, fences, the warpgroup index
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

// The warpgroup index of the calling thread (threadIdx.x / 128) as a value the compiler knows is the
// same across the warp, so what derives from it (shared-memory offsets, wgmma descriptors) can live in
// uniform registers and be computed once per warp on the uniform datapath.
__device__ __forceinline__ int warpgroup_index() {
  return __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x / 128), 0);
}

// Barrier over `threads` threads (a multiple of 32) on hardware barrier `id` (1..15; 0 is __syncthreads).
__device__ __forceinline__ void named_barrier_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
// Arrives on named barrier `id` without waiting (a producer signalling `threads` waiters).
__device__ __forceinline__ void named_barrier_arrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// ---------------------------------------------------------------------------------------------
// mbarriers
// ---------------------------------------------------------------------------------------------

__device__ __forceinline__ void mbar_init(std::uint64_t* bar, std::uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(count) : "memory");
}

// Arrive (count 1) and tell the barrier that `bytes` more will land through TMA in this phase.
__device__ __forceinline__ void mbar_arrive_expect_tx(std::uint64_t* bar, std::uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(bytes)
               : "memory");
}

// Announce `bytes` more for this phase without arriving (a second issuer of the same stage).
__device__ __forceinline__ void mbar_expect_tx(std::uint64_t* bar, std::uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(bytes)
               : "memory");
#endif
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

// ---------------------------------------------------------------------------------------------
// cp.async (sm_80+): 16-byte global -> shared copies tracked per thread in commit groups
// ---------------------------------------------------------------------------------------------

// Copies 16 bytes, or zero-fills the destination when `valid` is false (the source is then not read):
// how a tile loader handles the edges of a matrix without a branch around the copy.
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, bool valid = true) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(smem)), "l"(gmem),
               "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most N of this thread's cp.async groups are pending.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// ---------------------------------------------------------------------------------------------
// cp.async.bulk (sm_90): contiguous bulk copies, completion as bytes on an mbarrier
// ---------------------------------------------------------------------------------------------

// Copies `bytes` (a multiple of 16; both addresses 16-byte aligned) from global memory into shared memory;
// the issuing thread must have announced them on `bar` (mbar_arrive_expect_tx).
__device__ __forceinline__ void bulk_load(void* smem, const void* gmem, std::uint32_t bytes, std::uint64_t* bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
                   smem_u32(smem)),
               "l"(gmem), "r"(bytes), "r"(smem_u32(bar))
               : "memory");
#endif
}
// Copies `bytes` from shared memory to global memory, tracked as a bulk group of the issuing thread.
__device__ __forceinline__ void bulk_store(void* gmem, const void* smem, std::uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;\n" ::"l"(gmem), "r"(smem_u32(smem)),
               "r"(bytes)
               : "memory");
#endif
}

// ---------------------------------------------------------------------------------------------
// TMA (cp.async.bulk.tensor) loads, rank 1..5
// ---------------------------------------------------------------------------------------------
// Coordinates are innermost first (c0 = the contiguous dimension), in elements. Completion is counted as
// bytes on `bar` (the issuing thread must have announced them with mbar_arrive_expect_tx). Boxes reaching
// outside the tensor arrive with the out-of-bounds elements filled (zeros unless the map says NaN).

__device__ __forceinline__ void tma_load_1d(void* dst, const void* map, std::uint64_t* bar, int c0) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "cp.async.bulk.tensor.1d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3}], [%2];\n" ::"r"(
          smem_u32(dst)),
      "l"(map), "r"(smem_u32(bar)), "r"(c0)
      : "memory");
#endif
}

// Loads the box at (c0 = column/innermost, c1 = row) into shared memory.
__device__ __forceinline__ void tma_load_2d(void* dst, const void* map, std::uint64_t* bar, int c0, int c1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], [%2];\n" ::
          "r"(smem_u32(dst)),
      "l"(map), "r"(smem_u32(bar)), "r"(c0), "r"(c1)
      : "memory");
#endif
}

__device__ __forceinline__ void tma_load_3d(void* dst, const void* map, std::uint64_t* bar, int c0, int c1, int c2) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5}], "
      "[%2];\n" ::"r"(smem_u32(dst)),
      "l"(map), "r"(smem_u32(bar)), "r"(c0), "r"(c1), "r"(c2)
      : "memory");
#endif
}

__device__ __forceinline__ void tma_load_4d(void* dst, const void* map, std::uint64_t* bar, int c0, int c1, int c2,
                                            int c3) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5, %6}], "
      "[%2];\n" ::"r"(smem_u32(dst)),
      "l"(map), "r"(smem_u32(bar)), "r"(c0), "r"(c1), "r"(c2), "r"(c3)
      : "memory");
#endif
}

// As tma_load_2d, but the box is written to the same offset in every CTA of the cluster named in
// `cta_mask`, and each destination CTA's barrier (same offset) receives the byte count.
__device__ __forceinline__ void tma_load_2d_multicast(void* dst, const void* map, std::uint64_t* bar, int c0, int c1,
                                                      std::uint16_t cta_mask) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster"
      " [%0], [%1, {%3, %4}], [%2], %5;\n" ::"r"(smem_u32(dst)),
      "l"(map), "r"(smem_u32(bar)), "r"(c0), "r"(c1), "h"(cta_mask)
      : "memory");
#endif
}

// Pulls the 128-byte tensor map into the constant cache before the first TMA uses it.
__device__ __forceinline__ void tma_prefetch_descriptor(const void* map) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(map) : "memory");
#endif
}

// Pulls the box at (c0, c1) into L2 without writing shared memory.
__device__ __forceinline__ void tma_prefetch_2d(const void* map, int c0, int c1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.prefetch.tensor.2d.L2.global [%0, {%1, %2}];\n" ::"l"(map), "r"(c0), "r"(c1)
               : "memory");
#endif
}

// ---------------------------------------------------------------------------------------------
// Programmatic dependent launch (PDL)
// ---------------------------------------------------------------------------------------------
// A kernel launched with the programmatic-stream-serialization attribute (aipe/kernels/launch.cuh: launch_pdl)
// may start while the kernel before it in the stream is still running. Before it reads anything that kernel
// wrote, or writes anything that kernel reads, it calls grid_dependency_wait(): the wait returns once every
// prerequisite grid has completed and its memory operations are visible. Only work that touches no such memory
// (barrier set-up, tensor-map prefetch, L2 prefetch of operands no earlier kernel writes) goes before it.
// launch_dependents() lets the next PDL kernel be scheduled onto SMs as this one's CTAs free them; it is a hint
// on timing, never on memory (the dependent still waits for this grid's completion).
// In a kernel launched without the attribute both are no-ops in effect (nothing is in flight before it).

__device__ __forceinline__ void grid_dependency_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// The first statement of a PDL kernel with nothing to do before its inputs are ready: wait for the kernel
// before it, then let the next one be scheduled (its launch and prologue overlap this kernel's work).
__device__ __forceinline__ void pdl_begin() {
  grid_dependency_wait();
  launch_dependents();
}

// ---------------------------------------------------------------------------------------------
// TMA stores (shared -> global), tracked as bulk groups of the issuing thread
// ---------------------------------------------------------------------------------------------
// The usual sequence: every writing thread stores its part of the box into shared memory, then
// fence_proxy_async() (its generic-proxy writes become visible to the TMA unit), a barrier over the
// writers, then one thread issues tma_store_2d(...) and bulk_commit(). Before the same shared memory is
// written again, that thread waits with bulk_wait_read<0>() (TMA has finished *reading* it; the global
// writes may still be in flight) and a barrier tells the writers. TMA drops the parts of a box outside
// the tensor, so edge tiles need no guards. Before the CTA exits: bulk_wait<0>().

// Stores the box at (c0 = column/innermost, c1 = row) from shared memory `src`.
__device__ __forceinline__ void tma_store_2d(const void* map, const void* src, int c0, int c1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%2, %3}], [%1];\n" ::"l"(map),
               "r"(smem_u32(src)), "r"(c0), "r"(c1)
               : "memory");
#endif
}
__device__ __forceinline__ void tma_store_3d(const void* map, const void* src, int c0, int c1, int c2) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.tensor.3d.global.shared::cta.bulk_group [%0, {%2, %3, %4}], [%1];\n" ::"l"(map),
               "r"(smem_u32(src)), "r"(c0), "r"(c1), "r"(c2)
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

// ---------------------------------------------------------------------------------------------
// Clusters
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

// The address of `p` (a shared-memory location of this CTA) in CTA `cta` of the cluster, for generic
// loads and stores into a peer's shared memory (distributed shared memory).
template <class T>
__device__ __forceinline__ T* map_shared_rank(T* p, std::uint32_t cta) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  std::uint64_t out;
  asm volatile("mapa.u64 %0, %1, %2;\n" : "=l"(out) : "l"(p), "r"(cta));
  return reinterpret_cast<T*>(out);
#else
  (void)cta;
  return p;
#endif
}

// ---------------------------------------------------------------------------------------------
// Register reallocation between warpgroups (sm_90a)
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
// Cache-hinted global loads and stores
// ---------------------------------------------------------------------------------------------
// ld_stream: read-only path, no L1 allocation (data read once: a copy, a reduction's input).
// st_stream: evict-first (.cs) store of data nobody reads back soon.
// ld_ordered / st_ordered: plain weak accesses as volatile asm, so the compiler keeps them in program
// order (a rung whose point is the order of its memory accesses).
__device__ __forceinline__ float4 ld_stream(const float4* p) {
  float4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.f32 {%0,%1,%2,%3}, [%4];"
               : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
               : "l"(p));
  return v;
}
__device__ __forceinline__ void st_stream(float4* p, float4 v) {
  asm volatile("st.global.cs.v4.f32 [%0], {%1,%2,%3,%4};" ::"l"(p), "f"(v.x), "f"(v.y), "f"(v.z), "f"(v.w)
               : "memory");
}
__device__ __forceinline__ float4 ld_ordered(const float4* p) {
  float4 v;
  asm volatile("ld.global.v4.f32 {%0,%1,%2,%3}, [%4];" : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "l"(p));
  return v;
}
__device__ __forceinline__ void st_ordered(float4* p, float4 v) {
  asm volatile("st.global.v4.f32 [%0], {%1,%2,%3,%4};" ::"l"(p), "f"(v.x), "f"(v.y), "f"(v.z), "f"(v.w) : "memory");
}

// ---------------------------------------------------------------------------------------------
// Release / acquire flags at GPU scope
// ---------------------------------------------------------------------------------------------
// Between CTAs that are resident at the same time (a persistent grid no larger than the resident clusters).
__device__ __forceinline__ void flag_store_release(int* f, int v) {
  asm volatile("st.release.gpu.global.s32 [%0], %1;\n" ::"l"(f), "r"(v) : "memory");
}
__device__ __forceinline__ int flag_load_acquire(const int* f) {
  int v;
  asm volatile("ld.acquire.gpu.global.s32 %0, [%1];\n" : "=r"(v) : "l"(f) : "memory");
  return v;
}

}  // namespace aipe::kernels
