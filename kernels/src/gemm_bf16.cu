// aipe::kernels::gemm, BF16: C[M][N] = epilogue(A[M][K] . B[N][K]^T), the persistent warp-specialized TMA + WGMMA
// kernel of ch10/gemm_bf16's best rungs (tma_epilogue, epilogue_overlap: at parity with cuBLAS at 8192^3) with the
// fused epilogue operations of aipe/kernels/epilogue_ops.cuh applied to the FP32 accumulators.
//
// This file holds the cooperative schedule (Schedule::cooperative, gemm.hpp) and the dispatch; the ping-pong
// schedule's kernel, where each consumer warpgroup owns its own tile, is kernels/src/gemm_bf16_pingpong.cu.
// Kernel (one per cooperative TileConfig, four in all):
//   * 384 threads: warpgroup 0 produces (one thread issues every TMA load; setmaxnreg 24), warpgroups 1 and 2
//     consume (wgmma m64nBNk16 on 64 rows each of the 128 x BN tile; setmaxnreg 240).
//   * A ring of 64-deep K stages in shared memory (128B-swizzled TMA boxes), full/empty mbarriers per slot:
//     4 stages of 48 KiB at BN = 256, 6 of 32 KiB at BN = 128.
//   * Clusters of 2 CTAs on vertically adjacent tiles (cluster_m = 2): each CTA loads half of the B tile and
//     multicasts it into both, so B crosses L2 -> SM once per pair.
//   * Persistent: as many CTAs (clusters) as are resident at once walk the work units in grouped raster order
//     (bands of 16 tile rows, column by column, so the units running together share A and B panels in L2).
//   * Epilogue: scale / bias / activation / residual on the FP32 accumulators (uniform branches, once per
//     tile; the bias loaded early in the tile's K loop), then either (C 16-byte aligned) the tile packed to BF16
//     pairs and written by TMA stores one 64 x 64 box under each of the next tile's first K steps, as ch10's
//     epilogue_overlap does, or guarded BF16 stores from registers. With TMA stores, an activation and no
//     residual (activation_overlapped, gemm.hpp), only alpha and the bias run after the last wgmma: the tile is
//     parked as BF16 t, and each box goes through the activation in shared memory on its way out, while the
//     next tile's wgmma runs (at k = 1024 the serial GELU of a 128 x 256 tile, 32768 MUFU.TANH at 16 per clock,
//     is ~2048 clocks against ~16384 of tensor work).
// Edges: TMA zero-fills the parts of A and B boxes past M, N and K and clips the C boxes it stores; the register
// path and the epilogue's loads are guarded.
#include <cuda.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>

#include "aipe/check.hpp"
#include "aipe/kernels/epilogue.cuh"
#include "aipe/kernels/epilogue_ops.cuh"
#include "aipe/kernels/gemm.hpp"
#include "aipe/kernels/launch.cuh"
#include "aipe/kernels/pipeline.cuh"
#include "aipe/kernels/ptx.cuh"
#include "aipe/kernels/scheduler.hpp"
#include "aipe/kernels/tma.hpp"
#include "aipe/kernels/wgmma.cuh"
#include "gemm_bf16_detail.hpp"
#include "gemm_skinny_launch.hpp"

