// The integer every element of a collective's buffers holds, on the host (expected_value, the CPU tests) and on
// the device (the fill and the exact check of `aipe comm`) from one definition, so the two cannot drift.
//
// Rank r, element i starts from base(r, i) = (7r + 3i) mod 8, an integer in [0, 8). Per reduction:
//   sum, max, min   input base(r, i)           result sum / max / min over ranks (at most 7n)
//   prod            input 1 + (base(r, i) >> 2) result a power of two <= 2^n (1s and 2s, so no 0 hides errors;
//                                              the number of 2s varies along i for every n)
//   avg             input n * base(r, i)       result sum over ranks of base(r, i) (at most 7n): NCCL's avg sums
//                   and divides by n (integers) or pre-multiplies each input by 1/n (floating types), and both
//                   give the integer back exactly when every input is a multiple of n this small
// The collectives that do not reduce move base(r, i) unchanged.
#pragma once
#include <cstdint>

#include "aipe/hd.hpp"

namespace aipe::comm {

enum class Collective { all_reduce, all_gather, reduce_scatter, all_to_all, broadcast, reduce, sendrecv };
enum class ReduceOp { sum, prod, max, min, avg };

AIPE_HD bool collective_reduces(Collective c) {
  return c == Collective::all_reduce || c == Collective::reduce_scatter || c == Collective::reduce;
}

AIPE_HD std::int64_t base_value(int rank, std::int64_t index) { return (rank * 7 + index * 3) % 8; }

// What rank `rank` of `n` puts at element `index` of its send buffer for collective `c` with `op`.
AIPE_HD std::int64_t input_for(Collective c, ReduceOp op, int n, int rank, std::int64_t index) {
  const std::int64_t b = base_value(rank, index);
  if (!collective_reduces(c)) return b;
  switch (op) {
    case ReduceOp::prod: return 1 + (b >> 2);
    case ReduceOp::avg: return static_cast<std::int64_t>(n) * b;
    default: return b;
  }
}

// The reduction over ranks 0..n-1 of element `index` (see the table above).
AIPE_HD std::int64_t reduced_value(ReduceOp op, int n, std::int64_t index) {
  std::int64_t acc = op == ReduceOp::prod ? 1 + (base_value(0, index) >> 2) : base_value(0, index);
  for (int r = 1; r < n; ++r) {
    const std::int64_t b = base_value(r, index);
    switch (op) {
      case ReduceOp::sum:
      case ReduceOp::avg: acc += b; break;
      case ReduceOp::prod: acc *= 1 + (b >> 2); break;
      case ReduceOp::max: acc = b > acc ? b : acc; break;
      case ReduceOp::min: acc = b < acc ? b : acc; break;
    }
  }
  return acc;
}

// The value element `index` of rank `rank`'s receive buffer must hold after `c` over `count` elements (the
// size's element count; the per-rank block of the split collectives is count / n), root 0 for broadcast and
// reduce, the ring r -> r+1 for sendrecv. False where that rank's output is undefined (reduce off the root).
AIPE_HD bool expected_for(Collective c, ReduceOp op, int n, int rank, std::int64_t count, std::int64_t index,
                          std::int64_t* value) {
  const std::int64_t block = count / n;
  switch (c) {
    case Collective::all_reduce: *value = reduced_value(op, n, index); return true;
    case Collective::all_gather:  // block p of the output is rank p's whole input
      *value = base_value(static_cast<int>(index / block), index % block);
      return true;
    case Collective::reduce_scatter:  // rank r keeps block r of the reduction
      *value = reduced_value(op, n, rank * block + index);
      return true;
    case Collective::all_to_all:  // block p of rank r's output is block r of rank p's input
      *value = base_value(static_cast<int>(index / block), rank * block + index % block);
      return true;
    case Collective::broadcast: *value = base_value(0, index); return true;
    case Collective::reduce:
      if (rank != 0) return false;
      *value = reduced_value(op, n, index);
      return true;
    case Collective::sendrecv: *value = base_value((rank - 1 + n) % n, index); return true;
  }
  return false;
}

}  // namespace aipe::comm
