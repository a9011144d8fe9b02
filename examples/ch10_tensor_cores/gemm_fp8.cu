// ch10/gemm_fp8: FP8 (E4M3) GEMM with per-tensor scales, FP32 accumulate, BF16 out, on Hopper tensor cores.
//
// Ladder:
//   1 simt        CUDA cores: 64x64 tiles, E4M3 dequantized to FP32 into shared memory, 4x4 outputs a thread
//   2 wgmma_ws    TMA + WGMMA (QGMMA in SASS), warp-specialized: a producer warpgroup streams 128x128 A and
//                 256x128 B K-blocks (128-byte swizzle) through a 4-stage mbarrier ring; two consumer
//                 warpgroups each run m64n256k32 wgmma on 64 rows; setmaxnreg moves registers to them; one CTA
//                 per 128x256 tile
//   3 persistent  one CTA per SM walking tiles in bands of 8 tile rows (L2 reuse of A and B panels); the
//                 producer prefetches the next tile while the consumers store the last one
//   4 cluster_multicast
//                 clusters of 2 CTAs on vertically adjacent tiles: each loads half of the shared 256x128 B
//                 block and multicasts it to both (TMA .multicast::cluster), halving B's L2 -> SM traffic; a
//                 slot is refilled only when the consumers of both CTAs released it (remote mbarrier arrives)
//   5 staged_epilogue
//                 the epilogue goes registers -> shared memory (row-swizzled 16-byte chunks) -> global in 16-byte
//                 stores covering whole 256-byte row segments, 128 columns at a time, instead of 4-byte stores
//                 straight from the accumulator fragment (8 rows x 16 bytes per warp instruction)
//   6 tma_epilogue
//                 registers -> shared memory in 64 x 64 BF16 boxes (128-byte swizzle, conflict-free 4-byte
//                 writes) -> TMA store (cp.async.bulk.tensor, one thread issues). The consumer warpgroups
//                 go back to the next tile's wgmma as soon as a box is in shared memory; the TMA unit writes
//                 it to global memory meanwhile, and clips the edges of C. Two 8 KiB slots per warpgroup
//                 alternate: a slot is rewritten once the store of the box before last has read it.
//   7 epilogue_overlap
//                 rung 6 one tile later: after its last K block a consumer warpgroup packs the tile to BF16 pairs
//                 (64 of its registers; the FP32 accumulator is free again), issues the next tile's first K
//                 block to the tensor cores, and only then writes the packed tile to shared memory and hands
//                 it to TMA, one 64 x 64 box under each of the next tile's first four K blocks. In rung 6 the
//                 tensor cores idle while both warpgroups write; writing all four boxes at once would make
//                 the third wait for TMA to finish reading the first (two 8 KiB slots per warpgroup).
//   8 stream_k    rung 6 with a stream-K tail: 2,048 tiles (1,024 pairs) on 66 clusters are 15.5 waves, so the
//                 last wave leaves half the SMs idle. The last 1.5 waves' units are not handed out whole:
//                 their K blocks, unit after unit, are cut into 66 equal ranges, one per cluster after its
//                 14 whole waves. A unit cut between two clusters is finished by the one holding its first
//                 K block, which adds the other's FP32 partial tile (left in global memory behind a
//                 release/acquire flag) before its epilogue. Every SM works until the end: 3% fewer K
//                 blocks on the longest SM. It does not pay on this H100 (docs/ch10-fp8.md): the clusters
//                 now stream different K offsets at once, which costs DRAM reads, and at the 700 W cap the
//                 idle SMs of the plain last wave were not lost anyway, they let the busy ones clock higher.
//                 Built on rung 6, not 7: rung 7's parked BF16 tile leaves no registers for the schedule.
//   9 k_serpentine
//                 rung 7 with the K order of every other wave reversed. The 66 clusters of a wave start
//                 together and walk K in step, so one DRAM read of a K block serves a band's clusters; the
//                 next wave needs the same A panels (same band, next columns) from K block 0 again, which
//                 left L2 long ago. Walking K backward on a CTA's odd units (the producer's TMA coordinates
//                 only; the sum does not care about the order) starts each wave on the K blocks the last one
//                 read most recently, still in L2. DRAM traffic drops by about 12% at 8192^3 (docs/ch10-fp8.md).
//  10 cublaslt    cuBLASLt FP8 matmul, per-tensor scales, fast accumulation (the same numerics as ours)
//
// Problem, reference, tolerance and work model: gemm_fp8_common.cuh. Layout "TN": A M x K and B N x K,
// both K-major (Hopper FP8 wgmma reads only K-major operands).
// Napkin math at 8192^3: 1.1 PFLOP of work; 192 MB cross DRAM at the minimum (A, B: 64 MB each; C: 128 MB),
// so the intensity is ~5,700 FLOP/B: far right of the ridge (~590 FLOP/B for 1979 TFLOP/s over 3.35 TB/s):
// compute-bound. 2,048 tiles of 128x256 over 132 SMs = 15.5 waves.
// The per-tensor kernel accumulates each tile's whole K inside the tensor cores, which is what cuBLASLt
// calls fast accumulation; gemm_fp8_blockwise promotes every 128 K to CUDA-core FP32 instead.
#include "gemm_fp8_common.cuh"
#include "aipe/registry.hpp"

