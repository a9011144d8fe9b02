// aipe::kernels::gemm, FP8 E4M3: the warp-specialized FP8 kernel of aipe/kernels/gemm_fp8.cuh at the
// configurations of the ch10 FP8 ladders' best rungs, behind the same kind of host call as the BF16 GEMM:
//   per-tensor scales  128 x 256 tiles, clusters of 2 (B multicast), persistent, bands of 8 tile rows, the
//                      TMA-store epilogue overlapped with the next tile's first K blocks, the K serpentine
//                      (ch10/gemm_fp8's k_serpentine rung)
//   block scales       128 x 256 tiles (two 128-wide weight blocks, promoted one half at a time), clusters of 2,
//                      persistent, TMA-store epilogue (ch10/gemm_fp8_blockwise's tile_128x256 rung)
// Where C's rows are not 16-byte aligned (N % 8 != 0) the kernel stores from registers instead of through TMA.
#include <cuda.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>

#include "aipe/check.hpp"
#include "aipe/kernels/gemm.hpp"
#include "aipe/kernels/gemm_fp8.cuh"
#include "aipe/kernels/tma.hpp"

namespace aipe::kernels {
namespace {

// The two kernels: mainloop policy (scales) x store policy (gemm_fp8.cuh), in clusters of 2.
using TensorMain = fp8::TensorScaled<256>;
using BlockMain = fp8::BlockScaledWide;

constexpr int kBN = 256;  // both mainloops' tile width
constexpr int kGroupRows = 8;  // tile rows per raster band, as the ladders' persistent rungs

// Resident clusters of the two kernels on one device, queried once per device.
struct Fp8DeviceState {
  int clusters_tensor = 0, clusters_block = 0;
};

const Fp8DeviceState& fp8_device_state(int device) {
  static std::mutex mu;
  static std::map<int, Fp8DeviceState> states;
  const std::lock_guard<std::mutex> lock(mu);
  if (auto it = states.find(device); it != states.end()) return it->second;
  cudaDeviceProp p{};
  AIPE_CUDA(cudaGetDeviceProperties(&p, device));
  if (p.major != 9 || p.minor != 0)
    throw std::runtime_error("kernels::gemm (FP8) needs a Hopper GPU (sm_90a); device " + std::to_string(device) +
                             " is cc " + std::to_string(p.major) + "." + std::to_string(p.minor));
  Fp8DeviceState st;
  st.clusters_tensor = fp8::max_active_clusters<TensorMain, fp8::TmaStoreOverlapped, 2>();
  st.clusters_block = fp8::max_active_clusters<BlockMain, fp8::TmaStore, 2>();
  if (st.clusters_tensor < 1 || st.clusters_block < 1)
    throw std::runtime_error("kernels::gemm (FP8): no cluster of 2 CTAs of its kernels fits on device " +
                             std::to_string(device));
  return states.emplace(device, st).first->second;
}

}  // namespace

void gemm(Matrix<const e4m3> a, Matrix<const e4m3> b, Matrix<bf16> c, const Fp8Scales& scales, const Epilogue& epi,
          cudaStream_t stream) {
  const GemmShape s = check_gemm(a, b, c, scales, epi);
#if !AIPE_HAVE_SM90A
  (void)s;
  (void)stream;
  throw std::runtime_error("kernels::gemm: this build has no sm_90a code (set CMAKE_CUDA_ARCHITECTURES to include 90a)");
#else
  int device = 0;
  AIPE_CUDA(cudaGetDevice(&device));
  const Fp8DeviceState& d = fp8_device_state(device);
  const bool block = scales.kind == Fp8Scales::Kind::blockwise;
  fp8::GemmArgs g;
  g.M = s.m;
  g.N = s.n;
  g.K = s.k;
  g.C = c.data;
  g.sa = scales.a;
  g.sb = scales.b;
  g.ldsb = (s.k + 127) / 128;
  g.group_m = kGroupRows;
  g.k_serpentine = !block;
  // E4M3 operands as bytes: 128-byte (128-element) K boxes, one swizzle row. A in 128-row boxes; B in
  // 128-row boxes, the half of a 256-column tile each CTA of a pair loads and multicasts.
  constexpr auto kU8 = CU_TENSOR_MAP_DATA_TYPE_UINT8;
  const CUtensorMap ta = matrix_map(kU8, a.data, a.rows, a.cols, a.ld, 128, 128);
  const CUtensorMap tb = matrix_map(kU8, b.data, b.rows, b.cols, b.ld, kBN / 2, 128);
  // C in 64 x 64 BF16 boxes for the TMA-store epilogue; never read where N % 8 != 0 (the kernel then stores
  // from registers).
  const CUtensorMap tc =
      s.tma_store ? matrix_map(CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, c.data, c.rows, c.cols, c.ld, 64, 64) : CUtensorMap{};
  const int units = ((s.m + 255) / 256) * ((s.n + kBN - 1) / kBN);  // pairs of 128-row tiles
  const int grid = 2 * std::max(1, std::min(units, block ? d.clusters_block : d.clusters_tensor));
  if (block) fp8::launch_gemm_ws<BlockMain, fp8::TmaStore, 2>(ta, tb, tc, g, grid, stream);
  else fp8::launch_gemm_ws<TensorMain, fp8::TmaStoreOverlapped, 2>(ta, tb, tc, g, grid, stream);
#endif
}

}  // namespace aipe::kernels
