// The warp-specialized FP8 GEMM (E4M3 x E4M3 -> FP32 -> BF16) of the ch10 FP8 ladders
// (examples/ch10_tensor_cores/gemm_fp8*.cu), built from the kernels/ pieces: the stage ring
// (pipeline.cuh), the tile order and the stream-K schedule (scheduler.hpp, stream_k.cuh), the wgmma
// instructions (wgmma.cuh), the epilogues (epilogue.cuh) and the tensor maps (tma.hpp).
//
// Layouts (the "TN" GEMM FP8 tensor cores require on Hopper: both operands K-major):
//   A  M x K row-major E4M3 (activations)        C = M x N row-major BF16
//   B  N x K row-major E4M3 (weights; "column-major K x N")
// Scales, two modes:
//   per-tensor : one float for A and one for B; C = sa * sb * (A8 . B8^T)
//   block      : DeepSeek-V3 recipe. sa[kb * M + m]: one float per row and per 128-wide K block of A
//                (1x128); sb[nb * ldsb + kb]: one float per 128x128 block of B. In the main loop each
//                128-deep K block is multiplied into a fresh FP32 register tile, then "promoted":
//                acc += tmp * sa(m, kb) * sb(nb, kb). The layouts are the ones cuBLASLt's
//                VEC128_32F / BLK128x128_32F modes read, so the same buffers feed both.
// Tensor maps (aipe::kernels::matrix_map): A as M x K bytes (CU_TENSOR_MAP_DATA_TYPE_UINT8) in 128 x 128
// boxes; B as N x K bytes in BN x 128 boxes (BN / 2 rows for the CTA pairs, which multicast halves); C as
// M x N BF16 in 64 x 64 boxes for the TMA-store epilogues (N % 8 == 0). All with the 128-byte swizzle.
//
// The kernel template is instantiated only where a launch names it (launch_gemm_ws below).
#pragma once
#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "aipe/check.hpp"
#include "aipe/kernels/epilogue.cuh"
#include "aipe/kernels/launch.cuh"
#include "aipe/kernels/pipeline.cuh"
#include "aipe/kernels/ptx.cuh"
#include "aipe/kernels/scheduler.hpp"
#include "aipe/kernels/stream_k.cuh"
#include "aipe/kernels/wgmma.cuh"

