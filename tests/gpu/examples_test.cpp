// Every registered example, every variant, at the small awkward sizes: verification must pass.
// A skip must carry a reason. Skipped as a whole (with the reason) where no GPU is usable.
#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

#include "aipe/device.hpp"
#include "aipe/registry.hpp"
#include "aipe/runner.hpp"

using namespace aipe;

namespace {

std::vector<std::string> ids() {
  std::vector<std::string> v;
  for (const auto& e : Registry::instance().entries()) v.push_back(e.info.id);
  return v;
}

class EveryExample : public ::testing::TestWithParam<std::string> {};

}  // namespace

TEST_P(EveryExample, VerifiesAtSmallAwkwardSize) {
  if (auto why = gpu_unavailable_reason()) GTEST_SKIP() << *why;
  const RegistryEntry* e = Registry::instance().find(GetParam());
  ASSERT_NE(e, nullptr);
  RunOptions o;
  o.preset = SizePreset::small;
  o.verify_only = true;
  o.seed = 0xC0FFEE ^ std::hash<std::string>{}(GetParam());  // fresh inputs per example, reproducible
  const RunReport r = run_examples({e}, o);
  ASSERT_EQ(r.results.size(), e->variant_names.size());
  for (const Result& res : r.results) {
    SCOPED_TRACE(res.variant);
    EXPECT_NE(res.status, Status::failed) << res.reason;
    if (res.status == Status::skipped) {
      EXPECT_FALSE(res.reason.empty());
      std::cout << "[ SKIPPED VARIANT ] " << res.example << " " << res.variant << ": " << res.reason << "\n";
    }
  }
}

// Verifies every rung of each example (no timing) at the small sizes with `sizes` overriding some axes:
// none may fail, and more than `min_verified` must run (the rest may skip with a reason).
namespace {
void verify_examples_at(std::initializer_list<const char*> ids, const std::map<std::string, std::int64_t>& sizes,
                        std::uint64_t salt, int min_verified, const std::vector<std::string>& variants = {}) {
  for (const char* id : ids) {
    SCOPED_TRACE(id);
    const RegistryEntry* e = Registry::instance().find(id);
    ASSERT_NE(e, nullptr);
    RunOptions o;
    o.preset = SizePreset::small;
    o.verify_only = true;
    o.seed = salt ^ std::hash<std::string>{}(id);
    for (const auto& [k, v] : sizes) o.sizes[k] = v;
    o.variants = variants;
    const RunReport r = run_examples({e}, o);
    ASSERT_EQ(r.results.size(), variants.empty() ? e->variant_names.size() : variants.size());
    int verified = 0;
    for (const Result& res : r.results) {
      SCOPED_TRACE(res.variant);
      EXPECT_NE(res.status, Status::failed) << res.reason;
      verified += res.status != Status::skipped;
    }
    EXPECT_GT(verified, min_verified);
  }
}
}  // namespace

// ch07's knob rungs: each knob setting is its own kernel (cache policy, loads per thread, 32 bytes
// per thread, slice shape, pipelined chunks per block), so each is verified, at an n that is no
// multiple of a chunk or a vector.
TEST(CopyLadderKnobs, EveryPolicyAndShapeVerifies) {
  if (auto why = gpu_unavailable_reason()) GTEST_SKIP() << *why;
  const std::vector<std::string> rungs = {"wide_chunks", "sliced", "pipelined", "pipelined_pairs"};
  for (int policy = 1; policy <= 4; ++policy)
    verify_examples_at({"ch07/copy_ladder"}, {{"chunk_policy", policy}}, 0xC0 + policy, 1, rungs);
  verify_examples_at({"ch07/copy_ladder"}, {{"chunk_pair32", 1}, {"chunk_kib", 64}, {"chunk_threads", 256}}, 0xC8, 1, rungs);
  verify_examples_at({"ch07/copy_ladder"}, {{"chunk_kib", 8}, {"chunk_threads", 512}, {"slice_unroll", 8},
                                            {"slice_blocks_per_sm", 1}, {"chunk_order", 1}}, 0xC9, 1, rungs);
  // 16 loads per thread at 768 threads (192 KiB per block); pipelined with 8 loads per thread at 512
  // threads, 3 consecutive chunks per block (the last block's run cut short by the array's end).
  verify_examples_at({"ch07/copy_ladder"}, {{"chunk_kib", 192}, {"chunk_threads", 768}, {"pipe_kib", 64},
                                            {"pipe_threads", 512}, {"pipe_chunks", 3}}, 0xCA, 2, rungs);
  // Pipelined with 2 loads per thread, one chunk per block (the loop's single-chunk path) and an n
  // smaller than one chunk (everything in the tail).
  verify_examples_at({"ch07/copy_ladder"}, {{"pipe_kib", 32}, {"pipe_chunks", 1}}, 0xCB, 2, rungs);
  verify_examples_at({"ch07/copy_ladder"}, {{"n", 4099}}, 0xCC, 2, rungs);
}

