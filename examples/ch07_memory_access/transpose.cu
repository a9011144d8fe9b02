// ch07/transpose: out = in^T for a rows x cols float matrix, against the copy ceiling.
//
// Ladder (every transpose rung solves the identical problem; all verified bit for bit first):
//   1 naive       each thread reads in[r][c] (coalesced) and writes out[c][r] (32 rows apart per warp:
//                 every store instruction touches 32 sectors)
//   2 smem_tile   32x32 tile staged in shared memory: global reads and writes both coalesced, but the
//                 column read tile[tx][y] hits one bank 32 times (32-way bank conflict)
//   3 padded      tile[32][33]: the extra column shifts each row by one bank, no conflicts
//   4 swizzled    tile[32][32] with column c stored at c ^ row: conflict-free without wasting shared memory
//   5 tile64      64x64 tile[64][65] per block of 32x8 threads: 16 elements per thread, all 16 loads issued
//                 before the first shared-memory store (64 B in flight per thread, 16 KiB per block,
//                 4x the 32x32 rungs), plain coalesced 4-byte accesses, so any row pitch works: at
//                 12345 x 6789 the 27,156-byte pitch rules out 16-byte vectors and TMA (whose row
//                 pitch must be a multiple of 16 bytes), and bytes in flight are what is left to add
//   6 tile64_vec4 the same 64x64 tile moved with 16-byte float4 loads (a row of 16 float4) and stores
//                 (4 consecutive input rows of one column) when cols and rows are multiples of 4 (every
//                 row start then 16-byte aligned); 4x fewer memory instructions; edges guarded per
//                 float4. Other sizes run rung 5's kernel (the metric `vectorized` says which ran)
//   7 tile64_sector  rung 5 with every warp store covering whole 32-byte sectors at any row pitch: when
//                 rows % 8 != 0 each output row starts at a different offset within a sector, so a fixed
//                 tile boundary splits a sector between two blocks (two partial writes to merge in L2, or
//                 a read-modify-write in DRAM, whose HBM3 has no byte mask). Here block by's segment of
//                 output row o starts s(o) = (o*rows + by) % 8 elements early, at a sector boundary; the
//                 tile holds 8 more input rows (a 72 x 64 tile) to cover the shift. rows % 8 == 0: s = 0,
//                 and it runs rung 5's kernel
//   8 tile128_sector  rung 7 with 128-row tiles (a 136 x 64 tile, 35 KB of shared memory): the 8 halo
//                 rows are re-read once per 128 rows instead of once per 64 (6% more loads, not 12.5%),
//                 34 loads in flight per thread, 512-byte output segments per warp row. At 12345 x
//                 6789 on the H200 (ee7af80) tile64_sector reached 3593 GB/s vs memcpy 4099 (0.877x;
//                 tile64 2579, the partial sectors); rows % 8 == 0 runs rung 5's kernel here too
//   9 tile256_sector  rung 7 with 256-row tiles (264 x 64, 68 KB of dynamic shared memory, up to 3
//                 blocks per SM): 3% more loads for the halo, 66 loads in flight per thread. With rung 8
//                 it shows whether the halo is what the sector rung still pays: if 8 beats 7 and 9 beats
//                 8 it is; if not, the misaligned input rows (5 sectors per 128-byte warp load) are next
//  10 tile128_pipelined  rung 8 with 2 column tiles per block (the same 136 input rows, columns bx and bx + 64): as
//                 soon as a tile sits in shared memory, the 34 registers per thread take the next tile's loads,
//                 issued before this tile's stores. Why: at 12345 x 6789 on the H200 (round 2) tile128_sector read
//                 0.895x memcpy and tile256_sector, with twice the loads in flight per thread but 3 blocks per SM,
//                 only 0.765x: bytes in flight per SM are not what is short, the drain is (each block loads, waits at
//                 the barrier, then only stores; at 4-6 blocks per SM whole SMs spend stretches with no reads
//                 queued). The copy ladder's pipelined rung removed the same drain (0.988x vs wide_chunks' 0.984x).
//                 Second, the 32-byte input sector that a misaligned 27,156-byte row splits between columns bx + 63
//                 and bx + 64 is now read by one block, the second time from its own L1 where it is still there, not
//                 by another SM through L2: 1 in 9 of the sectors a tile reads. Predicted: +1-3% over rung 8
//                 (0.90-0.92x memcpy; the risk: its 64 registers allow 4 blocks per SM, rung 8's 48 allow 5),
//                 measured in the final run. rows % 8 == 0 runs rung 5's kernel, as rungs 7-9 do
//  11 memcpy      cudaMemcpyAsync D2D of the same matrix: the copy ceiling a transpose is judged against.
//                 It moves the same bytes but does not transpose; it is verified as a copy.
//
// Problem: in is rows x cols (row-major), out is cols x rows. Default 16384 x 16384 floats (1 GiB each).
// Napkin math: bytes = 2 * 4 * rows * cols, 0 FLOPs; a transpose is a copy with a permutation, so the
// bar is the copy's bandwidth (~3 TB/s on H100: ~0.7 ms at the default size).
// Tiles (rungs 1-4): 32x32 elements per block of 32x8 threads (4 elements per thread). Edges: rows and cols need not
// be multiples of 32 (the small size is 1001 x 777); every access is guarded.
// Reference: out[c][r] must equal the generator's value for in index r*cols + c (aipe::compare_on_device).
#include <cuda_runtime.h>