namespace aipe::kernels {
namespace {

using detail::kBK;
using detail::kThreads;
using detail::KernelArgs;
constexpr int kBM = 128;
constexpr int kGroupRows = detail::kBandRows / kBM;  // tile rows per raster band (2048 rows of C)
constexpr CUtensorMapDataType kBf16 = CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;

template <int BN>
struct Cfg {
  static constexpr int kABytes = kBM * kBK * 2;  // 16 KiB
  static constexpr int kBBytes = BN * kBK * 2;   // 32 KiB (BN 256) or 16 KiB (BN 128)
  static constexpr int kStageBytes = kABytes + kBBytes;
  static constexpr int kStages = BN == 256 ? 4 : 6;  // 192 KiB of stages either way
  static constexpr int kEpiBytes = 2 * 16384;        // per consumer warpgroup two 8 KiB slots of 64 x 64 boxes
  // [1024 alignment][stages][epilogue slots][full, empty barriers]
  static constexpr std::size_t kSmem = 1024 + std::size_t(kStages) * kStageBytes + kEpiBytes + 2 * kStages * 8;
};
static_assert(Cfg<256>::kSmem <= detail::kSmemLimit && Cfg<128>::kSmem <= detail::kSmemLimit, "one CTA per SM: 227 KiB of shared memory");

template <int BN, int CM>
__global__ void __launch_bounds__(kThreads, 1)
    gemm_bf16_kernel(const __grid_constant__ CUtensorMap tma_a, const __grid_constant__ CUtensorMap tma_b,
                     const __grid_constant__ CUtensorMap tma_c, const KernelArgs args) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Cf = Cfg<BN>;
  constexpr int kStages = Cf::kStages;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem =
      reinterpret_cast<unsigned char*>((reinterpret_cast<std::uintptr_t>(smem_raw) + 1023) & ~std::uintptr_t(1023));
  auto sA = [&](int s) { return smem + s * Cf::kStageBytes; };
  auto sB = [&](int s) { return smem + s * Cf::kStageBytes + Cf::kABytes; };
  unsigned char* sEpi = smem + kStages * Cf::kStageBytes;
  const Pipeline<kStages> pipe(reinterpret_cast<std::uint64_t*>(sEpi + Cf::kEpiBytes));  // full, empty barriers
  using State = PipelineState<kStages>;

  const int M = args.M, N = args.N, K = args.K;
  const int wg = warpgroup_index();
  const int rank = CM > 1 ? static_cast<int>(cluster_ctarank()) : 0;
  const int ktiles = (K + kBK - 1) / kBK;
  const int tiles_m = (M + kBM - 1) / kBM, tiles_n = (N + BN - 1) / BN;
  const int units_m = (tiles_m + CM - 1) / CM, units = units_m * tiles_n;  // a unit: CM tiles stacked in M
  const TileRaster raster{units_m, tiles_n, kGroupRows / CM, true};
  const int first_unit = blockIdx.x / CM, unit_stride = gridDim.x / CM;
  const bool tma_store = args.tma_store;

  if (threadIdx.x == 0) {
    tma_prefetch_descriptor(&tma_a);
    tma_prefetch_descriptor(&tma_b);
    if (tma_store) tma_prefetch_descriptor(&tma_c);
    // full: the producer's arrive.expect_tx, TMA's bytes complete the phase; empty: one arrive per consumer
    // warpgroup of every CTA of the cluster.
    pipe.init(1, 2 * CM);
    fence_barrier_init();
  }
  if constexpr (CM > 1) cluster_sync();  // the peer's barriers exist before any multicast or remote arrive
  else __syncthreads();

