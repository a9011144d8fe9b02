// The element types `aipe comm` moves (nccl-tests' names), and how far each keeps the exact check exact.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "aipe/comm/exact_values.hpp"

namespace aipe::comm {

enum class DataType { int8, uint8, int32, uint32, int64, uint64, float16, float32, float64, bfloat16 };

struct DataTypeInfo {
  DataType id;
  std::string_view name;  // nccl-tests' -d name
  int bytes;
  bool floating;
  std::int64_t max_exact;  // every integer in [0, max_exact] is representable exactly
};

std::span<const DataTypeInfo> data_types();
const DataTypeInfo& info(DataType t);
// nccl-tests' names (int8 uint8 int32 uint32 int64 uint64 half float double bfloat16) and the usual aliases
// (fp16, float16, fp32, float32, fp64, float64, bf16).
std::optional<DataType> parse_data_type(std::string_view name);

// The largest integer any buffer holds (inputs and partial results) for `c` with `op` on `n` ranks: sums reach
// 7n, avg's integer path sums inputs of up to 7n before dividing (7n^2), prod reaches 2^n, max/min stay <= 7.
std::int64_t largest_value(Collective c, ReduceOp op, int n);
// Empty when every value stays exact in `t`; otherwise why #wrong could count rounding (the CLI warns).
std::optional<std::string> inexact_reason(DataType t, Collective c, ReduceOp op, int n);

}  // namespace aipe::comm
