// A persistent GEMM's tile schedule with an optional stream-K tail (Osama et al., "Stream-K: work-centric
// parallel decomposition for dense matrix multiplication on the GPU", PPoPP 2023). Host and device code:
// the kernels walk it, the CPU tests check its invariants. The hand-over of partial tiles between CTAs
// (release/acquire flags, partial slots in global memory) is in aipe/hopper.cuh.
#pragma once

#include "aipe/hd.hpp"

namespace aipe {

// What a persistent worker (a CTA, or a cluster of CTAs that moves as one) computes next: K blocks
// [kb0, kb1) of work unit `unit`. kb0 == 0 && kb1 == nk: the whole unit, stored by this worker alone.
struct TileWork {
  int unit = 0, kb0 = 0, kb1 = 0;
  friend bool operator==(const TileWork&, const TileWork&) = default;
};

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

}  // namespace aipe