  if (wg == 0) {
    setmaxnreg_dec<24>();
    if (threadIdx.x == 0) {
      State st;
      for (int unit = first_unit; unit < units; unit += unit_stride) {
        int um, tn;
        raster(unit, um, tn);
        const int m0 = (um * CM + rank) * kBM, n0 = tn * BN;
        for (int kt = 0; kt < ktiles; ++kt) {
          const int s = st.index;
          pipe.producer_acquire(st);  // the slot is free in every CTA that receives it
          pipe.producer_expect_tx(st, Cf::kStageBytes);
          std::uint64_t* bar = pipe.full_bar(st);
          tma_load_2d(sA(s), &tma_a, bar, kt * kBK, m0);
          if constexpr (CM == 1) {
#pragma unroll
            for (int b = 0; b < BN / 128; ++b)  // tma_b: boxes of 128 rows
              tma_load_2d(sB(s) + b * 128 * kBK * 2, &tma_b, bar, kt * kBK, n0 + 128 * b);
          } else {
            static_assert(CM == 2, "B is cut in two halves, one per CTA of the pair");
            constexpr int kRows = BN / CM;  // tma_b: boxes of BN / 2 rows
            tma_load_2d_multicast(sB(s) + rank * kRows * kBK * 2, &tma_b, bar, kt * kBK, n0 + rank * kRows,
                                  (1u << CM) - 1);
          }
          st.advance();
        }
      }
    }
  } else {
    setmaxnreg_inc<240>();
    const int c = wg - 1;  // consumer: rows 64 c .. 64 c + 63 of the tile
    const int t = threadIdx.x % 128;
    const std::uint64_t desc_a0 = wgmma_desc_sw128(sA(0) + c * 64 * 128), desc_b0 = wgmma_desc_sw128(sB(0));
    State st;
    constexpr int kBoxes = BN / 64;  // 64 x 64 boxes of C per warpgroup and tile
    // The activation the parked tile still needs (none: it was applied before packing). Uniform, one per launch.
    const Activation parked_act = args.overlap_activation ? args.epi.act : Activation::none;
    std::uint32_t packed[BN / 4];  // the previous tile as BF16 pairs, waiting for the next tile's first K steps
    std::uint32_t bias[BN / 8];    // this tile's bias values as BF16 pairs (load_bias_pairs)
    bool pending = false;
    int pend_row = 0, pend_col = 0;
    for (int unit = first_unit; unit < units; unit += unit_stride) {
      int um, tn;
      raster(unit, um, tn);
      const int row0 = (um * CM + rank) * kBM + c * 64, col0 = tn * BN;  // this warpgroup's 64 x BN block
      float acc[BN / 2];
#pragma unroll
      for (int i = 0; i < BN / 2; ++i) acc[i] = 0.f;
      int prev = -1;  // the slot whose wgmma group may still be reading shared memory
      // One 64-deep K step on the tensor cores, from the slot the state points at.
      auto issue = [&] {
        const int s = st.index;
        pipe.consumer_wait(st);
        fence_regs(acc);
        wgmma_fence();
        // Slot s's descriptors: stage 0's plus the slot offset in the 16-byte units of the address field.
        const std::uint64_t da = desc_a0 + static_cast<std::uint32_t>(s * (Cf::kStageBytes >> 4));
        const std::uint64_t db = desc_b0 + static_cast<std::uint32_t>(s * (Cf::kStageBytes >> 4));
#pragma unroll
        for (int kk = 0; kk < kBK / 16; ++kk) wgmma_ss<BN>(acc, da + 2 * kk, db + 2 * kk, 1);
        wgmma_commit();
      };
      // Keeps the step just issued in flight; the one before it is done: its slot goes back.
      auto retire = [&] {
        wgmma_wait<1>();
        fence_regs(acc);
        if (prev >= 0 && t == 0) pipe.template consumer_release<CM>(prev);
        prev = st.index;
        st.advance();
      };
      // The first kBoxes K steps are peeled: under each, after its wgmma is issued and before it is waited for,
      // one 64 x 64 box of the parked tile goes through the deferred activation (if any) and leaves through TMA,
      // so the MUFU and FMA work overlaps this warpgroup's own tensor work (a tile with fewer K steps than boxes
      // stores the rest without). Then this tile's bias is loaded: outside the peeled steps, the packed tile's
      // registers are visibly free for it during the rest of the loop.
#pragma unroll
      for (int b = 0; b < kBoxes; ++b) {
        if (b < ktiles) issue();
        if (pending) store_parked_box<BN>(packed, sEpi + c * 16384, &tma_c, pend_row, pend_col, 1 + c, b, parked_act);
        if (b < ktiles) retire();
      }
      pending = false;
      load_bias_pairs<BN>(bias, args.epi, N, col0);
      for (int kt = kBoxes; kt < ktiles; ++kt) {
        issue();
        retire();
      }
      wgmma_wait<0>();
      fence_regs(acc);
      if (t == 0) pipe.template consumer_release<CM>(prev);
      if (parked_act != Activation::none) apply_epilogue_before_activation<BN>(acc, bias, args.epi, M, N, row0, col0);
      else apply_epilogue<BN>(acc, bias, args.epi, M, N, row0, col0);
      if (tma_store) {
        pack_bf16<BN>(acc, packed);  // half the registers: the accumulator is free for the next tile
        pending = true;
        pend_row = row0;
        pend_col = col0;
      } else {
        store_fragment<BN>(acc, args.C, std::size_t(args.ldc), M, N, row0, col0);
      }
    }
    if (pending) {  // the CTA's last tile
#pragma unroll
      for (int b = 0; b < kBoxes; ++b)
        store_parked_box<BN>(packed, sEpi + c * 16384, &tma_c, pend_row, pend_col, 1 + c, b, parked_act);
    }
    if (tma_store && t == 0) bulk_wait<0>();  // this warpgroup's stores have left shared memory and landed
  }
  // No CTA may exit while its peer can still multicast into its shared memory or arrive on its barriers.
  if constexpr (CM > 1) cluster_sync();
#else
  (void)tma_a; (void)tma_b; (void)tma_c; (void)args;
  __trap();
#endif
}

template <int BN, int CM>
constexpr auto kernel_of() {
  return gemm_bf16_kernel<BN, CM>;
}

// What a device holds, queried once: how many of the kernels are resident at once (the persistent grids).
struct DeviceState {
  DeviceSlots slots;
};

const DeviceState& device_state(int device) {
  static std::mutex mu;
  static std::map<int, DeviceState> states;
  const std::lock_guard<std::mutex> lock(mu);
  if (auto it = states.find(device); it != states.end()) return it->second;
  cudaDeviceProp p{};
  AIPE_CUDA(cudaGetDeviceProperties(&p, device));
  if (p.major != 9 || p.minor != 0)
    throw std::runtime_error("kernels::gemm needs a Hopper GPU (sm_90a); device " + std::to_string(device) + " is cc " +
                             std::to_string(p.major) + "." + std::to_string(p.minor));
  const std::size_t smem = std::max({Cfg<256>::kSmem, Cfg<128>::kSmem, detail::pingpong_smem_max()});
  if (p.sharedMemPerBlockOptin < smem)
    throw std::runtime_error("kernels::gemm needs " + std::to_string(smem) +
                             " B of shared memory per block; device " + std::to_string(device) + " allows " +
                             std::to_string(p.sharedMemPerBlockOptin));
  // The shared-memory opt-in belongs to the device (set_max_dynamic_smem: once per kernel and device).
  set_max_dynamic_smem(kernel_of<256, 2>(), Cfg<256>::kSmem);
  set_max_dynamic_smem(kernel_of<256, 1>(), Cfg<256>::kSmem);
  set_max_dynamic_smem(kernel_of<128, 2>(), Cfg<128>::kSmem);
  set_max_dynamic_smem(kernel_of<128, 1>(), Cfg<128>::kSmem);
  detail::prepare_pingpong_kernels();
  DeviceState st;
  // Every kernel (cooperative and ping-pong) takes the same threads and more than half an SM's shared memory:
  // one CTA per SM.
  int per_sm = 0;
  AIPE_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel_of<256, 1>(), kThreads, Cfg<256>::kSmem));
  st.slots.ctas = per_sm * p.multiProcessorCount;
  st.slots.clusters = cluster_occupancy(kernel_of<256, 2>(), kThreads, Cfg<256>::kSmem, 2);
  if (st.slots.ctas < 1 || st.slots.clusters < 1)
    throw std::runtime_error("kernels::gemm: its kernels do not fit on device " + std::to_string(device));
  return states.emplace(device, st).first->second;
}

