// The tile schedules of aipe/kernels/scheduler.hpp. Stream-K (what the persistent FP8 GEMM walks): every
// K block of every unit computed exactly once, the work balanced, every cut unit finished by the worker
// holding its first K block, and that worker told exactly which others hold the rest. The raster orders,
// the split tail and the grouped (ragged-M) problem: every tile exactly once, in the documented order.
#include "aipe/kernels/scheduler.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <map>
#include <ostream>
#include <tuple>
#include <set>
#include <vector>

namespace aipe::kernels {
void PrintTo(const TileWork& w, std::ostream* os) { *os << "{unit " << w.unit << ", K blocks " << w.kb0 << ".." << w.kb1 << "}"; }
}  // namespace aipe::kernels

namespace {

struct Piece {
  int worker;
  aipe::kernels::TileWork w;
};

// Every worker's list of pieces, in the order it walks them.
std::vector<std::vector<aipe::kernels::TileWork>> walk(int units, int nk, int workers, bool stream_k) {
  std::vector<std::vector<aipe::kernels::TileWork>> out(workers);
  for (int c = 0; c < workers; ++c) {
    aipe::kernels::StreamKSchedule s(units, nk, c, workers, stream_k);
    for (aipe::kernels::TileWork w; s.next(w);) out[c].push_back(w);
  }
  return out;
}

void check(int units, int nk, int workers) {
  SCOPED_TRACE("units " + std::to_string(units) + ", nk " + std::to_string(nk) + ", workers " + std::to_string(workers));
  const auto lists = walk(units, nk, workers, true);
  std::vector<std::vector<int>> covered(units, std::vector<int>(nk, 0));
  std::map<int, std::vector<Piece>> pieces;  // unit -> its pieces
  std::vector<long> iters(workers, 0);
  for (int c = 0; c < workers; ++c) {
    int late_starts = 0;
    for (std::size_t i = 0; i < lists[c].size(); ++i) {
      const aipe::kernels::TileWork& w = lists[c][i];
      ASSERT_GE(w.unit, 0);
      ASSERT_LT(w.unit, units);
      ASSERT_GE(w.kb0, 0);
      ASSERT_LT(w.kb0, w.kb1);
      ASSERT_LE(w.kb1, nk);
      for (int k = w.kb0; k < w.kb1; ++k) ++covered[w.unit][k];
      iters[c] += w.kb1 - w.kb0;
      pieces[w.unit].push_back({c, w});
      if (w.kb0 > 0) {
        ++late_starts;
        // A partial tile is left by the first stream-K piece of a range, before the worker finishes any
        // cut unit (so it never waits before it has handed over its own partial).
        for (std::size_t j = 0; j < i; ++j) EXPECT_TRUE(lists[c][j].kb0 == 0 && lists[c][j].kb1 == nk);
      }
    }
    EXPECT_LE(late_starts, 1) << "worker " << c << " would need two partial slots";
  }
  for (int u = 0; u < units; ++u)
    for (int k = 0; k < nk; ++k) ASSERT_EQ(covered[u][k], 1) << "unit " << u << " K block " << k;

  // Balance: no worker does more than its even share of all K blocks, rounded up (the data-parallel
  // schedule's longest worker does ceil(units / workers) whole units).
  const long total = long(units) * nk;
  const long longest = *std::max_element(iters.begin(), iters.end());
  EXPECT_LE(longest, (total + workers - 1) / workers);

  for (const auto& [u, ps] : pieces) {
    if (ps.size() == 1) {
      EXPECT_EQ(ps[0].w.kb0, 0);
      EXPECT_EQ(ps[0].w.kb1, nk);
      continue;
    }
    // A cut unit: one finisher (K block 0), the others listed by next_contributor in worker order.
    const Piece* fin = nullptr;
    std::set<int> others;
    for (const Piece& p : ps) {
      if (p.w.kb0 == 0) {
        EXPECT_EQ(fin, nullptr);
        fin = &p;
      } else {
        others.insert(p.worker);
      }
    }
    ASSERT_NE(fin, nullptr);
    EXPECT_EQ(lists[fin->worker].back(), fin->w) << "the finisher's piece is the last of its range";
    aipe::kernels::StreamKSchedule s(units, nk, fin->worker, workers, true);
    std::vector<int> listed;
    for (int c = s.next_contributor(fin->w, fin->worker); c >= 0; c = s.next_contributor(fin->w, c)) listed.push_back(c);
    EXPECT_EQ(listed, std::vector<int>(others.begin(), others.end()));
    if (units >= workers) EXPECT_EQ(ps.size(), 2u) << "with a whole wave of stream-K units, a unit is cut at most once";
  }
}

TEST(StreamK, CoversEveryKBlockOnceAndBalancesTheWork) {
  check(1024, 64, 66);  // FP8 8192^3: 2,048 tiles of 128 x 256 in pairs, 66 clusters of 2
  check(256, 32, 66);   // 4096^3
  check(96, 8, 66);     // 2000 x 3000 x 1008 (the GPU test): every unit in the stream-K part
  check(192, 8, 66);    // 4000 x 3000 x 1008: whole units first, then stream-K
  check(4, 2, 66);      // the small size: most workers get nothing
  check(4, 64, 66);     // fewer units than workers, deep K: a unit is cut between 17 workers
  check(67, 1, 66);     // one K block a unit: the tail is whole units
  check(1, 1, 66);
  for (int units = 1; units < 40; units += 3)
    for (int nk = 1; nk < 12; nk += 2)
      for (int workers : {1, 2, 5, 8}) check(units, nk, workers);
}

TEST(StreamK, DataParallelWhenOffOrWhenTheWavesAreWhole) {
  for (auto [units, nk, workers, sk] : std::vector<std::tuple<int, int, int, bool>>{
           {1024, 64, 66, false}, {1056, 64, 66, true}, {132, 5, 66, true}, {7, 3, 3, false}}) {
    const auto lists = walk(units, nk, workers, sk);
    for (int c = 0; c < workers; ++c) {
      std::vector<aipe::kernels::TileWork> rr;
      for (int u = c; u < units; u += workers) rr.push_back({u, 0, nk});
      EXPECT_EQ(lists[c], rr) << "worker " << c;
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Raster orders
// ---------------------------------------------------------------------------------------------

namespace {

using aipe::kernels::GroupedTile;
using aipe::kernels::GroupedTiles;
using aipe::kernels::TileRaster;

// Every (tm, tn) of the grid exactly once over units 0 .. tiles() - 1.
void expect_permutation(const TileRaster& r) {
  std::set<std::pair<int, int>> seen;
  for (int u = 0; u < r.tiles(); ++u) {
    int tm = -1, tn = -1;
    r(u, tm, tn);
    ASSERT_GE(tm, 0);
    ASSERT_LT(tm, r.tiles_m);
    ASSERT_GE(tn, 0);
    ASSERT_LT(tn, r.tiles_n);
    ASSERT_TRUE(seen.emplace(tm, tn).second) << "tile (" << tm << ", " << tn << ") twice, unit " << u;
  }
  EXPECT_EQ(static_cast<int>(seen.size()), r.tiles());
}

}  // namespace

TEST(TileRaster, RowAndColumnOrders) {
  const TileRaster rows{3, 5, 0, false}, cols{3, 5, 0, true};
  int tm, tn;
  rows(7, tm, tn);  // row by row: unit 7 = row 1, column 2
  EXPECT_EQ(tm, 1);
  EXPECT_EQ(tn, 2);
  cols(7, tm, tn);  // column by column: unit 7 = row 1, column 2 as well (7 = 2 * 3 + 1)
  EXPECT_EQ(tm, 1);
  EXPECT_EQ(tn, 2);
  cols(5, tm, tn);
  EXPECT_EQ(tm, 2);
  EXPECT_EQ(tn, 1);
  expect_permutation(rows);
  expect_permutation(cols);
}

TEST(TileRaster, GroupedBandsWalkDownMFirstAndCoverARaggedLastBand) {
  // 7 tile rows in bands of 3: bands of 3, 3 and 1 rows.
  const TileRaster r{7, 4, 3, false};
  int tm, tn;
  r(0, tm, tn);
  EXPECT_EQ(tm, 0);
  EXPECT_EQ(tn, 0);
  r(1, tm, tn);  // down M inside the band
  EXPECT_EQ(tm, 1);
  EXPECT_EQ(tn, 0);
  r(3, tm, tn);  // the band's next column
  EXPECT_EQ(tm, 0);
  EXPECT_EQ(tn, 1);
  r(12, tm, tn);  // the second band starts at tile row 3
  EXPECT_EQ(tm, 3);
  EXPECT_EQ(tn, 0);
  r(25, tm, tn);  // the last band has one row: units 24..27 walk across N
  EXPECT_EQ(tm, 6);
  EXPECT_EQ(tn, 1);
  for (int tiles_m : {1, 2, 5, 16, 17, 33})
    for (int tiles_n : {1, 3, 8})
      for (int group : {0, 1, 2, 4, 16}) expect_permutation(TileRaster{tiles_m, tiles_n, group, false});
}

// ---------------------------------------------------------------------------------------------
// Split tail
// ---------------------------------------------------------------------------------------------

TEST(SplitTail, EveryKTileOfEveryUnitOnceAndTheTailEndsSooner) {
  for (int units : {1, 5, 66, 67, 100, 132, 200, 1024})
    for (int workers : {1, 16, 66, 132})
      for (int ktiles : {1, 3, 8, 16, 33, 128}) {
        const auto p = aipe::kernels::plan_split_tail(units, workers, ktiles);
        ASSERT_GE(p.splits, 1);
        ASSERT_LE(p.splits, 4);
        std::map<int, std::vector<std::pair<int, int>>> ranges;  // unit -> its K ranges
        for (int it = 0; it < p.items; ++it) {
          const auto w = aipe::kernels::split_item(p, it, ktiles);
          ASSERT_GE(w.unit, 0);
          ASSERT_LT(w.unit, units);
          if (w.kb < w.ke) ranges[w.unit].push_back({w.kb, w.ke});
          if (p.splits > 1 && it >= p.full_units) EXPECT_GE(w.ke - w.kb, 1) << "an empty split";
        }
        ASSERT_EQ(static_cast<int>(ranges.size()), units);
        for (auto& [u, rs] : ranges) {
          std::sort(rs.begin(), rs.end());
          int k = 0;
          for (auto [b, e] : rs) {
            EXPECT_EQ(b, k) << "unit " << u << ": K tiles " << k << ".." << b << " missing or doubled";
            k = e;
          }
          EXPECT_EQ(k, ktiles) << "unit " << u;
        }
        const int tail = units % workers;
        if (p.splits > 1) {
          EXPECT_EQ(p.full_units, units - tail);
          EXPECT_GE(p.kt_per_split, 4);  // a split is worth its partial-tile traffic
          // The split tail takes less than the whole wave it would take unsplit.
          EXPECT_LT(std::ceil(double(tail) * p.splits / workers) / p.splits, 1.0);
        } else {
          EXPECT_EQ(p.items, units);
        }
      }
}

TEST(SplitTail, Example) {
  // 200 units on 132 workers: 68 tail units. 2 splits: 136 items, 2 waves of halves = a whole wave, no
  // gain; 3 splits: 204 items, 2 waves of thirds = 2/3 of a wave; 4 splits: 272 items, 3 waves of quarters
  // = 3/4. Thirds win.
  const auto p = aipe::kernels::plan_split_tail(200, 132, 64);
  EXPECT_EQ(p.splits, 3);
  EXPECT_EQ(p.full_units, 132);
  EXPECT_EQ(p.items, 132 + 68 * 3);
  EXPECT_EQ(p.kt_per_split, 22);
  // 264 units on 132 workers: no tail, nothing to split.
  const auto whole = aipe::kernels::plan_split_tail(264, 132, 64);
  EXPECT_EQ(whole.splits, 1);
  EXPECT_EQ(whole.items, 264);
  EXPECT_THROW(aipe::kernels::plan_split_tail(10, 0, 4), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
// Grouped problems
// ---------------------------------------------------------------------------------------------

TEST(GroupedTiles, EveryTileOfEveryProblemOnceInOrder) {
  constexpr int BM = 128, BN = 256;
  for (int n : {1, 256, 4097})
    for (int group : {0, 2, 16}) {
      const std::vector<int> ms = {0, 1, 128, 129, 0, 0, 1000, 255, 37, 0};  // ragged, with empty experts
      const std::vector<int> begin = aipe::kernels::grouped_tile_begin(ms, n, BM, BN);
      ASSERT_EQ(begin.size(), ms.size() + 1);
      const int tiles_n = (n + BN - 1) / BN;
      const GroupedTiles g{static_cast<int>(ms.size()), tiles_n, group, begin.data()};
      int expected = 0;
      for (int m : ms) expected += (m + BM - 1) / BM * tiles_n;
      ASSERT_EQ(g.tiles(), expected);
      std::set<std::tuple<int, int, int>> seen;
      int last_problem = -1;
      for (int u = 0; u < g.tiles(); ++u) {
        const GroupedTile t = g(u);
        ASSERT_GE(t.problem, 0);
        ASSERT_LT(t.problem, static_cast<int>(ms.size()));
        EXPECT_GE(t.problem, last_problem) << "problems are walked in order";
        last_problem = t.problem;
        ASSERT_GT(ms[t.problem], 0) << "an empty problem owns a tile";
        EXPECT_GE(t.tm, 0);
        EXPECT_LT(t.tm * BM, ms[t.problem]) << "tile row past the problem's M";
        EXPECT_GE(t.tn, 0);
        EXPECT_LT(t.tn, tiles_n);
        // Inside a problem: the raster order of its own tile rows.
        const int tiles_m = (ms[t.problem] + BM - 1) / BM;
        int tm, tn;
        TileRaster{tiles_m, tiles_n, group, false}(u - begin[t.problem], tm, tn);
        EXPECT_EQ(tm, t.tm);
        EXPECT_EQ(tn, t.tn);
        ASSERT_TRUE(seen.emplace(t.problem, t.tm, t.tn).second) << "tile twice at unit " << u;
      }
      EXPECT_EQ(static_cast<int>(seen.size()), expected);
    }
}

TEST(GroupedTiles, PersistentWorkersShareTheTilesExactlyOnce) {
  const std::vector<int> ms = {300, 0, 7, 2048, 129};
  const std::vector<int> begin = aipe::kernels::grouped_tile_begin(ms, 1000, 128, 128);
  const GroupedTiles g{static_cast<int>(ms.size()), 8, 0, begin.data()};
  for (int workers : {1, 7, 132}) {
    std::set<std::tuple<int, int, int>> seen;
    for (int c = 0; c < workers; ++c) {
      aipe::kernels::StreamKSchedule s(g.tiles(), 1, c, workers, false);
      for (aipe::kernels::TileWork w; s.next(w);) {
        const GroupedTile t = g(w.unit);
        ASSERT_TRUE(seen.emplace(t.problem, t.tm, t.tn).second);
      }
    }
    EXPECT_EQ(static_cast<int>(seen.size()), g.tiles());
  }
}

TEST(GroupedTiles, BadInput) {
  EXPECT_THROW(aipe::kernels::grouped_tile_begin({128, -1}, 256, 128, 128), std::invalid_argument);
  EXPECT_THROW(aipe::kernels::grouped_tile_begin({128}, 256, 0, 128), std::invalid_argument);
  EXPECT_THROW(aipe::kernels::grouped_tile_begin({1 << 30, 1 << 30}, 1 << 30, 1, 1), std::invalid_argument);
  EXPECT_EQ(aipe::kernels::grouped_tile_begin({}, 256, 128, 128), std::vector<int>{0});
}