namespace aipe::kernels::fp8 {

enum class Scaling { tensor, block };

struct GemmArgs {
  int M = 0, N = 0, K = 0;
  __nv_bfloat16* C = nullptr;  // M x N row-major
  const float* sa = nullptr;   // tensor: sa[0]; block: sa[kb * M + m]
  const float* sb = nullptr;   // tensor: sb[0]; block: sb[nb * ldsb + kb]
  int ldsb = 0;
  int group_m = 0;             // tile order: 0 = row by row (n fastest); G > 0 = bands of G tile rows
  // K order (data-parallel kernels whose mainloop takes any K order: TensorScaled, BlockScaledWide; the
  // others ignore it): false = every unit walks K forward; true = the
  // K serpentine: a CTA's odd units (wave 1, 3, ... of a persistent grid) walk K backward, so a wave starts
  // on the K blocks the wave before it read last, which are still in L2 (the A panels a band shares).
  bool k_serpentine = false;
  // Stream-K (SK kernels only): one partial slot of 64 x BN floats and one flag (zero at rest) per
  // consumer warpgroup of every CTA of the grid, indexed (blockIdx.x * kConsumers + consumer).
  float* partials = nullptr;
  int* flags = nullptr;
};

// Tile shape and pipeline depth. BM x BN x BK = 128 x BN x 128: BK = 128 E4M3 = one 128-byte swizzle
// row, and one block-scale K block. Two consumer warpgroups own 64 rows each (m64nBNk32 wgmma), one
// producer warpgroup issues TMA.
template <int BN, Scaling S>
struct GemmConfig {
  static constexpr int BM = 128, BK = 128;
  static constexpr int kConsumers = 2;
  static constexpr int kThreads = 128 * (kConsumers + 1);
  static constexpr int kABytes = BM * BK, kBBytes = BN * BK;
  static constexpr int kStageBytes = kABytes + kBBytes;
  // Epilogues through shared memory (StagedStore, TmaStore*): each consumer warpgroup owns 16 KiB
  // (64 rows x 128 BF16 columns; for TMA two 8 KiB slots of 64 x 64 boxes), after the stages, 1024-aligned.
  static constexpr int kEpiBytesPerWG = 64 * 128 * 2;
  // As many stages as fit in the 227 KiB a CTA may opt into beside the epilogues' staging, the barriers
  // and the alignment slack: 6 at BN 128, 4 at BN 192 and 256.
  static constexpr int kStages = (227 * 1024 - 1024 - 256 - kConsumers * kEpiBytesPerWG) / kStageBytes;
  static constexpr int kSmemBytes = kStages * kStageBytes + 2 * kStages * 8 + 1024;  // + barriers + alignment
  static constexpr int kSmemBytesStaged = kSmemBytes + kConsumers * kEpiBytesPerWG;
};

#if defined(__CUDACC__)

// ---------------------------------------------------------------------------------------------
// Mainloop policies: how a consumer warpgroup turns a unit's K blocks into its FP32 tile
// ---------------------------------------------------------------------------------------------
// Each has BN (tile columns), kScaling, kKRanges (it computes K blocks [w.kb0, w.kb1) of a unit, so the
// stream-K schedule may cut a unit between workers; the others always run a unit's whole K), kAnyKOrder
// (it takes the K blocks in the order the ring delivers them, ConsumerRing::k_backward, so the producer
// may walk K backward: the K serpentine), and
//   template <class Ring, class Hook>
//   static void run(Ring& c, const GemmArgs& args, const TileWork& w, int nk, int tn, int row0,
//                   float (&acc)[BN / 2], Hook&& during_k_block)
// Ring (ConsumerRing below): the ring and its state, this warpgroup's stage-0 descriptors, its lane and the
// release of a slot. row0: the thread's first fragment row (the block scales' rows); tn: the tile column;
// nk: K blocks of the whole problem. during_k_block: the epilogue's hook, called once per K block after its
// wgmma are issued (TensorScaled; the block-scaled mainloops take no overlapped epilogue).

// The consumer side of the ring, as the mainloops see it.
template <int Stages, int CM>
struct ConsumerRing {
  const Pipeline<Stages>& pipe;
  PipelineState<Stages>& st;
  std::uint64_t desc_a0, desc_b0;  // stage 0's; slot s adds its offset in the 16-byte units of the address field
  int lane;
  // The order in which the current unit's K blocks arrive (set by the kernel per unit): false = kb0, kb0 + 1,
  // ...; true = the K serpentine's backward walk, K block nk - 1 - kb in the slot of the kb-th. Only the
  // kAnyKOrder mainloops are ever handed a backward unit.
  bool k_backward = false;
  // The K block held by the slot of a unit's kb-th (kb0 <= kb < kb1, in arrival order) of nk.
  __device__ __forceinline__ int k_block(int kb, int nk) const { return k_backward ? nk - 1 - kb : kb; }
  // A slot goes back to the producer of every CTA that received data into it.
  __device__ __forceinline__ void release(int slot) const { pipe.template consumer_release<CM>(slot); }
};

// Per-tensor scales: every wgmma of the unit into one accumulator, one K block's group kept in flight (its
// slot released one K block later), the scales applied once at the end. Works on K ranges (stream-K pieces).
template <int BN_>
struct TensorScaled {
  static constexpr int BN = BN_;
  static constexpr Scaling kScaling = Scaling::tensor;
  static constexpr bool kKRanges = true, kAnyKOrder = true;  // one scale for all K: any range, any order
  template <class Ring, class Hook>
  __device__ __forceinline__ static void run(Ring& c, const GemmArgs& args, const TileWork& w, int nk, int tn, int row0,
                                             float (&acc)[BN / 2], Hook&& during_k_block) {
    using Cfg = GemmConfig<BN, kScaling>;
    constexpr int BK = Cfg::BK, R = BN / 2;
    (void)nk; (void)tn; (void)row0;
    int prev = -1;
    for (int kb = w.kb0; kb < w.kb1; ++kb) {
      c.pipe.consumer_wait(c.st);
      const std::uint64_t da = c.desc_a0 + static_cast<std::uint32_t>(c.st.index * (Cfg::kABytes >> 4));
      const std::uint64_t db = c.desc_b0 + static_cast<std::uint32_t>(c.st.index * (Cfg::kBBytes >> 4));
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < BK / 32; ++kk) {
        wgmma_ss<BN, MmaType::e4m3>(acc, da + 2 * kk, db + 2 * kk, ((kb - w.kb0) | kk) != 0);
      }
      wgmma_commit();
      // The epilogue's hook: TmaStoreOverlapped sends one box of the previous tile here, under this K block's
      // wgmma; the other epilogues do nothing.
      during_k_block();
      // Keep one K block of wgmma in flight; the one before it is done, so its slot goes back.
      wgmma_wait<1>();
      if (prev >= 0 && c.lane == 0) c.release(prev);
      prev = c.st.index;
      c.st.advance();
    }
    wgmma_wait<0>();
    fence_regs(acc);
    if (c.lane == 0) c.release(prev);
    const float s = args.sa[0] * args.sb[0];
#pragma unroll
    for (int i = 0; i < R; ++i) acc[i] *= s;
  }
};

// Block scales (1x128 activations, 128x128 weights) on 128x128 tiles: each K block's four wgmma into a fresh
// partial tile, wait for it, release the slot, promote (acc += part * sa * sb). The scale loads are issued
// before the wait so their latency hides behind it.
struct BlockScaled {
  static constexpr int BN = 128;
  static constexpr Scaling kScaling = Scaling::block;
  static constexpr bool kKRanges = false, kAnyKOrder = false;
  template <class Ring, class Hook>
  __device__ __forceinline__ static void run(Ring& c, const GemmArgs& args, const TileWork& w, int nk, int tn, int row0,
                                             float (&acc)[BN / 2], Hook&&) {
    using Cfg = GemmConfig<BN, kScaling>;
    constexpr int BK = Cfg::BK, R = BN / 2;
    const int M = args.M;
    (void)w;
    float part[R];
#pragma unroll
    for (int i = 0; i < R; ++i) acc[i] = 0.f;
    const bool in0 = row0 < M, in1 = row0 + 8 < M;
    for (int kb = 0; kb < nk; ++kb) {
      // Scale loads issued before the wait so their latency hides behind it.
      const float sa0 = in0 ? __ldg(args.sa + std::size_t(kb) * M + row0) : 0.f;
      const float sa1 = in1 ? __ldg(args.sa + std::size_t(kb) * M + row0 + 8) : 0.f;
      const float sbv = __ldg(args.sb + std::size_t(tn) * args.ldsb + kb);  // BN == 128: tile column = block
      c.pipe.consumer_wait(c.st);
      const std::uint64_t da = c.desc_a0 + static_cast<std::uint32_t>(c.st.index * (Cfg::kABytes >> 4));
      const std::uint64_t db = c.desc_b0 + static_cast<std::uint32_t>(c.st.index * (Cfg::kBBytes >> 4));
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < BK / 32; ++kk) {
        wgmma_ss<BN, MmaType::e4m3>(part, da + 2 * kk, db + 2 * kk, kk != 0);
      }
      wgmma_commit();
      wgmma_wait<0>();
      fence_regs(part);
      if (c.lane == 0) c.release(c.st.index);
      c.st.advance();
      // Promotion: this K block's 128-term partial sums join the FP32 accumulator with their scales.
      const float s0 = sa0 * sbv, s1 = sa1 * sbv;
#pragma unroll
      for (int i = 0; i < R; ++i) acc[i] = fmaf(part[i], (i & 2) ? s1 : s0, acc[i]);
    }
  }
};