int current_device() {
  int d = 0;
  AIPE_CUDA(cudaGetDevice(&d));
  return d;
}

std::int64_t units_of(const GemmShape& s, const TileConfig& t) {
  const std::int64_t tiles_m = (s.m + t.bm - 1) / t.bm, tiles_n = (s.n + t.bn - 1) / t.bn;
  return ((tiles_m + t.cluster_m - 1) / t.cluster_m) * tiles_n;
}

GemmPlan make_plan(const GemmShape& s, const Epilogue& epi, const GemmOptions& options, const DeviceState& d) {
  GemmPlan p;
  p.tile = select_tile(s, options, d.slots);
  p.activation_overlapped = activation_overlapped(s, epi, p.tile);
  const std::int64_t clusters = std::min<std::int64_t>(units_of(s, p.tile), d.slots.slots(p.tile.cluster_m));
  p.grid_ctas = static_cast<int>(clusters) * p.tile.cluster_m;
  p.tma_store = s.tma_store;
  return p;
}

template <int BN, int CM>
void launch(const Matrix<const bf16>& a, const Matrix<const bf16>& b, const KernelArgs& args, const CUtensorMap& tc,
            int grid, cudaStream_t stream) {
  // A in boxes of 128 rows x 64 K; B in boxes of 128 rows (two loads per stage at BN = 256) or, with the
  // cluster, of BN / 2 rows (each CTA's multicast half).
  const CUtensorMap ta = matrix_map(kBf16, a.data, a.rows, a.cols, a.ld, kBM, kBK);
  const CUtensorMap tb = matrix_map(kBf16, b.data, b.rows, b.cols, b.ld, CM == 2 ? BN / 2 : 128, kBK);
  if constexpr (CM == 1) {
    gemm_bf16_kernel<BN, 1><<<grid, kThreads, Cfg<BN>::kSmem, stream>>>(ta, tb, tc, args);
    AIPE_CHECK_LAUNCH();
  } else {
    launch_in_clusters(gemm_bf16_kernel<BN, CM>, dim3(grid), kThreads, Cfg<BN>::kSmem, CM, stream, ta, tb, tc,
                           args);
  }
}

}  // namespace

