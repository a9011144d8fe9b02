// The nccl-tests measurement model, one table entry per collective (nccl-tests' testColl): how many bytes each
// rank sends and receives for a message size, the bus-bandwidth factor, and the exact value every output element
// must hold, so `#wrong` counts mismatches exactly.
//
//   size    = the message size S in bytes (nccl-tests' "size" column: count x element size; for all_gather the
//             gathered output, for reduce_scatter the input to be scattered)
//   algbw   = S / time
//   busbw   = algbw x factor(n), the rate each link must sustain in the bandwidth-optimal algorithm, comparable
//             to the hardware's link bandwidth whatever n is:
//               all_reduce                               2(n-1)/n
//               all_gather, reduce_scatter, all_to_all    (n-1)/n
//               broadcast, reduce, sendrecv               1
//
// Inputs are small integers (rank r, element i: (r*7 + i*3) mod 8, in [0, 8); per reduction see exact_values.hpp),
// so a sum over n ranks is at most 7n and exact in every data type that holds integers up to 7n: BF16 (<= 256,
// n <= 36), FP16 (<= 2048), FP32, int.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "aipe/comm/exact_values.hpp"

namespace aipe::comm {


struct CollectiveInfo {
  Collective id;
  std::string_view name;
  bool reduces;         // takes a ReduceOp
  bool split_by_ranks;  // the element count must divide by n (one block per rank)
  double (*bus_factor)(int n);
};

// Every collective, in nccl-tests' order; `aipe comm all` runs them in this order.
std::span<const CollectiveInfo> collectives();
const CollectiveInfo& info(Collective c);
std::optional<Collective> parse_collective(std::string_view name);
std::optional<ReduceOp> parse_reduce_op(std::string_view name);  // sum, prod, max, min, avg
const char* reduce_op_name(ReduceOp op);

// Element count actually used for a requested size: rounded down to whole elements and, for the collectives that
// split by ranks, to a multiple of n (what nccl-tests does). Zero when the size is too small to use.
std::int64_t element_count(Collective c, std::int64_t size_bytes, int element_bytes, int n);

struct ByteCounts {
  std::int64_t send;  // bytes in each rank's send buffer
  std::int64_t recv;  // bytes in each rank's receive buffer
};
ByteCounts byte_counts(Collective c, std::int64_t count, int element_bytes, int n);

double algbw_gbs(std::int64_t size_bytes, double seconds);  // decimal GB/s
double busbw_gbs(Collective c, std::int64_t size_bytes, double seconds, int n);

// The value rank `rank` puts at element `index` of its send buffer (sum, max, min and every collective that
// does not reduce; input_for() gives prod's and avg's).
std::int64_t input_value(int rank, std::int64_t index);
// The value element `index` of rank `rank`'s receive buffer must hold after the collective, for `count`
// elements (the size's element count), n ranks, root 0 (broadcast, reduce) and the sendrecv ring
// (rank r sends to r+1 and receives from r-1). Empty where that rank's output is undefined (reduce off the root).
std::optional<std::int64_t> expected_value(Collective c, ReduceOp op, int n, int rank, std::int64_t count,
                                           std::int64_t index);

// A size sweep: -b MIN -e MAX with -f FACTOR (multiply) or -i INCREMENT (add); nccl-tests' flags.
struct SizeSweep {
  std::int64_t min_bytes = 0, max_bytes = 0;
  std::int64_t factor = 0;     // > 1 for a geometric sweep, else 0
  std::int64_t increment = 0;  // > 0 for an arithmetic sweep, else 0
  std::vector<std::int64_t> sizes() const;
};
// Sizes take the project's suffixes (K, M, G = 2^10, 2^20, 2^30). Exactly one of factor / increment; neither:
// factor 2. Empty on bad input, with `error` naming the flag.
std::optional<SizeSweep> parse_sweep(const std::string& min, const std::string& max,
                                     const std::optional<std::string>& factor,
                                     const std::optional<std::string>& increment, std::string* error);

}  // namespace aipe::comm
