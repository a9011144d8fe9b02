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
  if (name == "prod") return ReduceOp::prod;
  if (name == "max") return ReduceOp::max;
  if (name == "min") return ReduceOp::min;
  if (name == "avg") return ReduceOp::avg;
  return std::nullopt;
}

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return "sum";
    case ReduceOp::prod: return "prod";
    case ReduceOp::max: return "max";
    case ReduceOp::min: return "min";
    case ReduceOp::avg: return "avg";
  }
  return "?";
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

std::int64_t input_value(int rank, std::int64_t index) { return base_value(rank, index); }

std::optional<std::int64_t> expected_value(Collective c, ReduceOp op, int n, int rank, std::int64_t count,
                                           std::int64_t index) {
  std::int64_t v = 0;
  if (!expected_for(c, op, n, rank, count, index, &v)) return std::nullopt;
  return v;
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
