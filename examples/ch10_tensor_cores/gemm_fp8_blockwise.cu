// ch10/gemm_fp8_blockwise: FP8 (E4M3) GEMM with DeepSeek-V3 fine-grained scales: one FP32 scale per
// 1x128 block of the activations A and per 128x128 block of the weights B, applied to each 128-deep
// K block's partial product when it is promoted into the FP32 accumulator.
//
// Ladder:
//   1 simt            CUDA cores: 64x64 tiles, each E4M3 element dequantized with its block scale into FP32
//   2 wgmma_promote   warp-specialized TMA + WGMMA (QGMMA): per 128-deep K block, 4 m64n128k32 wgmma into a
//                     fresh FP32 register tile, then acc += part * sa(row, kb) * sb(nb, kb) on the CUDA cores
//                     (the DeepSeek-V3 recipe: it also bounds the tensor cores' limited-precision accumulation
//                     to 128 terms); 128x128 tiles (one weight scale per tile and K block), 6-stage ring
//   3 persistent      one CTA per SM, tiles in bands of 8 rows; two consumer warpgroups interleave: while one
//                     promotes, the other's wgmma keeps the tensor cores busy
//   4 cluster_multicast  clusters of 2 CTAs share the 128x128 B block through TMA multicast
//   5 staged_epilogue    the epilogue through shared memory, 16-byte coalesced stores (as in gemm_fp8)
//   6 tma_epilogue       the epilogue through shared memory and TMA stores (as in gemm_fp8)
//   7 pipelined_promotion
//                        rung 6 with two partial register tiles per warpgroup (acc + 2 x 64 = 192 registers):
//                        K block kb+1's four wgmma are issued before K block kb is waited for and promoted,
//                        so the tensor cores always have this warpgroup's next group queued while its CUDA
//                        cores promote (wgmma.wait_group 1 instead of 0). Rungs 2-6 wait for each group and
//                        promote with the tensor cores idle unless the other warpgroup happens to fill them.
//   8 tile_128x256     rung 6 on 128x256 tiles: a tile now spans two 128-wide weight blocks, so each K block's
//                        wgmma runs per 128-column half (m64n128k32 into one 64-register partial tile) and
//                        each half is promoted with its own weight scale into its half of the m64n256
//                        accumulator (acc 128 + partial 64 registers). Each A byte loaded from L2 now feeds
//                        256 columns instead of 128: at 128x128 the FP8 tensor cores want ~48 bytes per clock
//                        per SM from L2 (16 KiB of A + 8 KiB of multicast B per 512-clock K block); at
//                        128x256, 32. Rungs 7 and 8 also load each K block's scales one K block ahead, so
//                        the load latency hides behind a K block of wgmma instead of stalling the promotion.
//   9 stream_k         rung 8 with a stream-K tail: at 8192^3 the 128x256 tiles in pairs stacked in M are
//                        32 x 32 = 1024 units on 66 clusters (132 SMs) = 15.5 waves, so the 16th wave runs
//                        with 48% of the SMs idle (~3% of the run). The last partial wave plus one whole wave
//                        (34 + 66 = 100 units, 6,400 K blocks) are instead cut into 66 contiguous ranges of
//                        96-97 K blocks: every cluster ends within one K block of the others. Block scales
//                        allow the cut: each piece promotes its own K blocks with their own scales into plain
//                        FP32, and the finisher (the piece holding K block 0) adds the other pieces' FP32
//                        tiles through L2 (at most one 64 KiB partial tile per warpgroup: 16.5 MiB written
//                        and read once per run, against 4 GiB of operand tiles streamed from L2 to the SMs).
//  10 k_serpentine     rung 8 with odd waves walking K backward: the wave before read K blocks 63, 62, ...
//                        last, so a wave starts on A and B panels still in L2 instead of the ones evicted
//                        first (the per-tensor ladder's rung 9). The consumers promote each slot with the
//                        scales of the K block it holds (ConsumerRing::k_block), so the order is free.
//  11 tile_128x192     rung 8's schedule on 128x192 tiles, a width that is not a power of two (DeepGEMM picks
//                        its BLOCK_N so): 43 tile columns (the last two thirds used) x 32 pairs = 1376 units
//                        on 66 clusters = 20.85 waves, 98.5% of the last-wave-padded work useful, against
//                        rung 8's 15.5 waves and 97.0%. A tile spans one and a half weight blocks (the second
//                        starts at tile column 128 on even tiles, 64 on odd ones), so each K block is one
//                        m64n192k32 chain and one wgmma wait (rung 8: two, one per 128-column half), then
//                        promoted with the weight scale of each 8-column group's block (acc 96 + partial 96
//                        registers). L2 -> SM: 16 KiB of A + 12 KiB of multicast B per 768-clock K block =
//                        37 bytes per clock (rung 8: 32, 128x128: 48). 4 stages of 40 KiB.
//  12 cublaslt        cuBLASLt FP8 with A scale mode BLK128x128_32F (our B) and B scale mode VEC128_32F (our A)
//
// Problem, reference, tolerance and work model: gemm_fp8_common.cuh. k must be a multiple of 128.
// Napkin math at 8192^3 as in gemm_fp8, plus the scales: 64 x 8192 + 64 x 64 floats (2 MB): noise.
// The promotion costs 2 FMAs per accumulator per K block on the CUDA cores (64 per thread per 128-deep block).
#include "gemm_fp8_common.cuh"
#include "aipe/registry.hpp"