// tile64_vec4 runs its 16-byte kernel only when rows and cols are multiples of 4; the small size
// (1001 x 777) takes the scalar fallback, so this runs the vector path at sizes that are no tile multiple.
// The sector rungs shift each output segment by (o x rows) % 8 and read 8 halo rows: rows % 8 = 7 at
// two and a bit 128-row tiles (and two and a bit 256-row tiles at 519), cols one past a tile;
// rows % 8 = 0 takes tile64's kernel. tile128_pipelined walks 2 column tiles per block: at cols 65 and
// 200 every block has two (the last one partial at 65), at 131 the last block has one, at 7 one tile.
TEST(TransposeSector, VerifiesAtEveryShift) {
  if (auto why = gpu_unavailable_reason()) GTEST_SKIP() << *why;
  const std::vector<std::string> rungs = {"tile64_sector", "tile128_sector", "tile256_sector", "tile128_pipelined"};
  verify_examples_at({"ch07/transpose"}, {{"rows", 263}, {"cols", 65}}, 0x7C, 2, rungs);
  verify_examples_at({"ch07/transpose"}, {{"rows", 9}, {"cols", 131}}, 0x7D, 2, rungs);
  verify_examples_at({"ch07/transpose"}, {{"rows", 136}, {"cols", 7}}, 0x7E, 2, rungs);
  verify_examples_at({"ch07/transpose"}, {{"rows", 519}, {"cols", 200}}, 0x7F, 2, rungs);
}

TEST(TransposeVec4, VerifiesWhereRowsAndColsAreMultiplesOf4) {
  if (auto why = gpu_unavailable_reason()) GTEST_SKIP() << *why;
  verify_examples_at({"ch07/transpose"}, {{"rows", 1004}, {"cols", 780}}, 0x7A, 4);
  verify_examples_at({"ch07/transpose"}, {{"rows", 68}, {"cols", 4}}, 0x7B, 4);
}

// The GEMM epilogues have two paths: TMA stores (rows of C 16-byte aligned, N % 8 == 0, as at the small
// sizes) and stores from registers with scalar tails (any N). This runs the second at an odd N
// (neither TMA-storable nor pairwise-aligned rows, and not a tile multiple).
TEST(GemmEpilogues, VerifyAtOddN) {
  if (auto why = gpu_unavailable_reason()) GTEST_SKIP() << *why;
  verify_examples_at({"ch10/gemm_bf16", "ch10/gemm_fp8"}, {{"n", 389}}, 0x0DD, 2);
}

// The persistent GEMM rungs carry state from one tile to the next (the ring's stage and phase, and in
// epilogue_overlap the previous tile, stored under the next one's first K steps). At the small sizes every
// CTA gets at most one tile; here the grid walks 192 ragged tiles (M, N, K none a tile multiple), so
// most CTAs take a second one. For ch10/gemm_fp8 that is 96 pairs of tiles on at most 66 clusters: the
// second wave exists, and k_serpentine walks its K blocks backward (the ragged last one first). K = 208
// is two K blocks, fewer than the four boxes FP8's overlapped epilogue spreads over the next tile's first
// K blocks: the rest leave before the next tile is packed.
TEST(GemmPersistent, VerifyWithSeveralTilesPerCta) {
  if (auto why = gpu_unavailable_reason()) GTEST_SKIP() << *why;
  verify_examples_at({"ch10/gemm_bf16", "ch10/gemm_fp8"}, {{"m", 2000}, {"n", 3000}, {"k", 1008}}, 0x7113, 4);
  verify_examples_at({"ch10/gemm_fp8"}, {{"m", 2000}, {"n", 3000}, {"k", 208}}, 0x7114, 4);
}

// The stream-K rung of ch10/gemm_fp8 cuts the last units' K between clusters. Deep K on few tiles cuts
// each unit among ~17 clusters (one finisher adding 16 partial tiles); 4000 x 3000 x 1008 gives every
// cluster whole units first and then a stream-K range, with units cut once.
TEST(GemmStreamK, VerifyWithUnitsCutBetweenClusters) {
  if (auto why = gpu_unavailable_reason()) GTEST_SKIP() << *why;
  verify_examples_at({"ch10/gemm_fp8"}, {{"m", 300}, {"n", 500}, {"k", 8192}}, 0x5C, 4);
  verify_examples_at({"ch10/gemm_fp8"}, {{"m", 4000}, {"n", 3000}, {"k", 1008}}, 0x5D, 4);
}