namespace {

using aipe::fp8::Scaling;

class GemmFp8 final : public aipe::fp8::Fp8GemmProblem<Scaling::tensor> {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch10/gemm_fp8",
            "FP8 E4M3 GEMM with per-tensor scales: CUDA cores, warp-specialized TMA + WGMMA, persistent, cuBLASLt",
            "FP8 halves the bytes of BF16 and doubles the tensor-core rate (about 1,979 dense TFLOP/s on an H100 "
            "SXM). Only the Hopper path reaches it: wgmma with E4M3 operands (QGMMA in SASS) fed by TMA into "
            "128-byte-swizzled shared memory, a producer warpgroup that keeps the loads ahead through an mbarrier "
            "ring, and consumer warpgroups that own the accumulators. A persistent, L2-aware tile order is the last "
            "step to the library. The scales cost nothing here: one multiply per output in the epilogue.",
            axes(),
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    auto v = shared_rungs("CUDA cores: E4M3 dequantized to FP32 in shared memory, 4x4 outputs per thread", "wgmma_ws",
                          "TMA + m64n256k32 E4M3 wgmma, producer/consumer warpgroups, 4-stage mbarrier ring",
                          "one CTA per SM, tiles in bands of 8 rows for L2 reuse, loads run ahead across tiles",
                          "clusters of 2 CTAs share the B tile through TMA multicast (persistent, bands of 8 pairs)");
    v.push_back(hopper("epilogue_overlap",
                       "the finished tile waits in registers as BF16 and leaves one box under each of the next tile's first four K blocks",
                       [this](cudaStream_t s) { run_epilogue_overlap(s); }, [this] { return epilogue_overlap_skip(); }));
    v.push_back(hopper("stream_k",
                       "rung 6 with the last 1.5 waves' K blocks split evenly over all clusters (cut tiles summed in global memory)",
                       [this](cudaStream_t s) { run_stream_k(s); }, [this] { return stream_k_skip(); }));
    v.push_back(hopper("k_serpentine",
                       "rung 7 with odd waves walking K backward: a wave starts on the K blocks still in L2",
                       [this](cudaStream_t s) { run_k_serpentine(s); }, [this] { return k_serpentine_skip(); }));
    v.push_back({.name = "cublaslt",
                 .summary = "cuBLASLt FP8, per-tensor scales, fast accumulation, top heuristic",
                 .launch = [this](cudaStream_t s) { run_cublaslt(s); },
                 .skip_if = [this] { return cublaslt_skip(); }});
    return v;
  }
};

}  // namespace

AIPE_REGISTER_EXAMPLE(GemmFp8);