// Block scales, pipelined promotion: two partial tiles alternate, so K block kb+1's wgmma group is already
// queued on the tensor cores while the CUDA cores promote K block kb; without it (BlockScaled) the warpgroup
// waits for each group (wait_group 0) and the tensor cores idle while it promotes.
struct BlockScaledPipelined {
  static constexpr int BN = 128;
  static constexpr Scaling kScaling = Scaling::block;
  static constexpr bool kKRanges = false, kAnyKOrder = false;
  template <class Ring, class Hook>
  __device__ __forceinline__ static void run(Ring& c, const GemmArgs& args, const TileWork& w, int nk, int tn, int row0,
                                             float (&acc)[BN / 2], Hook&&) {
    using Cfg = GemmConfig<BN, kScaling>;
    constexpr int BK = Cfg::BK, R = BN / 2;
    const int M = args.M;
    (void)w;
    // acc + two partial tiles: 3 * R = 192 registers at BN = 128.
    static_assert(BN == 128, "block-scaled tiles are one 128-wide weight block");
    float part0[R], part1[R];
#pragma unroll
    for (int i = 0; i < R; ++i) acc[i] = 0.f;
    const bool in0 = row0 < M, in1 = row0 + 8 < M;
    auto rst = c.st;  // slot of the oldest group in flight: released once it is done
    // Issues K block kb's four wgmma into `p` (waiting for its slot first) as one group.
    auto issue = [&](float (&p)[R]) {
      c.pipe.consumer_wait(c.st);
      const std::uint64_t da = c.desc_a0 + static_cast<std::uint32_t>(c.st.index * (Cfg::kABytes >> 4));
      const std::uint64_t db = c.desc_b0 + static_cast<std::uint32_t>(c.st.index * (Cfg::kBBytes >> 4));
      fence_regs(p);
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < BK / 32; ++kk) wgmma_ss<128, MmaType::e4m3>(p, da + 2 * kk, db + 2 * kk, kk != 0);
      wgmma_commit();
      fence_regs(p);
      c.st.advance();
    };
    // K block kb's two row scales times its weight scale, loaded one K block ahead (into n0, n1, nb) so
    // that the load latency hides behind a whole K block of wgmma.
    float n0 = 0.f, n1 = 0.f, nbv = 0.f;
    auto prefetch = [&](int kb) {
      if (kb >= nk) return;
      nbv = __ldg(args.sb + std::size_t(tn) * args.ldsb + kb);
      n0 = in0 ? __ldg(args.sa + std::size_t(kb) * M + row0) : 0.f;
      n1 = in1 ? __ldg(args.sa + std::size_t(kb) * M + row0 + 8) : 0.f;
    };
    auto scales = [&](int kb, float& s0, float& s1) {
      s0 = n0 * nbv;
      s1 = n1 * nbv;
      prefetch(kb + 1);
    };
    prefetch(0);
    // After the wait for its group: the slot goes back, the partial tile joins the accumulator.
    auto promote = [&](float (&p)[R], float s0, float s1) {
      fence_regs(p);
      if (c.lane == 0) c.release(rst.index);
      rst.advance();
#pragma unroll
      for (int i = 0; i < R; ++i) acc[i] = fmaf(p[i], (i & 2) ? s1 : s0, acc[i]);
    };
    float s0, s1;
    int kb = 0;
    if (nk > 0) {
      issue(part0);
      for (; kb + 2 < nk; kb += 2) {  // K blocks kb+1 and kb+2 exist: both partial tiles stay busy
        issue(part1);
        scales(kb, s0, s1);
        wgmma_wait<1>();  // block kb is done; kb+1 stays on the tensor cores while kb is promoted
        promote(part0, s0, s1);
        issue(part0);
        scales(kb + 1, s0, s1);
        wgmma_wait<1>();
        promote(part1, s0, s1);
      }
      if (kb + 1 < nk) {  // two K blocks left
        issue(part1);
        scales(kb, s0, s1);
        wgmma_wait<1>();
        promote(part0, s0, s1);
        scales(kb + 1, s0, s1);
        wgmma_wait<0>();
        promote(part1, s0, s1);
      } else {
        scales(kb, s0, s1);
        wgmma_wait<0>();
        promote(part0, s0, s1);
      }
    }
  }
};

