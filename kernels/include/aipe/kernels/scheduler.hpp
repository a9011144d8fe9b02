// Persistent tile scheduling for the GEMMs (host and device code: the kernels walk these, the CPU tests
// tests/kernels/scheduler_test.cpp check their invariants):
//   TileRaster      the order of a grid's tiles: row by row, column by column, or grouped bands that keep
//                   the CTAs resident at one time on a few A and B panels (L2 reuse)
//   SplitTailPlan   whole-K work items for the full waves of a persistent grid, the tail units cut into a
//                   few K ranges each (finished by whoever arrives last: no co-residency assumed)
//   StreamKSchedule data-parallel waves plus a stream-K tail of evenly spread K iterations (co-resident grid)
//   GroupedTiles    a list of problems (M_i, N, K) with ragged M, as a grouped / MoE GEMM sees them: one
//                   tile index space over all of them, located back to (problem, tile row, tile column)
// A worker is a CTA, or a cluster of CTAs that moves as one; a unit is what one worker computes at a time
// (a tile, or CM tiles stacked in M for a cluster of CM CTAs).
#pragma once

#include <vector>

#include "aipe/hd.hpp"

namespace aipe::kernels {

// ---------------------------------------------------------------------------------------------
// Raster order
// ---------------------------------------------------------------------------------------------

struct TileRaster {
  int tiles_m = 0, tiles_n = 0;
  // > 0: bands of `group` tile rows, walked down M first inside a band, then across N, so the workers
  // running at the same time share a few A row panels and B column panels, which then stay in L2.
  // 0: no bands; m_fastest picks column by column (true) or row by row (false).
  int group = 0;
  bool m_fastest = false;

  AIPE_HD int tiles() const { return tiles_m * tiles_n; }
  AIPE_HD void operator()(int u, int& tm, int& tn) const {
    if (group <= 0) {
      if (m_fastest) {
        tm = u % tiles_m;
        tn = u / tiles_m;
      } else {
        tm = u / tiles_n;
        tn = u % tiles_n;
      }
      return;
    }
    const int per_band = group * tiles_n;
    const int band = u / per_band, first = band * group;
    const int rows = tiles_m - first < group ? tiles_m - first : group;
    const int r = u % per_band;
    tm = first + r % rows;
    tn = r / rows;
  }
};

// ---------------------------------------------------------------------------------------------
// Split tail
// ---------------------------------------------------------------------------------------------

// Work items of a persistent kernel. `units` units; the first `full_units` (whole waves of the grid) are one
// item each, over all of K. The remaining tail units would fill only part of a last wave, so each is cut into
// `splits` items along K (kt_per_split K tiles each): the grid then finishes in ceil(tail * splits / workers)
// / splits of a wave instead of a whole one. The consumers of a split tile write FP32 partials to `ws`; the
// last to finish (an atomic counter per tile) adds them up and stores C. Nobody waits for anybody, so no
// co-residency assumption is needed for correctness.
struct SplitTailPlan {
  int units = 0, full_units = 0, splits = 1, kt_per_split = 0, items = 0;
  float* ws = nullptr;      // the kernel's partial tiles, laid out by the kernel
  int* counters = nullptr;  // one per split tile (and CTA / consumer as the kernel needs), zero between launches
};

struct SplitItem {
  int unit, kb, ke, split, tail;  // K tiles [kb, ke) of `unit`; split / tail index = -1 for whole-K items
};
AIPE_HD SplitItem split_item(const SplitTailPlan& p, int it, int ktiles) {
  if (it < p.full_units || p.splits == 1) return {it, 0, ktiles, -1, -1};
  const int t = it - p.full_units, tu = t / p.splits, j = t % p.splits;
  const int ke = (j + 1) * p.kt_per_split;
  return {p.full_units + tu, j * p.kt_per_split, ke < ktiles ? ke : ktiles, j, tu};
}

// The plan for `units` units on `workers` resident workers over `ktiles` K tiles: the split count in
// 2..max_splits (each split at least min_kt K tiles) that ends the last wave soonest, or no split (every
// unit whole) when none does better than one whole last wave. ws / counters are left for the caller.
SplitTailPlan plan_split_tail(int units, int workers, int ktiles, int max_splits = 4, int min_kt = 4);

// ---------------------------------------------------------------------------------------------
// Stream-K
// ---------------------------------------------------------------------------------------------

// What a persistent worker computes next: K blocks [kb0, kb1) of work unit `unit`. kb0 == 0 && kb1 == nk:
// the whole unit, stored by this worker alone.
struct TileWork {
  int unit = 0, kb0 = 0, kb1 = 0;
  friend bool operator==(const TileWork&, const TileWork&) = default;
};

// A persistent GEMM's tile schedule with an optional stream-K tail (Osama et al., "Stream-K: work-centric
// parallel decomposition for dense matrix multiplication on the GPU", PPoPP 2023).
// Units in the order a persistent grid of `workers` walks them: unit w, w + workers, ... (the
// data-parallel part). With stream_k, the units of the last partial wave plus one full wave (all units,
// when there are fewer than workers) are not handed out whole: their K iterations, unit after unit, are
// cut into `workers` contiguous ranges whose lengths differ by at most one, one per worker, after its
// whole units. 2,048 tiles on 132 SMs are then 14 whole waves plus 1.52 waves' worth of K iterations on
// every SM, instead of 16 waves of which the last leaves 48% of the SMs idle. (One wave more than the
// remainder keeps every range at least nk long, so a unit is cut at most once whenever there is a whole
// wave: a remainder of one unit alone would otherwise be cut into `workers` slivers.)
// A unit cut between workers is finished by the worker holding its K block 0 (the last piece of that
// worker's range): it adds the partial tiles the others left. Only the first piece of a range can start
// after K block 0, so each worker leaves at most one partial tile, and leaves it before it waits for any.
// The hand-over of partial tiles on the device: aipe/kernels/stream_k.cuh.
struct StreamKSchedule {
  int nk = 0, worker = 0, workers = 1, dp_units = 0;
  int sk_q = 0, sk_r = 0;  // K iterations of the stream-K units = sk_q * workers + sk_r
  int next_dp = 0, next_sk = 0, sk_end = 0;