namespace {

using aipe::fp8::Scaling;

class GemmFp8Blockwise final : public aipe::fp8::Fp8GemmProblem<Scaling::block> {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch10/gemm_fp8_blockwise",
            "FP8 GEMM with 1x128 / 128x128 block scales (DeepSeek-V3): per-K-block promotion vs cuBLASLt",
            "Per-tensor scales let one outlier flatten a whole tensor's resolution; DeepSeek-V3 scales each 1x128 "
            "slice of the activations and each 128x128 block of the weights instead. The GEMM must then apply two "
            "scales per 128-deep K block: the kernel multiplies each block into a fresh FP32 register tile with "
            "wgmma and promotes it into the accumulator on the CUDA cores, which also caps how many terms the "
            "tensor cores' reduced-precision accumulator ever adds. The ladder then keeps the tensor cores fed during "
            "the promotion: a second partial tile so the next K block's wgmma is queued, scale loads one K block "
            "ahead, and 128x256 tiles that promote one 128-column weight block at a time. Promoted sums are plain FP32, "
            "so a stream-K tail may cut a tile's K between SMs and the K serpentine may walk it backward.",
            axes(),
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    auto v = shared_rungs("CUDA cores: E4M3 dequantized with its block scales to FP32 in shared memory", "wgmma_promote",
                          "TMA + m64n128k32 E4M3 wgmma per K block, promoted with its scales into FP32",
                          "one CTA per SM, tiles in bands of 8 rows, loads run ahead across tiles",
                          "clusters of 2 CTAs share the B tile through TMA multicast (persistent)");
    v.push_back(hopper("pipelined_promotion",
                       "two partial tiles: K block kb+1's wgmma runs while K block kb is promoted with its scales",
                       [this](cudaStream_t s) { run_pipelined_promotion(s); },
                       [this] { return pipelined_promotion_skip(); }));
    v.push_back(hopper("tile_128x256",
                       "128x256 tiles over two weight blocks, each K block promoted one 128-column half at a time",
                       [this](cudaStream_t s) { run_wide_tile(s); }, [this] { return wide_tile_skip(); }));
    v.push_back(hopper("stream_k",
                       "rung 8 with the last 1.5 waves' K blocks split evenly over all clusters (each piece promoted "
                       "with its own scales, the FP32 pieces summed in global memory)",
                       [this](cudaStream_t s) { run_stream_k(s); }, [this] { return stream_k_skip(); }));
    v.push_back(hopper("k_serpentine",
                       "rung 8 with odd waves walking K backward, each slot promoted with the scales of the K block it holds",
                       [this](cudaStream_t s) { run_k_serpentine(s); }, [this] { return k_serpentine_skip(); }));
    v.push_back(hopper("tile_128x192",
                       "128x192 tiles (wave-balanced width): one wgmma chain and one wait per K block, the weight "
                       "scale picked per 8-column group",
                       [this](cudaStream_t s) { run_tile_192(s); }, [this] { return tile_192_skip(); }));
    v.push_back({.name = "cublaslt",
                 .summary = "cuBLASLt FP8, BLK128x128 (weights) and VEC128 (activations) scale modes",
                 .launch = [this](cudaStream_t s) { run_cublaslt(s); },
                 .skip_if = [this] { return cublaslt_skip(); }});
    return v;
  }
};

}  // namespace

AIPE_REGISTER_EXAMPLE(GemmFp8Blockwise);
