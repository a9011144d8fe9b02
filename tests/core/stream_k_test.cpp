// The stream-K tile schedule (aipe/stream_k.hpp) that the persistent FP8 GEMM walks: every K block of
// every unit computed exactly once, the work balanced, every cut unit finished by the worker holding its
// first K block, and that worker told exactly which others hold the rest.
#include "aipe/stream_k.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <ostream>
#include <tuple>
#include <set>
#include <vector>

namespace aipe {
void PrintTo(const TileWork& w, std::ostream* os) { *os << "{unit " << w.unit << ", K blocks " << w.kb0 << ".." << w.kb1 << "}"; }
}  // namespace aipe

namespace {

struct Piece {
  int worker;
  aipe::TileWork w;
};

// Every worker's list of pieces, in the order it walks them.
std::vector<std::vector<aipe::TileWork>> walk(int units, int nk, int workers, bool stream_k) {
  std::vector<std::vector<aipe::TileWork>> out(workers);
  for (int c = 0; c < workers; ++c) {
    aipe::StreamKSchedule s(units, nk, c, workers, stream_k);
    for (aipe::TileWork w; s.next(w);) out[c].push_back(w);
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
      const aipe::TileWork& w = lists[c][i];
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
    aipe::StreamKSchedule s(units, nk, fin->worker, workers, true);
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
      std::vector<aipe::TileWork> rr;
      for (int u = c; u < units; u += workers) rr.push_back({u, 0, nk});
      EXPECT_EQ(lists[c], rr) << "worker " << c;
    }
  }
}

}  // namespace