namespace {

GemmPlan make_skinny_plan(const GemmShape& s, const Epilogue& epi, const SkinnyOptions& o, const DeviceState& d) {
  if (!skinny_supports(epi))
    throw std::invalid_argument("kernels::gemm_skinny: the skinny kernel applies alpha and a bias only, asked for " +
                                epi.describe());
  GemmPlan p;
  p.kernel = GemmKernel::skinny;
  p.skinny = choose_skinny(s.m, s.n, s.k, d.slots.ctas, o);
  p.grid_ctas = p.skinny.grid_ctas;
  return p;
}

// gemm()'s choice: the skinny kernel by shape (prefers_skinny) unless the caller fixed the square kernel's
// schedule or tile (GemmOptions), else the square kernel's tile by cost.
GemmPlan dispatch(const GemmShape& s, const Epilogue& epi, const GemmOptions& options, const DeviceState& d) {
  const bool fixed = options.schedule.has_value() || options.tile.has_value();
  return !fixed && prefers_skinny(s.m, epi)
             ? make_skinny_plan(s, epi, dispatch_skinny_options(s.n, d.slots.ctas), d)
             : make_plan(s, epi, options, d);
}

}  // namespace

GemmPlan plan_gemm(const Matrix<const bf16>& a, const Matrix<const bf16>& b, const Matrix<bf16>& c,
                   const Epilogue& epi, const GemmOptions& options) {
  const GemmShape s = check_gemm(a, b, c, epi);
  return dispatch(s, epi, options, device_state(current_device()));
}

GemmPlan plan_gemm_skinny(const Matrix<const bf16>& a, const Matrix<const bf16>& b, const Matrix<bf16>& c,
                          const Epilogue& epi, const SkinnyOptions& options) {
  const GemmShape s = check_gemm(a, b, c, epi);
  return make_skinny_plan(s, epi, options, device_state(current_device()));
}