  AIPE_HD StreamKSchedule(int num_units, int nk_, int worker_, int workers_, bool stream_k)
      : nk(nk_), worker(worker_), workers(workers_), dp_units(num_units), next_dp(worker_) {
    const int rem = num_units % workers;
    const int sk_units = num_units >= workers ? rem + workers : rem;
    // (From 2^31 K iterations on, the tail stays data-parallel: the ranges are kept in 32 bits.)
    if (stream_k && nk > 0 && rem != 0 && static_cast<long long>(sk_units) * nk < (1ll << 31)) {
      dp_units = num_units - sk_units;
      const int iters = sk_units * nk;
      sk_q = iters / workers;
      sk_r = iters % workers;
      next_sk = begin(worker);
      sk_end = begin(worker + 1);
    }
  }
  // First stream-K iteration of worker w (w == workers: the end of the last range); the first sk_r
  // ranges are one iteration longer.
  AIPE_HD int begin(int w) const { return w * sk_q + (w < sk_r ? w : sk_r); }
  AIPE_HD bool next(TileWork& w) {
    if (next_dp < dp_units) {
      w = {next_dp, 0, nk};
      next_dp += workers;
      return true;
    }
    if (next_sk >= sk_end) return false;
    const int u = next_sk / nk, unit_begin = u * nk;
    const int end = sk_end < unit_begin + nk ? sk_end : unit_begin + nk;
    w = {dp_units + u, next_sk - unit_begin, end - unit_begin};
    next_sk = end;
    return true;
  }
  // For the finisher of a cut unit (w.kb0 == 0, w.kb1 < nk): the next worker after `after` that holds K
  // iterations of the same unit, or -1 when there is none left. Workers with empty ranges are skipped.
  AIPE_HD int next_contributor(const TileWork& w, int after) const {
    const int unit_end = (w.unit - dp_units + 1) * nk;
    for (int c = after + 1; c < workers && begin(c) < unit_end; ++c)
      if (begin(c + 1) > begin(c)) return c;
    return -1;
  }
};

// ---------------------------------------------------------------------------------------------
// Grouped problems (ragged M per problem, shared N and K: the experts of an MoE layer)
// ---------------------------------------------------------------------------------------------

struct GroupedTile {
  int problem = 0, tm = 0, tn = 0;  // tile row tm of problem `problem` (rows tm * BM .. of its M_i), column tn
  friend bool operator==(const GroupedTile&, const GroupedTile&) = default;
};

// One index space over the tiles of `count` problems: problem p owns tiles [tile_begin[p], tile_begin[p + 1])
// (tile_begin has count + 1 entries, in memory the kernel can read), walked inside a problem in `raster`
// order with the problem's own tile rows. A problem with M_i = 0 owns no tile.
struct GroupedTiles {
  int count = 0, tiles_n = 0, group = 0;  // group: as TileRaster::group, per problem
  const int* tile_begin = nullptr;

  AIPE_HD int tiles() const { return count > 0 ? tile_begin[count] : 0; }
  // The problem owning tile u (0 <= u < tiles()): the last p with tile_begin[p] <= u, by bisection.
  AIPE_HD int problem_of(int u) const {
    int lo = 0, hi = count - 1;
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      if (tile_begin[mid] <= u) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
  AIPE_HD GroupedTile operator()(int u) const {
    GroupedTile t;
    t.problem = problem_of(u);
    const int first = tile_begin[t.problem];
    const TileRaster r{(tile_begin[t.problem + 1] - first) / tiles_n, tiles_n, group, false};
    r(u - first, t.tm, t.tn);
    return t;
  }
};

// tile_begin for problems of ms[p] rows each (ms[p] >= 0), tiles of bm rows and bn columns over n columns.
// Throws std::invalid_argument for a negative M, bm or bn < 1, or more tiles than an int indexes.
std::vector<int> grouped_tile_begin(const std::vector<int>& ms, int n, int bm, int bn);

}  // namespace aipe::kernels
