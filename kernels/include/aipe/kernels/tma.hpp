// Host side of TMA: one factory for the tensor maps (TMA descriptors) of every kernel, any rank 1..5 and
// element type, with the driver's rules checked first so a bad shape is a clear error, not a CUresult.
//
// Conventions: dimensions and box sizes are in elements, innermost (contiguous) dimension first; strides
// are in bytes, of dimensions 1..rank-1 (dimension 0 is contiguous). A row-major R x C matrix with row pitch
// ld elements is dims {C, R}, strides {ld * elem}, box {box_cols, box_rows}: matrix_map() spells that.
//
// cuTensorMapEncodeTiled is looked up through the runtime's driver entry point (kernels/src/tma.cpp), so
// nothing links libcuda directly. <cuda.h> is included for the types and enums only.
#pragma once
#include <cuda.h>

#include <array>
#include <cstdint>
#include <string>

namespace aipe::kernels {

// The L2 promotion of every tensor map in aipe unless a kernel asks otherwise: 128 bytes, one row of a
// 128-byte-swizzled box, so a box pulls into L2 only what it reads. With 256 bytes each row also brought in
// the next 128 bytes (the next K block's, not yet needed), and the GEMMs moved more bytes through the H100's
// L2 than cuBLASLt's kernels, a good part of them between its two L2 partitions (docs/ch10.md, "L2 promotion").
inline constexpr CUtensorMapL2promotion kTmaL2Promotion = CU_TENSOR_MAP_L2_PROMOTION_L2_128B;

struct TensorMapSpec {
  CUtensorMapDataType dtype = CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  const void* base = nullptr;
  int rank = 2;
  std::array<std::uint64_t, 5> dims{};     // elements, innermost first
  std::array<std::uint64_t, 4> strides{};  // bytes between consecutive indices of dims[1..rank-1]
  std::array<std::uint32_t, 5> box{};      // elements per dimension of one transfer
  CUtensorMapSwizzle swizzle = CU_TENSOR_MAP_SWIZZLE_128B;
  CUtensorMapL2promotion l2_promotion = kTmaL2Promotion;
  // NONE: out-of-bounds elements of a box arrive as zeros (how the kernels handle ragged edges);
  // NAN_REQUEST_ZERO_FMA: as NaN (floating-point types only).
  CUtensorMapFloatOOBfill oob_fill = CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE;
};

// Bytes per element of a TMA data type (0 for a type this project does not use).
std::uint32_t tma_element_bytes(CUtensorMapDataType dtype);

// Empty when `spec` satisfies the rules of cuTensorMapEncodeTiled (as the CUDA driver documents them);
// otherwise what is wrong, naming the dimension: base 16-byte aligned, rank 1..5, every dimension 1..2^32,
// strides multiples of 16 bytes below 2^40 and at least one row, box sizes 1..256 with the innermost box
// a multiple of 16 bytes and, with a swizzle, no wider than the swizzle span (32, 64 or 128 bytes).
std::string tensor_map_error(const TensorMapSpec& spec);

// Encodes the tensor map. Throws std::invalid_argument with tensor_map_error's text for a spec the driver
// would refuse, std::runtime_error (with the CUresult and the shape) when the driver refuses it anyway.
CUtensorMap make_tensor_map(const TensorMapSpec& spec);

// The spec of a row-major `rows` x `cols` matrix of `dtype` (row pitch `ld` elements) read in boxes of
// box_rows x box_cols elements.
TensorMapSpec matrix_spec(CUtensorMapDataType dtype, const void* base, std::uint64_t rows, std::uint64_t cols,
                          std::uint64_t ld, std::uint32_t box_rows, std::uint32_t box_cols,
                          CUtensorMapSwizzle swizzle = CU_TENSOR_MAP_SWIZZLE_128B);

inline CUtensorMap matrix_map(CUtensorMapDataType dtype, const void* base, std::uint64_t rows, std::uint64_t cols,
                              std::uint64_t ld, std::uint32_t box_rows, std::uint32_t box_cols,
                              CUtensorMapSwizzle swizzle = CU_TENSOR_MAP_SWIZZLE_128B) {
  return make_tensor_map(matrix_spec(dtype, base, rows, cols, ld, box_rows, box_cols, swizzle));
}

}  // namespace aipe::kernels