#include <cstdint>

#include "aipe/buffer.hpp"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"
#include "aipe/verify_device.cuh"

namespace {

constexpr int kTile = 32;
constexpr int kRowsPerPass = 8;  // blockDim.y: each thread handles kTile / kRowsPerPass elements

__global__ void transpose_naive(const float* __restrict__ in, float* __restrict__ out, int rows, int cols) {
  const int c = blockIdx.x * kTile + threadIdx.x;
  const int r0 = blockIdx.y * kTile + threadIdx.y;
  if (c >= cols) return;
#pragma unroll
  for (int j = 0; j < kTile; j += kRowsPerPass) {
    const int r = r0 + j;
    if (r < rows) out[std::size_t(c) * rows + r] = in[std::size_t(r) * cols + c];
  }
}

// kPad = 1 adds a column; kSwizzle stores column x of row y at x ^ y (y, x < 32).
template <int kPad, bool kSwizzle>
__global__ void transpose_tiled(const float* __restrict__ in, float* __restrict__ out, int rows, int cols) {
  __shared__ float tile[kTile][kTile + kPad];
  const int bx = blockIdx.x * kTile, by = blockIdx.y * kTile;
  const int tx = threadIdx.x, ty = threadIdx.y;
  // Read a 32x32 tile of `in`: row by + y, column bx + tx (coalesced along tx).
#pragma unroll
  for (int j = 0; j < kTile; j += kRowsPerPass) {
    const int y = ty + j, r = by + y, c = bx + tx;
    if (r < rows && c < cols) tile[y][kSwizzle ? (tx ^ y) : tx] = in[std::size_t(r) * cols + c];
  }
  __syncthreads();
  // Write the transposed tile: out row bx + y (an input column), column by + tx (an input row).
#pragma unroll
  for (int j = 0; j < kTile; j += kRowsPerPass) {
    const int y = ty + j, orow = bx + y, ocol = by + tx;
    if (orow < cols && ocol < rows) out[std::size_t(orow) * rows + ocol] = tile[tx][kSwizzle ? (y ^ tx) : y];
  }
}

// ---- rungs 5 and 6: 64x64 tiles ------------------------------------------------------------------
constexpr int kBig = 64;

// Block (32, 8): thread (tx, ty) loads columns bx + tx + 32h (h < 2) of rows by + ty + 8j (j < 8).
__global__ void __launch_bounds__(256) transpose_tile64(const float* __restrict__ in, float* __restrict__ out, int rows,
                                                        int cols) {
  __shared__ float tile[kBig][kBig + 1];  // +1: column reads spread over all 32 banks
  const int bx = blockIdx.x * kBig, by = blockIdx.y * kBig;
  const int tx = threadIdx.x, ty = threadIdx.y;
  float v[2][8];
#pragma unroll
  for (int j = 0; j < 8; ++j)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = by + ty + 8 * j, c = bx + tx + 32 * h;
      v[h][j] = (r < rows && c < cols) ? in[std::size_t(r) * cols + c] : 0.f;
    }
#pragma unroll
  for (int j = 0; j < 8; ++j)
#pragma unroll
    for (int h = 0; h < 2; ++h) tile[ty + 8 * j][tx + 32 * h] = v[h][j];
  __syncthreads();
  // out row bx + y (an input column), column by + x (an input row) = tile[x][y].
#pragma unroll
  for (int j = 0; j < 8; ++j)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int y = ty + 8 * j, x = tx + 32 * h, orow = bx + y, ocol = by + x;
      if (orow < cols && ocol < rows) out[std::size_t(orow) * rows + ocol] = tile[x][y];
    }
}