void gemm_skinny(Matrix<const bf16> a, Matrix<const bf16> b, Matrix<bf16> c, const Epilogue& epi,
                 const SkinnyOptions& options, cudaStream_t stream) {
  const GemmShape s = check_gemm(a, b, c, epi);
  if (!skinny_supports(epi))  // before the device is touched
    throw std::invalid_argument("kernels::gemm_skinny: the skinny kernel applies alpha and a bias only, asked for " +
                                epi.describe());
  (void)choose_skinny(s.m, s.n, s.k, 1, options);  // M, and the switches, checked before the device is touched
#if !AIPE_HAVE_SM90A
  (void)stream;
  throw std::runtime_error(
      "kernels::gemm_skinny: this build has no sm_90a code (set CMAKE_CUDA_ARCHITECTURES to include 90a)");
#else
  const DeviceState& d = device_state(current_device());
  launch_skinny(a, b, c, epi, make_skinny_plan(s, epi, options, d).skinny, d.slots.ctas, stream);
#endif
}

void gemm(Matrix<const bf16> a, Matrix<const bf16> b, Matrix<bf16> c, const Epilogue& epi, cudaStream_t stream) {
  gemm(a, b, c, epi, GemmOptions{}, stream);
}

void gemm(Matrix<const bf16> a, Matrix<const bf16> b, Matrix<bf16> c, const Epilogue& epi, const GemmOptions& options,
          cudaStream_t stream) {
  const GemmShape s = check_gemm(a, b, c, epi);
#if !AIPE_HAVE_SM90A
  (void)s;
  (void)options;
  (void)stream;
  throw std::runtime_error("kernels::gemm: this build has no sm_90a code (set CMAKE_CUDA_ARCHITECTURES to include 90a)");
#else
  const DeviceState& d = device_state(current_device());
  const GemmPlan p = dispatch(s, epi, options, d);
  if (p.kernel == GemmKernel::skinny) {
    launch_skinny(a, b, c, epi, p.skinny, d.slots.ctas, stream);
    return;
  }
  KernelArgs args;
  args.C = c.data;
  args.ldc = c.ld;
  args.M = s.m;
  args.N = s.n;
  args.K = s.k;
  args.tma_store = p.tma_store;
  args.overlap_activation = p.activation_overlapped;
  args.epi.alpha = epi.alpha();
  args.epi.bias = epi.has_bias() ? epi.bias() : nullptr;
  args.epi.act = epi.activation();
  if (epi.has_residual()) {
    args.epi.residual = epi.residual().data;
    args.epi.ldr = epi.residual().ld;
    args.epi.beta = epi.beta();
  }
  args.epi.identity = epi.alpha() == 1.f && !epi.has_bias() && epi.activation() == Activation::none && !epi.has_residual();
  // C in boxes of 64 x 64 (128 bytes of BF16 per row, 128B swizzle), as the epilogue writes them.
  const CUtensorMap tc = p.tma_store ? matrix_map(kBf16, c.data, c.rows, c.cols, c.ld, 64, 64) : CUtensorMap{};
  const TileConfig& t = p.tile;
  if (t.schedule == Schedule::pingpong) detail::launch_pingpong(t, a, b, args, tc, p.grid_ctas, stream);
  else if (t.bn == 256 && t.cluster_m == 2) launch<256, 2>(a, b, args, tc, p.grid_ctas, stream);
  else if (t.bn == 256) launch<256, 1>(a, b, args, tc, p.grid_ctas, stream);
  else if (t.cluster_m == 2) launch<128, 2>(a, b, args, tc, p.grid_ctas, stream);
  else launch<128, 1>(a, b, args, tc, p.grid_ctas, stream);
#endif
}

}  // namespace aipe::kernels