// Block scales on 128x256 tiles: two 128-wide weight blocks per tile, each K block multiplied and promoted
// one 128-column half at a time. Each K block is promoted with the scales of the K block its slot holds, and
// the promoted sums are plain FP32: a unit's K range may be any [kb0, kb1) (a stream-K piece; the pieces'
// FP32 tiles are added by the finisher) and its K blocks may come in either order (the K serpentine).
struct BlockScaledWide {
  static constexpr int BN = 256;
  static constexpr Scaling kScaling = Scaling::block;
  static constexpr bool kKRanges = true, kAnyKOrder = true;
  template <class Ring, class Hook>
  __device__ __forceinline__ static void run(Ring& c, const GemmArgs& args, const TileWork& w, int nk, int tn, int row0,
                                             float (&acc)[BN / 2], Hook&&) {
    using Cfg = GemmConfig<BN, kScaling>;
    constexpr int BK = Cfg::BK, R = BN / 2;
    const int M = args.M, N = args.N;
    // Block scales on a 128x256 tile: the tile spans two 128-wide weight blocks, so each K block is
    // multiplied and promoted one 128-column half at a time (m64n128k32 into one 64-register partial tile,
    // then into acc[0..63] or acc[64..127]: the m64n256 fragment's first 16 column groups are the first
    // half). acc 128 + partial 64 registers. Twice the columns of the 128x128 rungs per A byte loaded.
    float part[64];
#pragma unroll
    for (int i = 0; i < R; ++i) acc[i] = 0.f;
    const bool in0 = row0 < M, in1 = row0 + 8 < M;
    const int nb_count = (N + 127) / 128;
    const bool hi_exists = 2 * tn + 1 < nb_count;
    // The four scales of a K block are loaded one K block ahead: a global load's latency (an L2 hit is
    // several hundred cycles) then hides behind a whole K block of wgmma instead of stalling the promotion.
    float nsa0 = 0.f, nsa1 = 0.f, nsb_lo = 0.f, nsb_hi = 0.f;
    auto load_scales = [&](int kb) {
      nsa0 = in0 ? __ldg(args.sa + std::size_t(kb) * M + row0) : 0.f;
      nsa1 = in1 ? __ldg(args.sa + std::size_t(kb) * M + row0 + 8) : 0.f;
      nsb_lo = __ldg(args.sb + std::size_t(2 * tn) * args.ldsb + kb);
      nsb_hi = hi_exists ? __ldg(args.sb + std::size_t(2 * tn + 1) * args.ldsb + kb) : 0.f;
    };
    // kb counts this unit's K blocks in arrival order; c.k_block(kb, nk) is the K block in the slot.
    if (w.kb0 < w.kb1) load_scales(c.k_block(w.kb0, nk));
    for (int kb = w.kb0; kb < w.kb1; ++kb) {
      const float sa0 = nsa0, sa1 = nsa1, sb_lo = nsb_lo, sb_hi = nsb_hi;
      if (kb + 1 < w.kb1) load_scales(c.k_block(kb + 1, nk));
      c.pipe.consumer_wait(c.st);
      const std::uint64_t da = c.desc_a0 + static_cast<std::uint32_t>(c.st.index * (Cfg::kABytes >> 4));
      const std::uint64_t db = c.desc_b0 + static_cast<std::uint32_t>(c.st.index * (Cfg::kBBytes >> 4));
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        fence_regs(part);
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < BK / 32; ++kk)  // B rows 128h.. of the slot: +128 rows x 128 B = 16 KiB
          wgmma_ss<128, MmaType::e4m3>(part, da + 2 * kk, db + h * (16384 >> 4) + 2 * kk, kk != 0);
        wgmma_commit();
        wgmma_wait<0>();
        fence_regs(part);
        if (h == 1 && c.lane == 0) c.release(c.st.index);
        const float sb = h ? sb_hi : sb_lo, s0 = sa0 * sb, s1 = sa1 * sb;
#pragma unroll
        for (int i = 0; i < 64; ++i) acc[64 * h + i] = fmaf(part[i], (i & 2) ? s1 : s0, acc[64 * h + i]);
      }
      c.st.advance();
    }
  }
};