// 256 threads, rows and cols multiples of 4. Load: thread t reads float4 t % 16 of tile row
// t / 16 + 16p (p < 4). Store: thread t writes float4 t % 16 (input rows 4q..4q+3) of out row
// t / 16 + 16p (an input column).
__global__ void __launch_bounds__(256) transpose_tile64_vec4(const float* __restrict__ in, float* __restrict__ out,
                                                             int rows, int cols) {
  __shared__ float tile[kBig][kBig + 1];
  const int bx = blockIdx.x * kBig, by = blockIdx.y * kBig;
  const int q = threadIdx.x % 16, t16 = threadIdx.x / 16;
  float4 v[4];
#pragma unroll
  for (int p = 0; p < 4; ++p) {
    const int r = by + t16 + 16 * p, c = bx + 4 * q;
    v[p] = (r < rows && c < cols) ? *reinterpret_cast<const float4*>(in + std::size_t(r) * cols + c)
                                  : make_float4(0.f, 0.f, 0.f, 0.f);
  }
#pragma unroll
  for (int p = 0; p < 4; ++p) {
    float* row = &tile[t16 + 16 * p][4 * q];
    row[0] = v[p].x, row[1] = v[p].y, row[2] = v[p].z, row[3] = v[p].w;
  }
  __syncthreads();
#pragma unroll
  for (int p = 0; p < 4; ++p) {
    const int y = t16 + 16 * p, orow = bx + y, ocol = by + 4 * q;
    if (orow < cols && ocol < rows)
      *reinterpret_cast<float4*>(out + std::size_t(orow) * rows + ocol) =
          make_float4(tile[4 * q][y], tile[4 * q + 1][y], tile[4 * q + 2][y], tile[4 * q + 3][y]);
  }
}

// Rungs 7-9: kR x 64 tiles (kR input rows, 64 input columns) whose output segments start on a
// 32-byte sector. Block (32, 8), grid ((cols+63)/64, (rows+7+kR-1)/kR): tile row t holds input row
// by - 8 + t (t < kR + 8), so each thread issues 2 x (kR + 8) / 8 loads before its shared-memory stores.
// The tile is dynamic shared memory (sector_smem_bytes): at kR = 256 it is 68 KB, past the 48 KB a
// static array may have.
constexpr int kHalo = 8;  // floats per 32-byte sector
constexpr std::size_t sector_smem_bytes(int rows_per_tile) {
  return std::size_t(rows_per_tile + kHalo) * (kBig + 1) * sizeof(float);
}
// kTiles > 1 (rung 10): a block walks kTiles column tiles of the same input rows, bx, bx + 64, ...; once
// a tile's values are in shared memory the registers take the next tile's loads, issued before this
// tile's stores, so the block has loads in flight while it stores (with kTiles = 1 it drains: all loads,
// barrier, all stores). Grid ((cols + 64 kTiles - 1) / (64 kTiles), as above); a block's last tiles may
// lie past `cols` (the test is uniform per block). Registers (sm_90a): 48 at kTiles = 1 (5 blocks of 256
// per SM), 64 at kTiles = 2 (4 blocks: the next tile's 34 values stay live through the stores); a
// minimum of 5 blocks per SM in __launch_bounds__ makes ptxas spill 76 bytes per thread instead.
template <int kR, int kTiles = 1>
__global__ void __launch_bounds__(256) transpose_sector(const float* __restrict__ in, float* __restrict__ out, int rows,
                                                        int cols) {
  extern __shared__ float smem[];
  auto tile = reinterpret_cast<float (*)[kBig + 1]>(smem);  // [kR + kHalo][kBig + 1]
  const int by = blockIdx.y * kR;
  const int tx = threadIdx.x, ty = threadIdx.y;
  constexpr int kLoadRows = (kR + kHalo) / 8;
  float v[2][kLoadRows];
  auto load = [&](int bx) {
#pragma unroll
    for (int j = 0; j < kLoadRows; ++j)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int r = by - kHalo + ty + 8 * j, c = bx + tx + 32 * h;
        v[h][j] = (r >= 0 && r < rows && c < cols) ? in[std::size_t(r) * cols + c] : 0.f;
      }
  };
  // Output row o = bx + y (uniform per warp), elements r = by - s + x, x < kR: sector-aligned, and the
  // segments of blocks by and by + kR meet exactly (kR is a whole number of sectors). by is a multiple
  // of 8, so s = (o * rows + by) % 8 = (o * (rows % 8)) % 8: no 64-bit product per row.
  const int rows8 = rows % kHalo;
  load(blockIdx.x * kTiles * kBig);