// ch10/gemm_fp8_blockwise's schedule rungs on 128x256 tiles (pairs of them stacked in M, at most 66 clusters
// on an H200) and its 128x192 tiles, whose second weight block starts mid-tile on odd tile columns (at
// N = 3000 the last, partial tile column is one; at N = 500 it is even and its second weight block does not
// exist). K is a multiple of 128 (one scale per K block); M and N are not tile multiples.
//  - 4000 x 3000 x 1024: 16 x 12 = 192 units, 2.9 waves: k_serpentine walks every cluster's second unit
//    backward (its consumers must pick each K block's scales by the block the slot holds); stream_k gives
//    every cluster one whole unit, then cuts the other 126 units' 8 K blocks into ranges of 15-16.
//  - 300 x 500 x 8192: 4 units of 64 K blocks on all clusters: each unit cut among ~16 clusters, the
//    finisher adding ~15 partial tiles, each piece promoted with its own K blocks' scales.
//  - 300 x 500 x 256 and x 128: K blocks fewer than the split (2 and 1 per unit, 8 and 4 in all on ~66
//    clusters): most clusters get no K block, a unit is cut into single K blocks or not at all.
TEST(GemmBlockwiseSchedules, VerifyWithSeveralUnitsPerClusterAndCutK) {
  if (auto why = gpu_unavailable_reason()) GTEST_SKIP() << *why;
  const std::vector<std::string> rungs = {"tile_128x256", "stream_k", "k_serpentine", "tile_128x192"};
  verify_examples_at({"ch10/gemm_fp8_blockwise"}, {{"m", 4000}, {"n", 3000}, {"k", 1024}}, 0xB5, 3, rungs);
  verify_examples_at({"ch10/gemm_fp8_blockwise"}, {{"m", 300}, {"n", 500}, {"k", 8192}}, 0xB6, 3, rungs);
  verify_examples_at({"ch10/gemm_fp8_blockwise"}, {{"m", 300}, {"n", 500}, {"k", 256}}, 0xB7, 3, rungs);
  verify_examples_at({"ch10/gemm_fp8_blockwise"}, {{"m", 300}, {"n", 500}, {"k", 128}}, 0xB8, 3, rungs);
}

// ch10/gemm_bf16_skinny's cluster rung pairs CTAs along N: at N = 1100 there are 9 CTAs of 128 rows, so
// the grid is rounded up to 10 and the last CTA lies wholly past N (it loads zeros, shares its half of the
// token tile, stores nothing). M = 200 and 100 take the 256- and 128-row token tiles (the small size,
// M = 37, the 64-row one), each split between the two CTAs of a pair. split_k_dsmem halves K between the
// two CTAs of a cluster and sums the halves in shared memory: K = 1288 is 21 K tiles (halves of 11 and
// 10, the last one ragged). library is aipe::kernels::gemm's dispatch (the skinny kernel at M = 37, the square
// one at 100 and 200). Our rungs only: at these shapes cuBLAS's own choice of kernel misses the BF16
// tolerance on a few elements (the harness reports it; docs/ch10.md), which is not what this test is about.
TEST(GemmSkinny, VerifyWithAnUnpairedCtaAndEveryTokenTile) {
  if (auto why = gpu_unavailable_reason()) GTEST_SKIP() << *why;
  const std::vector<std::string> ours = {"swap_ab", "swap_ab_split_k", "cluster_multicast", "split_k_dsmem",
                                         "library"};
  verify_examples_at({"ch10/gemm_bf16_skinny"}, {{"m", 200}, {"n", 1100}, {"k", 1000}}, 0x5E, 3, ours);
  verify_examples_at({"ch10/gemm_bf16_skinny"}, {{"m", 100}, {"n", 1100}, {"k", 1000}}, 0x5F, 3, ours);
  verify_examples_at({"ch10/gemm_bf16_skinny"}, {{"m", 37}, {"n", 1000}, {"k", 1288}}, 0x60, 3, ours);
}

INSTANTIATE_TEST_SUITE_P(Registry, EveryExample, ::testing::ValuesIn(ids()), [](const auto& info) {
  std::string n = info.param;
  for (char& c : n)
    if (c == '/') c = '_';
  return n;
});
