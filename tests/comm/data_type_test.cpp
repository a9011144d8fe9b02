#include "aipe/comm/data_type.hpp"

#include <gtest/gtest.h>

#include "aipe/comm/collectives.hpp"

using namespace aipe::comm;

TEST(CommDataType, NamesSizesAndAliases) {
  const char* names[] = {"int8", "uint8", "int32", "uint32", "int64", "uint64", "half", "float", "double", "bfloat16"};
  const int bytes[] = {1, 1, 4, 4, 8, 8, 2, 4, 8, 2};
  ASSERT_EQ(data_types().size(), 10u);
  for (std::size_t i = 0; i < 10; ++i) {
    EXPECT_EQ(data_types()[i].name, names[i]);
    EXPECT_EQ(data_types()[i].bytes, bytes[i]) << names[i];
    EXPECT_EQ(&info(data_types()[i].id), &data_types()[i]);
    EXPECT_EQ(parse_data_type(names[i]), data_types()[i].id);
  }
  EXPECT_EQ(parse_data_type("bf16"), DataType::bfloat16);
  EXPECT_EQ(parse_data_type("fp16"), DataType::float16);
  EXPECT_EQ(parse_data_type("float32"), DataType::float32);
  EXPECT_EQ(parse_data_type("fp64"), DataType::float64);
  EXPECT_FALSE(parse_data_type("fp8"));
  EXPECT_FALSE(parse_data_type("Float"));
  EXPECT_FALSE(parse_data_type(""));
}

// The exactness bounds: a sum over 36 ranks (252) fits BF16's 256, 37 (259) does not; int8 holds 7n up to n = 18.
TEST(CommDataType, ExactnessLimitsPerTypeAndReduction) {
  EXPECT_FALSE(inexact_reason(DataType::bfloat16, Collective::all_reduce, ReduceOp::sum, 36));
  auto why = inexact_reason(DataType::bfloat16, Collective::all_reduce, ReduceOp::sum, 37);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("reaches 259"), std::string::npos) << *why;
  EXPECT_NE(why->find("bfloat16"), std::string::npos) << *why;
  EXPECT_FALSE(inexact_reason(DataType::int8, Collective::all_reduce, ReduceOp::sum, 18));
  EXPECT_TRUE(inexact_reason(DataType::int8, Collective::all_reduce, ReduceOp::sum, 19));
  EXPECT_FALSE(inexact_reason(DataType::float16, Collective::all_reduce, ReduceOp::prod, 11));  // 2048
  EXPECT_TRUE(inexact_reason(DataType::float16, Collective::all_reduce, ReduceOp::prod, 12));
  EXPECT_TRUE(inexact_reason(DataType::int8, Collective::all_reduce, ReduceOp::avg, 5));  // 7 * 25 = 175
  EXPECT_FALSE(inexact_reason(DataType::int8, Collective::all_reduce, ReduceOp::avg, 4));
  // Nothing is summed in the collectives that only move data, whatever the op says.
  EXPECT_FALSE(inexact_reason(DataType::int8, Collective::all_gather, ReduceOp::sum, 1000));
  EXPECT_FALSE(inexact_reason(DataType::uint8, Collective::all_reduce, ReduceOp::max, 1000));
  EXPECT_EQ(largest_value(Collective::all_reduce, ReduceOp::prod, 70), INT64_MAX);
  EXPECT_EQ(largest_value(Collective::reduce, ReduceOp::sum, 8), 56);
}
