// aipe::kernels::attention::forward: the host entry of the Hopper forward kernel
// (aipe/kernels/attention/forward_sm90.cuh): argument checks (attention_forward_check.cpp), the three tensor
// maps, the grid, and the choice among the instantiated kernels.
//
// Instantiated (what prefill, the engine and the ch18 ladder use; not the whole cross product): BF16 at d = 64,
// 128, 256 and FP16 at d = 64, 128 (attention_forward_bf16.cu, attention_forward_fp16.cu), each x {no mask,
// causal / sliding window (one kernel: causal is a window of INT_MAX)} x intra_overlap {on, off}; BN = 128 keys
// per tile (64 at d = 256). pingpong and persistent are runtime switches of the same kernels (uniform branches).
//
// Tensor maps: Q [b][seq_q][heads][d] and K, V [b][seq_kv][kv_heads][d] as rank-4 maps, innermost first
// {d, heads, seq, batch}, boxes {64, 1, rows, 1} (one 128-byte swizzled row of 64 elements per sequence
// position): a tile of d = 128 is two boxes. Rows past seq_q / seq_kv arrive as zeros (never from the next batch).
// Packed (varlen) batches are one batch of total_q / total_kv rows: a tile's boxes start at its sequence's first
// row, rows past the sequence come from the next one (their scores are masked, their outputs not stored) and
// rows past the tensor's end arrive as zeros.
#include <cuda.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>

#include "aipe/check.hpp"
#include "aipe/kernels/attention/forward.hpp"
#include "aipe/kernels/tma.hpp"
#include "attention_forward_host.hpp"
#include "attention_forward_launch.cuh"

