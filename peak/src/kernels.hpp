// Launchers of the measurement kernels of `aipe peak` (kernels.cu). Internal to peak/.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace aipe::peak::kern {

// Load/store cache policy of the streaming kernels.
enum class Hint {
  plain,      // ld.global / st.global
  streaming,  // ld.global.cs / st.global.cs: evict-first, the data is touched once
  nc_l2_256,  // ld.global.nc.L1::no_allocate.L2::256B (read-only path, 256 B L2 prefetch) / st.global.cs
  evict_first,  // ld.global / st.global.L2::cache_hint under an L2 evict-first createpolicy
};
const char* to_string(Hint h);

// A streaming-kernel configuration. persistent: grid = blocks_per_sm x SMs, grid-stride over chunks
// of unroll x threads 16-byte vectors; otherwise one chunk per block.
struct StreamConfig {
  int threads = 256;
  int blocks_per_sm = 8;
  int unroll = 4;
  Hint hint = Hint::plain;
  bool persistent = true;
  // Copy on a persistent grid only: two register sets per thread, the loads of a block's next chunk
  // issued before the stores of this one (ch07/copy_ladder's rung pipelined). unroll 8 allows at most
  // 512 threads (16 float4 of data per thread).
  bool pipelined = false;
  std::string describe() const;
};

// The SM copy technique that ch07/copy_ladder's sweep against cudaMemcpy found best (its rung
// wide_chunks: one block per contiguous chunk of threads x unroll x 16 B, all loads issued before the
// stores; on the H200 at ee7af80 128 KiB x 1024 threads, 0.984x memcpy in the same run). `aipe peak`
// always tries it, first; when a sweep finds a better technique, this one constant changes
// (docs/peak.md keeps the sweep that chose it).
constexpr StreamConfig kCopyWinner{1024, 0, 8, Hint::plain, false};
// The pipelined copies tried beside it (persistent, two register sets: the ladder's rung pipelined).
constexpr StreamConfig kCopyPipelined[] = {
    {1024, 0, 2, Hint::plain, true, true}, {1024, 0, 4, Hint::plain, true, true}, {512, 0, 8, Hint::plain, true, true}};

// Which streaming kernel a configuration is for.
enum class Op { copy, read, write };
// Blocks of this configuration that fit on one SM (occupancy API): a persistent grid with
// blocks_per_sm = 0 takes this many per SM.
int resident_blocks(Op op, const StreamConfig& c);
// Grid the launchers use for a configuration and a size in 16-byte vectors.
unsigned grid_for(const StreamConfig& c, std::size_t n_vec, int sm_count);

// dst = src, n_vec 16-byte vectors.
void copy(const StreamConfig& c, const void* src, void* dst, std::size_t n_vec, int sm_count, cudaStream_t s);
// TMA bulk copy (sm_90): `stages` tiles of `tile` bytes in flight per block, one thread per block
// driving cp.async.bulk loads (mbarrier) and bulk stores. bytes a multiple of 16. *err set to 1 when a
// wait timed out, 2 when built without sm_90.
struct BulkConfig {
  int stages = 4;
  int tile = 32 * 1024;
  int blocks_per_sm = 1;
  std::string describe() const;
};
int bulk_resident_blocks(const BulkConfig& c);  // also raises the kernel's dynamic shared-memory limit
void bulk_copy(const BulkConfig& c, const void* src, void* dst, std::size_t bytes, int sm_count, int* err, cudaStream_t s);

// Sums src as floats; each block writes its partial sum to partial[blockIdx.x] (grid_for() entries).
void read(const StreamConfig& c, const void* src, std::size_t n_vec, float* partial, int sm_count, cudaStream_t s);
// dst[i] = pattern(i, seed) as 4 x uint32 per vector: {i, seed, ~i, i ^ seed}.
void write(const StreamConfig& c, void* dst, std::size_t n_vec, std::uint32_t seed, int sm_count, cudaStream_t s);

// Working-set sweep: `grid` blocks of `threads`, each reading `chunks_per_block` chunks of
// (4 x threads) vectors from a window of the n_vec-vector set that starts at block b x n_vec / grid
// and wraps. Requires n_vec a power of two or n_vec >= 4 x threads.
void sweep_read(const void* buf, std::uint32_t n_vec, unsigned grid, int threads, std::uint32_t chunks_per_block,
                float* partial, cudaStream_t s);

// Shared memory: each thread reads `iters` x 8 16-byte vectors from a 32 KiB buffer, conflict-free.
// Bytes read = grid x threads x iters x 8 x 16.
void smem_read(unsigned grid, int threads, int iters, std::uint32_t* out, cudaStream_t s);

// FMA throughput: grid x threads threads, each running `chains` independent FMA chains for `iters`
// steps (FLOPs = 2 x chains x iters x threads). T = float or double.
void fma_f32(unsigned grid, int threads, int iters, float* out, cudaStream_t s);
void fma_f64(unsigned grid, int threads, int iters, double* out, cudaStream_t s);
constexpr int kFmaChains = 8;

// Pointer chase, one thread: p = *p for `hops` hops after `warm` untimed hops. out = {cycles, ns, p}.
enum class ChaseLoad { ca, cg };  // L1-cached loads, or L2-only (bypassing L1)
void chase(const void* start, int warm, int hops, ChaseLoad ld, unsigned long long* out, cudaStream_t s);
// Links lines into a cycle: line i's first 8 bytes point at line perm[i] (addresses relative to base).
void build_chase(void* base, std::size_t line_bytes, const std::uint32_t* perm_dev, std::size_t lines, cudaStream_t s);

// Random, never-all-zero tensor-core inputs the core's fill_uniform has no overload for.
void fill_fp8_e4m3(void* p, std::size_t n, std::uint64_t seed, cudaStream_t s);  // uniform in [-1, 1)
void fill_int8(void* p, std::size_t n, std::uint64_t seed, cudaStream_t s);      // in [-7, 7] \ {0}
// The value fill_int8 puts at index i (for host-side checks).
int int8_at(std::uint64_t seed, std::size_t i);

}  // namespace aipe::peak::kern