#pragma unroll
  for (int i = 0; i < kTiles; ++i) {
    const int bx = (blockIdx.x * kTiles + i) * kBig;
    if (bx >= cols) break;
    if (i > 0) __syncthreads();  // every warp's stores of the previous tile have read shared memory
#pragma unroll
    for (int j = 0; j < kLoadRows; ++j)
#pragma unroll
      for (int h = 0; h < 2; ++h) tile[ty + 8 * j][tx + 32 * h] = v[h][j];
    __syncthreads();
    if (i + 1 < kTiles && bx + kBig < cols) load(bx + kBig);  // in flight under the stores below
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int y = ty + 8 * j, o = bx + y;
      if (o >= cols) continue;
      const int s = (o * rows8) % kHalo;
      float* orow = out + std::size_t(o) * rows;
#pragma unroll
      for (int h = 0; h < kR / 32; ++h) {
        const int x = tx + 32 * h, r = by - s + x;
        if (r >= 0 && r < rows) orow[r] = tile[kHalo - s + x][y];
      }
    }
  }
}

struct TransposeRef {
  std::uint64_t seed;
  int rows, cols;
  __host__ __device__ float operator()(std::size_t i) const {  // i indexes out (cols x rows)
    const std::size_t c = i / rows, r = i % rows;
    return aipe::uniform_at(seed, r * cols + c, -1.f, 1.f);
  }
};
struct CopyRef {
  std::uint64_t seed;
  __host__ __device__ float operator()(std::size_t i) const { return aipe::uniform_at(seed, i, -1.f, 1.f); }
};