namespace aipe::kernels::attention {
namespace detail {

// Rank-4 map of a [batch][seq][heads][d] tensor with element strides (row, head, batch), read in boxes of `rows`
// sequence positions x 64 elements of d. A dimension of extent 1 never steps: its stride is replaced by d, which
// TMA accepts whatever the caller passed (0, say, for a single head).
CUtensorMap head_map(CUtensorMapDataType dtype, const void* base, int batch, int seq, int heads, int d,
                     std::int64_t s_batch, std::int64_t s_row, std::int64_t s_head, int rows) {
  TensorMapSpec s;
  s.dtype = dtype;
  s.base = base;
  s.rank = 4;
  s.dims = {std::uint64_t(d), std::uint64_t(heads), std::uint64_t(seq), std::uint64_t(batch), 0};
  auto bytes = [&](std::int64_t stride, int extent) { return std::uint64_t(extent > 1 ? stride : d) * 2; };
  s.strides = {bytes(s_head, heads), bytes(s_row, seq), bytes(s_batch, batch), 0};
  s.box = {64, 1, std::uint32_t(rows), 1, 0};
  s.swizzle = CU_TENSOR_MAP_SWIZZLE_128B;
  return make_tensor_map(s);
}

}  // namespace detail
namespace {

using detail::head_map;

using sm90::ForwardLaunch;
using sm90::kBM;
using sm90::kThreads;

struct DeviceState {
  int resident_ctas = 0;  // the persistent grid
};

const DeviceState& device_state(int device) {
  static std::mutex mu;
  static std::map<int, DeviceState> states;
  const std::lock_guard<std::mutex> lock(mu);
  if (auto it = states.find(device); it != states.end()) return it->second;
  cudaDeviceProp p{};
  AIPE_CUDA(cudaGetDeviceProperties(&p, device));
  if (p.major != 9 || p.minor != 0)
    throw std::runtime_error("attention::forward needs a Hopper GPU (sm_90a); device " + std::to_string(device) +
                             " is cc " + std::to_string(p.major) + "." + std::to_string(p.minor));
  constexpr std::size_t kMaxSmem = std::max({ForwardLaunch<__nv_bfloat16, 64>::kSmem, ForwardLaunch<__nv_bfloat16, 128>::kSmem,
                                              ForwardLaunch<__nv_bfloat16, 256>::kSmem});
  if (p.sharedMemPerBlockOptin < kMaxSmem)
    throw std::runtime_error("attention::forward needs " + std::to_string(kMaxSmem) + " B of shared memory per block; "
                             "device " + std::to_string(device) + " allows " + std::to_string(p.sharedMemPerBlockOptin));
  ForwardLaunch<__nv_bfloat16, 64>::opt_in();
  ForwardLaunch<__nv_bfloat16, 128>::opt_in();
  ForwardLaunch<__nv_bfloat16, 256>::opt_in();
  ForwardLaunch<__half, 64>::opt_in();
  ForwardLaunch<__half, 128>::opt_in();
  // Every kernel is 384 threads under __launch_bounds__(384, 1): one CTA per SM whatever its shared memory.
  const int per_sm = ForwardLaunch<__nv_bfloat16, 128>::ctas_per_sm();
  DeviceState st;
  st.resident_ctas = per_sm * p.multiProcessorCount;
  if (st.resident_ctas < 1)
    throw std::runtime_error("attention::forward: its kernel does not fit on device " + std::to_string(device));
  return states.emplace(device, st).first->second;
}

}  // namespace

int detail::resident_ctas(int device) { return device_state(device).resident_ctas; }

void forward(const ForwardArgs& a, cudaStream_t stream) {
  check_forward_args(a);
#if !AIPE_HAVE_SM90A
  (void)stream;
  throw std::runtime_error("attention::forward: this build has no sm_90a code (set CMAKE_CUDA_ARCHITECTURES to 90a)");
#else
  int device = 0;
  AIPE_CUDA(cudaGetDevice(&device));
  const DeviceState& ds = device_state(device);

  sm90::Params p;
  p.o = a.o;
  p.lse = a.lse;
  p.sinks = a.sinks;
  p.o_batch = a.q_batch;
  p.o_row = a.q_row;
  p.o_head = a.q_head;
  p.batch = a.batch;
  p.heads = a.heads;
  p.kv_heads = a.kv_heads;
  p.seq_q = a.seq_q;
  p.seq_kv = a.seq_kv;
  p.scale = a.scale > 0.f ? a.scale : 1.f / std::sqrt(float(a.d));
  p.scale_log2 = p.scale * 1.4426950408889634f;
  p.cu_q = a.cu_seqlens_q;
  p.cu_kv = a.cu_seqlens_kv;
  const bool masked = a.mask != MaskKind::none;
  p.window = a.mask == MaskKind::sliding_window ? a.window : INT_MAX;
  p.mblocks = (a.seq_q + kBM - 1) / kBM;
  p.tiles = p.mblocks * a.heads * a.batch;
  p.pingpong = a.schedule.pingpong;
  p.longest_first = a.schedule.persistent && masked;
  const int grid = a.schedule.persistent ? (p.tiles < ds.resident_ctas ? p.tiles : ds.resident_ctas) : p.tiles;

  const CUtensorMapDataType dt = a.dtype == DType::fp16 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  const int bn = a.d == 256 ? sm90::kBNOf<256> : sm90::kBNOf<128>;
  // Packed batches: one "batch" of total rows; a tile's rows start at its sequence's offset (the kernel reads it).
  const bool varlen = a.cu_seqlens_q != nullptr;
  const int mb = varlen ? 1 : a.batch;
  const int rq = varlen ? a.total_q : a.seq_q, rkv = varlen ? a.total_kv : a.seq_kv;
  const CUtensorMap tq = head_map(dt, a.q, mb, rq, a.heads, a.d, a.q_batch, a.q_row, a.q_head, kBM);
  const CUtensorMap tk = head_map(dt, a.k, mb, rkv, a.kv_heads, a.d, a.kv_batch, a.kv_row, a.kv_head, bn);
  const CUtensorMap tv = head_map(dt, a.v, mb, rkv, a.kv_heads, a.d, a.kv_batch, a.kv_row, a.kv_head, bn);
  const bool ov = a.schedule.intra_overlap;
  if (a.dtype == DType::bf16) {
    if (a.d == 64) ForwardLaunch<__nv_bfloat16, 64>::run(masked, ov, tq, tk, tv, p, grid, stream);
    else if (a.d == 128) ForwardLaunch<__nv_bfloat16, 128>::run(masked, ov, tq, tk, tv, p, grid, stream);
    else ForwardLaunch<__nv_bfloat16, 256>::run(masked, ov, tq, tk, tv, p, grid, stream);
  } else {
    if (a.d == 64) ForwardLaunch<__half, 64>::run(masked, ov, tq, tk, tv, p, grid, stream);
    else ForwardLaunch<__half, 128>::run(masked, ov, tq, tk, tv, p, grid, stream);
  }
#endif
}

}  // namespace aipe::kernels::attention