// Block scales on 128x192 tiles, a width that is not a power of two (DeepGEMM picks its BLOCK_N among such
// widths to balance the waves): a tile spans one and a half 128-wide weight blocks, the second starting at
// tile column 128 when the tile starts on a block boundary (even tn) and at column 64 otherwise (odd tn).
// Each K block is one m64n192k32 chain into one partial tile, one wgmma wait, then promoted with the weight
// scale of each 8-column group's block (BlockScaledWide waits twice per K block, once per 128-column half).
// acc 96 + partial 96 registers. K ranges and either K order, as BlockScaledWide.
struct BlockScaled192 {
  static constexpr int BN = 192;
  static constexpr Scaling kScaling = Scaling::block;
  static constexpr bool kKRanges = true, kAnyKOrder = true;
  template <class Ring, class Hook>
  __device__ __forceinline__ static void run(Ring& c, const GemmArgs& args, const TileWork& w, int nk, int tn, int row0,
                                             float (&acc)[BN / 2], Hook&&) {
    using Cfg = GemmConfig<BN, kScaling>;
    constexpr int BK = Cfg::BK, R = BN / 2;
    static_assert(BN == 192, "the column groups below split at 64 and 128: one and a half weight blocks");
    const int M = args.M, N = args.N;
    float part[R];
#pragma unroll
    for (int i = 0; i < R; ++i) acc[i] = 0.f;
    const bool in0 = row0 < M, in1 = row0 + 8 < M;
    const int col0 = tn * BN, nb_lo = col0 / 128;
    const bool aligned = col0 % 128 == 0;  // columns 0..127 in block nb_lo; else 0..63 (and 64.. in nb_lo + 1)
    const bool hi_exists = nb_lo + 1 < (N + 127) / 128;
    // The four scales of a K block, loaded one K block ahead (as BlockScaledWide).
    float nsa0 = 0.f, nsa1 = 0.f, nsb_lo = 0.f, nsb_hi = 0.f;
    auto load_scales = [&](int kb) {
      nsa0 = in0 ? __ldg(args.sa + std::size_t(kb) * M + row0) : 0.f;
      nsa1 = in1 ? __ldg(args.sa + std::size_t(kb) * M + row0 + 8) : 0.f;
      nsb_lo = __ldg(args.sb + std::size_t(nb_lo) * args.ldsb + kb);
      nsb_hi = hi_exists ? __ldg(args.sb + std::size_t(nb_lo + 1) * args.ldsb + kb) : 0.f;
    };
    if (w.kb0 < w.kb1) load_scales(c.k_block(w.kb0, nk));
    for (int kb = w.kb0; kb < w.kb1; ++kb) {
      const float sa0 = nsa0, sa1 = nsa1, sb_lo = nsb_lo, sb_hi = nsb_hi;
      if (kb + 1 < w.kb1) load_scales(c.k_block(kb + 1, nk));
      c.pipe.consumer_wait(c.st);
      const std::uint64_t da = c.desc_a0 + static_cast<std::uint32_t>(c.st.index * (Cfg::kABytes >> 4));
      const std::uint64_t db = c.desc_b0 + static_cast<std::uint32_t>(c.st.index * (Cfg::kBBytes >> 4));
      fence_regs(part);
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < BK / 32; ++kk) wgmma_ss<BN, MmaType::e4m3>(part, da + 2 * kk, db + 2 * kk, kk != 0);
      wgmma_commit();
      wgmma_wait<0>();
      fence_regs(part);
      if (c.lane == 0) c.release(c.st.index);
      c.st.advance();
      const float lo0 = sa0 * sb_lo, lo1 = sa1 * sb_lo, hi0 = sa0 * sb_hi, hi1 = sa1 * sb_hi;
      // Column group j (columns 8j .. 8j+7: d[4j .. 4j+3]) lies in one weight block: the first 8 groups in
      // nb_lo, the last 8 in nb_lo + 1, the middle 8 in nb_lo exactly when the tile starts on a block boundary.
#pragma unroll
      for (int j = 0; j < R / 4; ++j) {
        const bool lo = j < 8 || (j < 16 && aligned);
        const float s0 = lo ? lo0 : hi0, s1 = lo ? lo1 : hi1;
        acc[4 * j] = fmaf(part[4 * j], s0, acc[4 * j]);
        acc[4 * j + 1] = fmaf(part[4 * j + 1], s0, acc[4 * j + 1]);
        acc[4 * j + 2] = fmaf(part[4 * j + 2], s1, acc[4 * j + 2]);
        acc[4 * j + 3] = fmaf(part[4 * j + 3], s1, acc[4 * j + 3]);
      }
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Epilogue policies: how a consumer warpgroup's finished tile reaches C (BF16)
// ---------------------------------------------------------------------------------------------
// Each has kSmem (it needs 16 KiB of shared memory per consumer warpgroup after the stages), kTmaStore (it
// reads tmap_c), and a per-warpgroup Store<BN> with
//   Store(unsigned char* epi, const CUtensorMap* map, int cw)
//   void during_k_block()                   the mainloop's hook (TmaStoreOverlapped only)
//   void tile(acc, args, row0, col0)        the tile whose 64 x BN block of C starts at (row0, col0)
//   void drain()                            after the last tile (its stores are out before the CTA exits)
//
//   DirectStore         BF16 pairs straight from the accumulator fragment (store_fragment)
//   StagedStore         registers -> shared memory -> 16-byte stores of whole 256-byte row segments by the same
//                       threads (16-byte chunks XOR-swizzled by row: the 4-byte writes and the 16-byte reads are
//                       bank-conflict free)
//   TmaStore            registers -> shared memory (64 x 64 boxes, 128B swizzle) -> TMA stores; the warpgroup
//                       returns to the tensor cores while TMA writes (epilogue_tma_store)
//   TmaStoreOverlapped  TmaStore one tile later: the finished tile waits in registers as BF16 pairs (half the
//                       accumulator's registers) while the next tile's first K block is issued to the tensor
//                       cores, then goes out one 64-column box under each of the next tile's first K blocks
//                       (per-tensor scales only)
// The TMA stores need 16-byte rows of C (N % 8 == 0); otherwise they take DirectStore's path.

struct DirectStore {
  static constexpr bool kSmem = false, kTmaStore = false;
  template <int BN>
  struct Store {
    __device__ __forceinline__ Store(unsigned char*, const CUtensorMap*, int) {}
    __device__ __forceinline__ void during_k_block() {}
    __device__ __forceinline__ void tile(float (&acc)[BN / 2], const GemmArgs& args, int row0, int col0) {
      // BF16 pairs straight to global (row stride N; pairs only where N keeps them aligned).
      store_fragment<BN>(acc, args.C, std::size_t(args.N), args.M, args.N, row0, col0);
    }
    __device__ __forceinline__ void drain() {}
  };
};

struct StagedStore {
  static constexpr bool kSmem = true, kTmaStore = false;
  template <int BN>
  struct Store {
    unsigned char* epi_;
    int bar_id_;
    __device__ __forceinline__ Store(unsigned char* epi, const CUtensorMap*, int cw) : epi_(epi), bar_id_(1 + cw) {}
    __device__ __forceinline__ void during_k_block() {}
    __device__ __forceinline__ void tile(float (&acc)[BN / 2], const GemmArgs& args, int row0, int col0) {
      const int M = args.M, N = args.N;
      const int t = threadIdx.x % 128, warp = t / 32, lane = t % 32;
        unsigned char* epi = epi_;
        const int q = lane % 4;
        const bool vec = (N % 8) == 0;
#pragma unroll
        for (int half = 0; half < BN / 128; ++half) {
          // The warpgroup's previous reads of its staging buffer are done before it is overwritten.
          named_barrier_sync(bar_id_, 128);
#pragma unroll
          for (int jj = 0; jj < 16; ++jj) {
            const int j = half * 16 + jj;
#pragma unroll
            for (int h = 0; h < 2; ++h) {
              const int r = warp * 16 + lane / 4 + 8 * h;  // row within the warpgroup's 64
              const __nv_bfloat162 v = __floats2bfloat162_rn(acc[4 * j + 2 * h], acc[4 * j + 2 * h + 1]);
              *reinterpret_cast<__nv_bfloat162*>(epi + r * 256 + ((jj ^ (r & 7)) << 4) + 4 * q) = v;
            }
          }
          named_barrier_sync(bar_id_, 128);
          // 64 rows x 16 chunks of 16 bytes; a warp stores two whole 256-byte row segments per step.
#pragma unroll
          for (int e = t; e < 64 * 16; e += 128) {
            const int r = e / 16, cc = e % 16;
            const uint4 v = *reinterpret_cast<const uint4*>(epi + r * 256 + ((cc ^ (r & 7)) << 4));
            const int row = row0 + r, col = col0 + half * 128 + cc * 8;
            if (row >= M) continue;
            __nv_bfloat16* dst = args.C + std::size_t(row) * N + col;
            if (vec && col + 8 <= N) {
              *reinterpret_cast<uint4*>(dst) = v;
            } else {
              const __nv_bfloat16* src = reinterpret_cast<const __nv_bfloat16*>(&v);
              for (int i = 0; i < 8; ++i)
                if (col + i < N) dst[i] = src[i];
            }
          }
        }
    }
    __device__ __forceinline__ void drain() {}
  };
};

struct TmaStore {
  static constexpr bool kSmem = true, kTmaStore = true;
  template <int BN>
  struct Store {
    unsigned char* epi_;
    const CUtensorMap* map_;
    int bar_id_;
    __device__ __forceinline__ Store(unsigned char* epi, const CUtensorMap* map, int cw)
        : epi_(epi), map_(map), bar_id_(1 + cw) {}
    __device__ __forceinline__ void during_k_block() {}
    __device__ __forceinline__ void tile(float (&acc)[BN / 2], const GemmArgs& args, int row0, int col0) {
      if (args.N % 8 == 0) epilogue_tma_store<BN>(acc, epi_, map_, row0, col0, bar_id_);
      else store_fragment<BN>(acc, args.C, std::size_t(args.N), args.M, args.N, row0, col0);
    }
    __device__ __forceinline__ void drain() {
      if (threadIdx.x % 128 == 0) bulk_wait<0>();  // this warpgroup's last TMA stores are done
    }
  };
};

struct TmaStoreOverlapped {
  static constexpr bool kSmem = true, kTmaStore = true;
  template <int BN>
  struct Store {
    unsigned char* epi_;
    const CUtensorMap* map_;
    int bar_id_;
    std::uint32_t packed[BN / 4];    // the previous tile, packed to BF16
    bool pending = false;            // a packed tile waits
    int pend_row = 0, pend_col = 0;  // where its 64 x BN block of C starts
    int next_box = 0;                // its first 64-column box not yet handed to TMA
    __device__ __forceinline__ Store(unsigned char* epi, const CUtensorMap* map, int cw)
        : epi_(epi), map_(map), bar_id_(1 + cw) {}
    // One box of the packed tile; the tile is done after its BN / 64 boxes.
    __device__ __forceinline__ void store_box() {
      epilogue_tma_store_box_at<BN>(packed, epi_, map_, pend_row, pend_col, bar_id_, next_box);
      if (++next_box == BN / 64) {
        pending = false;
        next_box = 0;
      }
    }
    __device__ __forceinline__ void store_rest() {
      while (pending) store_box();
    }
    // The previous tile leaves one box under each of this tile's first K blocks: the warpgroup is back at
    // the tensor cores after a quarter of the writes, and by the time a box's slot comes round again, the
    // TMA store of the box before has long read it.
    __device__ __forceinline__ void during_k_block() {
      if (pending) store_box();
    }
    __device__ __forceinline__ void tile(float (&acc)[BN / 2], const GemmArgs& args, int row0, int col0) {
      if (args.N % 8 == 0) {
        store_rest();  // a tile of fewer K blocks than boxes: the previous tile's last boxes
        pack_bf16<BN>(acc, packed);
        pending = true;
        pend_row = row0;
        pend_col = col0;
        return;
      }
      store_fragment<BN>(acc, args.C, std::size_t(args.N), args.M, args.N, row0, col0);
    }
    __device__ __forceinline__ void drain() {
      store_rest();
      if (threadIdx.x % 128 == 0) bulk_wait<0>();  // this warpgroup's last TMA stores are done
    }
  };
};

// ---------------------------------------------------------------------------------------------
// Schedule policies
// ---------------------------------------------------------------------------------------------
// DataParallel: whole units, round-robin over the (persistent or not) grid. StreamK: the last units' K
// iterations spread evenly over the clusters (StreamKSchedule, aipe/kernels/scheduler.hpp); a unit cut
// between clusters is finished by the one holding its K block 0, which adds the others' partial tiles
// (args.partials / args.flags) before its epilogue. The grid must be resident all at once (at most
// max_active_clusters clusters). Mainloops that take K ranges (kKRanges: TensorScaled, BlockScaledWide) and
// TmaStore only. With block scales each piece has promoted its own K blocks with their own scales, so the
// pieces' FP32 tiles add up like per-tensor ones.
struct DataParallel {
  static constexpr bool kStreamK = false;
};
struct StreamK {
  static constexpr bool kStreamK = true;
};

// Warp-specialized TMA + WGMMA FP8 GEMM: the stage ring, the tile order and the schedule are library pieces;
// Mainloop, Epi and Schedule are the policies above. Warpgroup 0: one thread streams A and B K-blocks through
// a kStages-deep shared-memory ring (Pipeline); warpgroups 1..2: Mainloop::run on the slots, then Epi's store.
// The grid may be smaller than the number of tiles (persistent): every CTA then walks work units
// blockIdx.x / CM, + gridDim.x / CM, ... and the producer runs ahead into the next tile while the consumers
// store the last one.
// CM = 2: clusters of two CTAs on vertically adjacent tiles (same B columns). Each CTA loads half of the B
// tile (box of BN/2 rows, `tmap_b`) and multicasts it into both CTAs' shared memory, so B crosses L2 -> SM
// once per pair; a slot is free only when the consumers of both CTAs released it.
// tmap_c: C in 64 x 64 BF16 boxes, read by the TMA-store epilogues only.
template <class Mainloop, class Epi, int CM, class Schedule = DataParallel>
__global__ void __launch_bounds__(GemmConfig<Mainloop::BN, Mainloop::kScaling>::kThreads, 1)
    gemm_ws_kernel(const __grid_constant__ CUtensorMap tmap_a, const __grid_constant__ CUtensorMap tmap_b,
                   const __grid_constant__ CUtensorMap tmap_c, const GemmArgs args) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int BN = Mainloop::BN;
  constexpr Scaling S = Mainloop::kScaling;
  constexpr bool SK = Schedule::kStreamK;
  using Cfg = GemmConfig<BN, S>;
  constexpr int BM = Cfg::BM, BK = Cfg::BK, kStages = Cfg::kStages;
  constexpr int R = BN / 2;  // accumulator registers per thread for m64nBN
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = reinterpret_cast<unsigned char*>((reinterpret_cast<std::uintptr_t>(smem_raw) + 1023) & ~std::uintptr_t(1023));
  unsigned char* sA = smem;                                  // [kStages][BM][BK]  swizzled
  unsigned char* sB = smem + kStages * Cfg::kABytes;         // [kStages][BN][BK]  swizzled
  unsigned char* sEpi = sB + kStages * Cfg::kBBytes;         // Epi::kSmem: [kConsumers][16 KiB], 1024-aligned
  constexpr int kEpiBytes = Epi::kSmem ? Cfg::kConsumers * Cfg::kEpiBytesPerWG : 0;
  static_assert(!std::is_same_v<Epi, TmaStoreOverlapped> || S == Scaling::tensor,
                "the overlapped epilogue is written for per-tensor scales");
  static_assert(!SK || (Mainloop::kKRanges && std::is_same_v<Epi, TmaStore>),
                "the stream-K tail needs a mainloop that computes K ranges and the TMA-store epilogue (with the "
                "overlapped epilogue's parked tile, the schedule no longer fits in 232 registers: ptxas spills ~190 "
                "bytes)");
  // The ring's barriers: one arrive.expect_tx fills a slot; one arrive per consumer warp of every CTA in the
  // cluster empties it.
  const Pipeline<kStages> pipe(reinterpret_cast<std::uint64_t*>(sEpi + kEpiBytes));
  using State = PipelineState<kStages>;

  const int M = args.M, N = args.N, K = args.K;
  const int tiles_m = (M + BM - 1) / BM, tiles_n = (N + BN - 1) / BN;
  const int units_m = (tiles_m + CM - 1) / CM, num_units = units_m * tiles_n;  // a unit: CM tiles stacked in M
  const int nk = (K + BK - 1) / BK;
  const int wg = warpgroup_index();
  const int rank = CM > 1 ? int(cluster_ctarank()) : 0;
  const int first_unit = blockIdx.x / CM, unit_stride = gridDim.x / CM;
  const TileRaster raster{units_m, tiles_n, args.group_m, false};
  // The K serpentine: a CTA's odd units walk K backward (GemmArgs::k_serpentine), for the mainloops that take
  // K blocks in any order. Both CTAs of a cluster work on the same unit in the same wave: they agree on the
  // direction, and the producer and the consumers of a CTA agree through this one function.
  const auto k_backward = [&](const TileWork& w) {
    return Mainloop::kAnyKOrder && !SK && args.k_serpentine && ((w.unit / unit_stride) & 1) != 0;
  };

  if (threadIdx.x == 0) {
    tma_prefetch_descriptor(&tmap_a);
    tma_prefetch_descriptor(&tmap_b);
    if constexpr (Epi::kTmaStore) tma_prefetch_descriptor(&tmap_c);
    pipe.init(1, Cfg::kConsumers * 4 * CM);
    fence_barrier_init();
    fence_proxy_async();
  }
  if constexpr (CM > 1) cluster_sync();  // the peer's barriers exist before any multicast or remote arrive
  else __syncthreads();

  if (wg == 0) {
    setmaxnreg_dec<40>();
    if (threadIdx.x == 0) {
      State st;
      StreamKSchedule sched(num_units, nk, first_unit, unit_stride, SK);
      for (TileWork w; sched.next(w);) {
        int um, tn;
        raster(w.unit, um, tn);
        const int tm = um * CM + rank;
        const bool backward = k_backward(w);
        for (int kb = w.kb0; kb < w.kb1; ++kb) {
          const int kq = backward ? nk - 1 - kb : kb;  // the K block this slot receives
          pipe.producer_acquire(st);  // a fresh barrier passes parity 1 at once
          pipe.producer_expect_tx(st, Cfg::kStageBytes);  // A + the whole B tile (both halves land here)
          std::uint64_t* bar = pipe.full_bar(st);
          tma_load_2d(sA + st.index * Cfg::kABytes, &tmap_a, bar, kq * BK, tm * BM);
          if constexpr (CM == 1) {
            tma_load_2d(sB + st.index * Cfg::kBBytes, &tmap_b, bar, kq * BK, tn * BN);
          } else {
            static_assert(CM == 2, "B is split in two halves, one per CTA of the pair");
            tma_load_2d_multicast(sB + st.index * Cfg::kBBytes + rank * (BN / 2) * BK, &tmap_b, bar, kq * BK,
                                  tn * BN + rank * (BN / 2), 0x3);
          }
          st.advance();
        }
      }
    }
  } else {
    setmaxnreg_inc<232>();
    const int cw = wg - 1;  // consumer warpgroup: rows cw*64 .. cw*64+63 of the tile
    const int t = threadIdx.x % 128, warp = t / 32, lane = t % 32;
    (void)t;
    State st;
    ConsumerRing<kStages, CM> ring{pipe, st, wgmma_desc_sw128(sA + cw * 64 * BK), wgmma_desc_sw128(sB), lane};
    typename Epi::template Store<BN> store(sEpi + cw * Cfg::kEpiBytesPerWG, &tmap_c, cw);
    float acc[R];
    StreamKSchedule sched(num_units, nk, first_unit, unit_stride, SK);
    for (TileWork w; sched.next(w);) {
      int um, tn;
      raster(w.unit, um, tn);
      const int tm = um * CM + rank;
      // Accumulator fragment of m64nN: d[4j + {0,1}] at (row0, 8j + 2(lane%4) + {0,1}), d[4j + {2,3}] at row0 + 8.
      const int row0 = tm * BM + cw * 64 + warp * 16 + lane / 4;  // the block scales' rows
      ring.k_backward = k_backward(w);
      Mainloop::run(ring, args, w, nk, tn, row0, acc, [&] { store.during_k_block(); });
      if constexpr (SK) {
        // A piece of a cut unit: leave the partial tile for the finisher, or, holding K block 0, add the
        // others' partial tiles (in worker order: the sum does not depend on timing) and store the tile.
        auto slot = [&](int worker) { return (worker * CM + rank) * Cfg::kConsumers + cw; };
        if (w.kb0 > 0) {
          const int i = slot(sched.worker);
          sk_partial_store<R>(args.partials + std::size_t(i) * 64 * BN, args.flags + i, acc, 1 + cw);
          continue;
        }
        if (w.kb1 < nk)
          for (int c = sched.next_contributor(w, sched.worker); c >= 0; c = sched.next_contributor(w, c)) {
            const int i = slot(c);
            sk_partial_add<R>(args.partials + std::size_t(i) * 64 * BN, args.flags + i, acc, 1 + cw);
          }
      }
      store.tile(acc, args, tm * BM + cw * 64, tn * BN);
    }
    store.drain();
  }  // consumers
  // No CTA may leave while its peer can still multicast into its shared memory or arrive on its barriers.
  if constexpr (CM > 1) cluster_sync();
#endif
}

// Dynamic shared memory of gemm_ws_kernel<Mainloop, Epi, ...>.
template <class Mainloop, class Epi>
inline constexpr int kGemmSmemBytes = Epi::kSmem ? GemmConfig<Mainloop::BN, Mainloop::kScaling>::kSmemBytesStaged
                                                 : GemmConfig<Mainloop::BN, Mainloop::kScaling>::kSmemBytes;

// Host launch of the warp-specialized kernel: `grid` CTAs (the tile count, or a persistent grid). With
// CM = 2 the launch carries a cluster dimension of 2 (cudaLaunchKernelEx) and `grid` must be even.
// `tc`: C's 64 x 64 box tensor map, read only by the TMA-store epilogues.
template <class Mainloop, class Epi = DirectStore, int CM = 1, class Schedule = DataParallel>
inline void launch_gemm_ws(const CUtensorMap& ta, const CUtensorMap& tb, const CUtensorMap& tc, const GemmArgs& g,
                           int grid, cudaStream_t s) {
  using Cfg = GemmConfig<Mainloop::BN, Mainloop::kScaling>;
  constexpr int smem = kGemmSmemBytes<Mainloop, Epi>;
  auto* kernel = gemm_ws_kernel<Mainloop, Epi, CM, Schedule>;
  set_max_dynamic_smem(kernel, smem);  // once per device
  if constexpr (CM == 1) {
    kernel<<<grid, Cfg::kThreads, smem, s>>>(ta, tb, tc, g);
    AIPE_CHECK_LAUNCH();
  } else {
    launch_in_clusters(kernel, grid, Cfg::kThreads, smem, CM, s, ta, tb, tc, g);
  }
}

// How many clusters of CM CTAs of this kernel can be resident at once (the persistent grid of the
// cluster rung is that many clusters).
template <class Mainloop, class Epi, int CM, class Schedule = DataParallel>
inline int max_active_clusters() {
  using Cfg = GemmConfig<Mainloop::BN, Mainloop::kScaling>;
  constexpr int smem = kGemmSmemBytes<Mainloop, Epi>;
  auto* kernel = gemm_ws_kernel<Mainloop, Epi, CM, Schedule>;
  set_max_dynamic_smem(kernel, smem);
  return cluster_occupancy(kernel, Cfg::kThreads, smem, CM);
}

#endif  // __CUDACC__

}  // namespace aipe::kernels::fp8
