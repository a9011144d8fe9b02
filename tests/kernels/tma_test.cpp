// The tensor-map factory's checks (aipe/kernels/tma.hpp), which run before the driver is asked: a shape
// TMA cannot describe is a clear std::invalid_argument naming the dimension, never a bare CUresult.
#include "aipe/kernels/tma.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "aipe/kernels/launch.cuh"

namespace {

using aipe::kernels::matrix_spec;
using aipe::kernels::tensor_map_error;
using aipe::kernels::TensorMapSpec;

alignas(16) unsigned char g_buf[64];
const void* base16() { return g_buf; }

TEST(TensorMap, MatrixSpecIsInnermostFirstWithByteStrides) {
  const TensorMapSpec s = matrix_spec(CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, base16(), 8191, 2056, 2056, 128, 64);
  EXPECT_EQ(s.rank, 2);
  EXPECT_EQ(s.dims[0], 2056u);
  EXPECT_EQ(s.dims[1], 8191u);
  EXPECT_EQ(s.strides[0], 2056u * 2);
  EXPECT_EQ(s.box[0], 64u);
  EXPECT_EQ(s.box[1], 128u);
  EXPECT_EQ(s.swizzle, CU_TENSOR_MAP_SWIZZLE_128B);
  EXPECT_EQ(s.l2_promotion, aipe::kernels::kTmaL2Promotion);
  EXPECT_EQ(s.oob_fill, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  EXPECT_EQ(tensor_map_error(s), "");
  // The FP8 operands: bytes, 128-byte boxes. K = 4112 E4M3 rows are 16-byte aligned; K = 4104 (fine for
  // BF16: 8208 bytes) is not.
  EXPECT_EQ(tensor_map_error(matrix_spec(CU_TENSOR_MAP_DATA_TYPE_UINT8, base16(), 37, 4112, 4112, 128, 128)), "");
  EXPECT_NE(tensor_map_error(matrix_spec(CU_TENSOR_MAP_DATA_TYPE_UINT8, base16(), 37, 4104, 4104, 128, 128)), "");
  EXPECT_EQ(tensor_map_error(matrix_spec(CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, base16(), 37, 4104, 4104, 64, 64)), "");
}

TEST(TensorMap, RowsMustBe16ByteAligned) {
  // K = 2049 BF16: 4098-byte rows.
  const std::string e = tensor_map_error(matrix_spec(CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, base16(), 64, 2049, 2049, 64, 64));
  EXPECT_NE(e.find("stride of 4098 bytes is not a multiple of 16"), std::string::npos) << e;
  EXPECT_NE(tensor_map_error(matrix_spec(CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, g_buf + 8, 64, 64, 64, 64, 64))
                .find("16-byte aligned base"),
            std::string::npos);
  EXPECT_NE(tensor_map_error(matrix_spec(CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, nullptr, 64, 64, 64, 64, 64)).find("null"),
            std::string::npos);
}

TEST(TensorMap, BoxLimitsAndSwizzleSpan) {
  // 128 BF16 = 256 bytes: wider than the 128-byte swizzle.
  std::string e = tensor_map_error(matrix_spec(CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, base16(), 256, 256, 256, 64, 128));
  EXPECT_NE(e.find("wider than the 128-byte swizzle span"), std::string::npos) << e;
  EXPECT_EQ(tensor_map_error(matrix_spec(CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, base16(), 256, 256, 256, 64, 128,
                                         CU_TENSOR_MAP_SWIZZLE_NONE)),
            "");
  EXPECT_NE(tensor_map_error(matrix_spec(CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, base16(), 256, 256, 256, 64, 32,
                                         CU_TENSOR_MAP_SWIZZLE_32B)),
            "");  // 64 bytes > 32
  // Box rows: 1..256.
  e = tensor_map_error(matrix_spec(CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, base16(), 1024, 64, 64, 512, 64));
  EXPECT_NE(e.find("dimension 1: box of 512 elements"), std::string::npos) << e;
  // Innermost box: a multiple of 16 bytes.
  e = tensor_map_error(matrix_spec(CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, base16(), 64, 64, 64, 64, 4, CU_TENSOR_MAP_SWIZZLE_NONE));
  EXPECT_NE(e.find("8 bytes; TMA needs a multiple of 16"), std::string::npos) << e;
}

TEST(TensorMap, DimensionsRankAndTypes) {
  TensorMapSpec s = matrix_spec(CU_TENSOR_MAP_DATA_TYPE_FLOAT32, base16(), 0, 64, 64, 8, 32);
  EXPECT_NE(tensor_map_error(s).find("dimension 1 has 0 elements"), std::string::npos) << tensor_map_error(s);
  s = matrix_spec(CU_TENSOR_MAP_DATA_TYPE_FLOAT32, base16(), 64, 64, 32, 8, 32);  // pitch shorter than a row
  EXPECT_NE(tensor_map_error(s).find("shorter than a row"), std::string::npos) << tensor_map_error(s);
  s.rank = 6;
  EXPECT_NE(tensor_map_error(s).find("rank 6"), std::string::npos);
  s = matrix_spec(CU_TENSOR_MAP_DATA_TYPE_UINT8, base16(), 64, 64, 64, 64, 64);
  s.oob_fill = CU_TENSOR_MAP_FLOAT_OOB_FILL_NAN_REQUEST_ZERO_FMA;
  EXPECT_NE(tensor_map_error(s).find("floating-point"), std::string::npos);
  // Rank 3 (a batch of matrices): strides of both outer dimensions checked.
  TensorMapSpec b;
  b.dtype = CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  b.base = base16();
  b.rank = 3;
  b.dims = {128, 64, 4, 0, 0};
  b.strides = {256, 64 * 256, 0, 0};
  b.box = {64, 64, 1, 0, 0};
  EXPECT_EQ(tensor_map_error(b), "");
  b.strides[1] = 64 * 256 + 8;
  EXPECT_NE(tensor_map_error(b).find("dimension 2's stride"), std::string::npos) << tensor_map_error(b);
}

TEST(TensorMap, MakeThrowsInvalidArgumentBeforeTheDriver) {
  // No GPU or driver needed: the spec is refused first, with the shape in the message.
  try {
    aipe::kernels::matrix_map(CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, base16(), 64, 2049, 2049, 64, 64);
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("dims {2049, 64}"), std::string::npos) << e.what();
  }
}

TEST(SmemOptIn, OncePerKernelDeviceAndSize) {
  int k1 = 0, k2 = 0;
  using aipe::kernels::detail::first_smem_opt_in;
  EXPECT_TRUE(first_smem_opt_in(&k1, 0, 1000));
  EXPECT_FALSE(first_smem_opt_in(&k1, 0, 1000));
  EXPECT_TRUE(first_smem_opt_in(&k1, 1, 1000));  // another device: the attribute is per device
  EXPECT_TRUE(first_smem_opt_in(&k1, 0, 2000));  // another size
  EXPECT_TRUE(first_smem_opt_in(&k2, 0, 1000));
  aipe::kernels::detail::forget_smem_opt_in(&k2, 0, 1000);  // a failed opt-in is tried again
  EXPECT_TRUE(first_smem_opt_in(&k2, 0, 1000));
}

}  // namespace
