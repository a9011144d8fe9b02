#include "aipe/comm/data_type.hpp"

#include <array>
#include <limits>

#include "aipe/comm/collectives.hpp"

namespace aipe::comm {
namespace {

constexpr std::int64_t kI64 = std::numeric_limits<std::int64_t>::max();
constexpr std::array<DataTypeInfo, 10> kTypes{{
    {DataType::int8, "int8", 1, false, 127},
    {DataType::uint8, "uint8", 1, false, 255},
    {DataType::int32, "int32", 4, false, 2147483647},
    {DataType::uint32, "uint32", 4, false, 4294967295},
    {DataType::int64, "int64", 8, false, kI64},
    {DataType::uint64, "uint64", 8, false, kI64},
    {DataType::float16, "half", 2, true, 2048},        // 11 significant bits
    {DataType::float32, "float", 4, true, 1 << 24},    // 24
    {DataType::float64, "double", 8, true, 1ll << 53},  // 53
    {DataType::bfloat16, "bfloat16", 2, true, 256},    // 8
}};

}  // namespace

std::span<const DataTypeInfo> data_types() { return kTypes; }
const DataTypeInfo& info(DataType t) { return kTypes[static_cast<std::size_t>(t)]; }

std::optional<DataType> parse_data_type(std::string_view name) {
  for (const auto& t : kTypes)
    if (t.name == name) return t.id;
  if (name == "fp16" || name == "float16") return DataType::float16;
  if (name == "fp32" || name == "float32") return DataType::float32;
  if (name == "fp64" || name == "float64") return DataType::float64;
  if (name == "bf16") return DataType::bfloat16;
  return std::nullopt;
}

std::int64_t largest_value(Collective c, ReduceOp op, int n) {
  if (!collective_reduces(c)) return 7;
  switch (op) {
    case ReduceOp::sum: return 7ll * n;
    case ReduceOp::avg: return 7ll * n * n;
    case ReduceOp::prod: return n >= 62 ? kI64 : (1ll << n);
    case ReduceOp::max:
    case ReduceOp::min: return 7;
  }
  return kI64;
}

std::optional<std::string> inexact_reason(DataType t, Collective c, ReduceOp op, int n) {
  const std::int64_t need = largest_value(c, op, n);
  if (need <= info(t).max_exact) return std::nullopt;
  return std::string(info(c).name) + " " + reduce_op_name(op) + " on " + std::to_string(n) + " ranks reaches " +
         std::to_string(need) + ", past the " + std::to_string(info(t).max_exact) + " that " +
         std::string(info(t).name) + " holds exactly: #wrong may count rounding";
}

}  // namespace aipe::comm
