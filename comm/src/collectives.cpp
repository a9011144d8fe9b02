#include "aipe/comm/collectives.hpp"

#include <algorithm>
#include <array>
#include <limits>

#include "aipe/units.hpp"

namespace aipe::comm {
namespace {

double one(int) { return 1.0; }
double all_reduce_factor(int n) { return 2.0 * (n - 1) / n; }
double n_minus_one_over_n(int n) { return static_cast<double>(n - 1) / n; }

constexpr std::array<CollectiveInfo, 7> kTable{{
    {Collective::all_reduce, "all_reduce", true, false, all_reduce_factor},
    {Collective::all_gather, "all_gather", false, true, n_minus_one_over_n},
    {Collective::reduce_scatter, "reduce_scatter", true, true, n_minus_one_over_n},
    {Collective::all_to_all, "all_to_all", false, true, n_minus_one_over_n},
    {Collective::broadcast, "broadcast", false, false, one},
    {Collective::reduce, "reduce", true, false, one},
    {Collective::sendrecv, "sendrecv", false, false, one},
}};

std::int64_t combine(ReduceOp op, std::int64_t a, std::int64_t b) {
  switch (op) {
    case ReduceOp::sum: return a + b;
    case ReduceOp::max: return std::max(a, b);
    case ReduceOp::min: return std::min(a, b);
  }
  return a;
}

std::int64_t reduce_over_ranks(ReduceOp op, int n, std::int64_t index) {
  std::int64_t acc = input_value(0, index);
  for (int r = 1; r < n; ++r) acc = combine(op, acc, input_value(r, index));
  return acc;
}

}  // namespace

std::span<const CollectiveInfo> collectives() { return kTable; }

const CollectiveInfo& info(Collective c) { return kTable[static_cast<std::size_t>(c)]; }

std::optional<Collective> parse_collective(std::string_view name) {
  for (const auto& e : kTable)
    if (e.name == name) return e.id;
  return std::nullopt;
}

std::optional<ReduceOp> parse_reduce_op(std::string_view name) {
  if (name == "sum") return ReduceOp::sum;
  if (name == "max") return ReduceOp::max;
  if (name == "min") return ReduceOp::min;
  return std::nullopt;
}

std::int64_t element_count(Collective c, std::int64_t size_bytes, int element_bytes, int n) {
  if (size_bytes <= 0 || element_bytes <= 0 || n <= 0) return 0;
  std::int64_t count = size_bytes / element_bytes;
  if (info(c).split_by_ranks) count -= count % n;
  return count;
}

ByteCounts byte_counts(Collective c, std::int64_t count, int element_bytes, int n) {
  const std::int64_t full = count * element_bytes;
  switch (c) {
    case Collective::all_gather: return {full / n, full};
    case Collective::reduce_scatter: return {full, full / n};
    default: return {full, full};  // all_to_all: n blocks of full/n each way; the rest move the whole message
  }
}

double algbw_gbs(std::int64_t size_bytes, double seconds) {
  return seconds > 0 ? static_cast<double>(size_bytes) / seconds / 1e9 : 0.0;
}

double busbw_gbs(Collective c, std::int64_t size_bytes, double seconds, int n) {
  return algbw_gbs(size_bytes, seconds) * info(c).bus_factor(n);
}

std::int64_t input_value(int rank, std::int64_t index) { return (rank * 7 + index * 3) % 8; }

std::optional<std::int64_t> expected_value(Collective c, ReduceOp op, int n, int rank, std::int64_t count,
                                           std::int64_t index) {
  const std::int64_t block = count / n;  // per-rank block of the split collectives
  switch (c) {
    case Collective::all_reduce: return reduce_over_ranks(op, n, index);
    case Collective::all_gather:  // block p of the output is rank p's whole input
      return input_value(static_cast<int>(index / block), index % block);
    case Collective::reduce_scatter:  // rank r keeps block r of the reduction
      return reduce_over_ranks(op, n, rank * block + index);
    case Collective::all_to_all:  // block p of rank r's output is block r of rank p's input
      return input_value(static_cast<int>(index / block), rank * block + index % block);
    case Collective::broadcast: return input_value(0, index);
    case Collective::reduce:
      if (rank != 0) return std::nullopt;
      return reduce_over_ranks(op, n, index);
    case Collective::sendrecv: return input_value((rank - 1 + n) % n, index);
  }
  return std::nullopt;
}

std::vector<std::int64_t> SizeSweep::sizes() const {
  std::vector<std::int64_t> out;
  for (std::int64_t s = min_bytes; s <= max_bytes;) {
    out.push_back(s);
    std::int64_t next = factor > 1 ? (s > std::numeric_limits<std::int64_t>::max() / factor ? -1 : s * factor)
                                   : (s > std::numeric_limits<std::int64_t>::max() - increment ? -1 : s + increment);
    if (next < 0) break;  // the next step would overflow: it is past any max anyway
    s = next;
  }
  return out;
}

std::optional<SizeSweep> parse_sweep(const std::string& min, const std::string& max,
                                     const std::optional<std::string>& factor,
                                     const std::optional<std::string>& increment, std::string* error) {
  auto fail = [&](const std::string& msg) -> std::optional<SizeSweep> {
    if (error) *error = msg;
    return std::nullopt;
  };
  std::string why;
  SizeSweep s;
  auto lo = parse_size(min, &why);
  if (!lo) return fail("-b '" + min + "': " + why);
  auto hi = parse_size(max, &why);
  if (!hi) return fail("-e '" + max + "': " + why);
  if (*lo <= 0) return fail("-b " + min + ": the smallest size must be at least 1 byte");
  if (*hi < *lo) return fail("-e " + max + " is below -b " + min);
  s.min_bytes = *lo, s.max_bytes = *hi;
  if (factor && increment) return fail("-f and -i both given: a sweep multiplies or adds, not both");
  if (increment) {
    auto inc = parse_size(*increment, &why);
    if (!inc) return fail("-i '" + *increment + "': " + why);
    if (*inc <= 0) return fail("-i " + *increment + ": the increment must be positive");
    s.increment = *inc;
  } else {
    std::int64_t f = 2;
    if (factor) {
      auto parsed = parse_size(*factor, &why);
      if (!parsed) return fail("-f '" + *factor + "': " + why);
      if (*parsed < 2) return fail("-f " + *factor + ": the factor must be at least 2");
      f = *parsed;
    }
    s.factor = f;
  }
  return s;
}

}  // namespace aipe::comm