class Transpose final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch07/transpose",
            "Matrix transpose: naive, shared-memory tile, padded, swizzled, 64x64 tiles, against the copy ceiling",
            "A transpose reads rows and writes columns, so one side of a naive kernel is uncoalesced: each "
            "warp's store touches 32 separate 32-byte sectors. Staging a tile in shared memory makes both global "
            "sides coalesced but moves the problem into shared memory, where reading a column hits one bank 32 "
            "times. Padding each row by one float, or XOR-swizzling the column index, spreads a column over all "
            "32 banks. Larger 64x64 tiles keep more loads in flight per thread, and 16-byte vectors cut the "
            "instruction count where the row pitch keeps them aligned. The goal is the bandwidth of a plain copy "
            "of the same matrix.",
            {{.name = "rows", .def = 16384, .quick = 8192, .small = 1001, .help = "rows of the input matrix", .min = 1,
              .max = 65535 * kTile},
             {.name = "cols", .def = 16384, .quick = 8192, .small = 777, .help = "columns of the input matrix", .min = 1,
              .max = 65535 * kTile}},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    return {
        {.name = "naive",
         .summary = "read rows coalesced, write columns: every warp store touches 32 sectors",
         .launch = [this](cudaStream_t s) { launch(transpose_naive, s); }},
        {.name = "smem_tile",
         .summary = "32x32 tile in shared memory: both global sides coalesced, 32-way bank conflicts on the column read",
         .launch = [this](cudaStream_t s) { launch(transpose_tiled<0, false>, s); }},
        {.name = "padded",
         .summary = "tile[32][33]: one float of padding per row removes the bank conflicts",
         .launch = [this](cudaStream_t s) { launch(transpose_tiled<1, false>, s); }},
        {.name = "swizzled",
         .summary = "tile[32][32] with column x of row y stored at x ^ y: conflict-free, no padding",
         .launch = [this](cudaStream_t s) { launch(transpose_tiled<0, true>, s); }},
        {.name = "tile64",
         .summary = "64x64 tile, 16 plain 4-byte loads in flight per thread before the shared-memory stores: any row pitch",
         .launch = [this](cudaStream_t s) { launch64(false, s); }},
        {.name = "tile64_vec4",
         .summary = "the 64x64 tile with 16-byte float4 loads and stores where rows and cols are multiples of 4",
         .launch = [this](cudaStream_t s) { launch64(true, s); },
         .metrics = [this](double, std::map<std::string, double>& out) { out["vectorized"] = vectorizable() ? 1 : 0; }},
        {.name = "tile64_sector",
         .summary = "tile64 with each output segment shifted to start on a 32-byte sector: whole-sector stores at any pitch",
         .launch = [this](cudaStream_t s) { launch_sector<kBig>(s); }},
        {.name = "tile128_sector",
         .summary = "tile64_sector with 128-row tiles: half the halo re-reads, 34 loads in flight per thread",
         .launch = [this](cudaStream_t s) { launch_sector<2 * kBig>(s); }},
        {.name = "tile256_sector",
         .summary = "tile64_sector with 256-row tiles: a quarter of the halo re-reads, 66 loads in flight per thread",
         .launch = [this](cudaStream_t s) { launch_sector<4 * kBig>(s); }},
        {.name = "tile128_pipelined",
         .summary = "tile128_sector walking 2 column tiles per block: the next tile's loads in flight under this tile's stores",
         .launch = [this](cudaStream_t s) { launch_sector<2 * kBig, 2>(s); }},
        {.name = "memcpy",
         .summary = "cudaMemcpyAsync D2D of the same matrix: the copy ceiling (verified as a copy, not a transpose)",
         .launch = [this](cudaStream_t s) {
           AIPE_CUDA(cudaMemcpyAsync(out_.get(), in_.get(), in_.bytes(), cudaMemcpyDeviceToDevice, s));
         }},
    };
  }

  void setup(aipe::Context& ctx) override {
    rows_ = static_cast<int>(ctx.size("rows"));
    cols_ = static_cast<int>(ctx.size("cols"));
    const std::size_t n = std::size_t(rows_) * cols_;
    in_ = aipe::DeviceBuffer<float>(n);
    out_ = aipe::DeviceBuffer<float>(n);
    seed_ = aipe::sub_seed(ctx.seed(), 1);
    aipe::fill_uniform(in_.get(), n, seed_, -1.f, 1.f, ctx.stream());
    ctx.output(out_.get(), out_.bytes());
    // The 256-row sector tile needs more than the default 48 KB of dynamic shared memory.
    AIPE_CUDA(cudaFuncSetAttribute(transpose_sector<4 * kBig>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   static_cast<int>(sector_smem_bytes(4 * kBig))));
  }

  aipe::Work work() const override { return {2.0 * sizeof(float) * rows_ * double(cols_), 0, aipe::ComputeUnit::none}; }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    const std::size_t n = std::size_t(rows_) * cols_;
    const aipe::Tolerance exact = aipe::tolerance_for(aipe::DType::exact);
    if (ctx.variant() == "memcpy") return aipe::compare_on_device(n, out_.get(), CopyRef{seed_}, exact, ctx.stream());
    return aipe::compare_on_device(n, out_.get(), TransposeRef{seed_, rows_, cols_}, exact, ctx.stream());
  }

 private:
  // tile64_vec4 needs every row start 16-byte aligned on both sides; otherwise it runs tile64's kernel.
  bool vectorizable() const { return rows_ % 4 == 0 && cols_ % 4 == 0; }
  void launch64(bool vec, cudaStream_t s) {
    const dim3 grid((cols_ + kBig - 1) / kBig, (rows_ + kBig - 1) / kBig);
    if (vec && vectorizable()) transpose_tile64_vec4<<<grid, 256, 0, s>>>(in_.get(), out_.get(), rows_, cols_);
    else transpose_tile64<<<grid, dim3(32, 8), 0, s>>>(in_.get(), out_.get(), rows_, cols_);
    AIPE_CHECK_LAUNCH();
  }

  template <int kR, int kTiles = 1>
  void launch_sector(cudaStream_t s) {
    if (rows_ % kHalo == 0) return launch64(false, s);  // every output row starts on a sector: no shift
    // One more block row where the last segment, shifted back by up to 7, would stop short of `rows`.
    const dim3 grid((cols_ + kTiles * kBig - 1) / (kTiles * kBig), (rows_ + kHalo - 1 + kR - 1) / kR);
    transpose_sector<kR, kTiles>
        <<<grid, dim3(32, 8), sector_smem_bytes(kR), s>>>(in_.get(), out_.get(), rows_, cols_);
    AIPE_CHECK_LAUNCH();
  }

  void launch(void (*k)(const float*, float*, int, int), cudaStream_t s) {
    const dim3 grid((cols_ + kTile - 1) / kTile, (rows_ + kTile - 1) / kTile);
    k<<<grid, dim3(kTile, kRowsPerPass), 0, s>>>(in_.get(), out_.get(), rows_, cols_);
    AIPE_CHECK_LAUNCH();
  }

  int rows_ = 0, cols_ = 0;
  std::uint64_t seed_ = 0;
  aipe::DeviceBuffer<float> in_, out_;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(Transpose);
