#include "aipe/kernels/tma.hpp"

#include <cuda_runtime_api.h>

#include <stdexcept>

#include "aipe/check.hpp"

namespace aipe::kernels {
namespace {

using EncodeTiledFn = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                   const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                   CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

EncodeTiledFn encode_tiled_fn() {
  static const EncodeTiledFn fn = [] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult q{};
#if CUDART_VERSION >= 12050
    AIPE_CUDA(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q));
#else
    AIPE_CUDA(cudaGetDriverEntryPoint("cuTensorMapEncodeTiled", &p, cudaEnableDefault, &q));
#endif
    if (q != cudaDriverEntryPointSuccess || !p)
      throw std::runtime_error("cuTensorMapEncodeTiled is not available from this driver");
    return reinterpret_cast<EncodeTiledFn>(p);
  }();
  return fn;
}

std::uint32_t swizzle_span(CUtensorMapSwizzle s) {
  switch (s) {
    case CU_TENSOR_MAP_SWIZZLE_32B: return 32;
    case CU_TENSOR_MAP_SWIZZLE_64B: return 64;
    case CU_TENSOR_MAP_SWIZZLE_128B: return 128;
    default: return 0;
  }
}

std::string shape_text(const TensorMapSpec& s) {
  std::string t = "dims {";
  for (int i = 0; i < s.rank && i < 5; ++i) t += (i ? ", " : "") + std::to_string(s.dims[i]);
  t += "}, strides {";
  for (int i = 0; i + 1 < s.rank && i < 4; ++i) t += (i ? ", " : "") + std::to_string(s.strides[i]);
  t += "} bytes, box {";
  for (int i = 0; i < s.rank && i < 5; ++i) t += (i ? ", " : "") + std::to_string(s.box[i]);
  return t + "}";
}

}  // namespace

std::uint32_t tma_element_bytes(CUtensorMapDataType dtype) {
  switch (dtype) {
    case CU_TENSOR_MAP_DATA_TYPE_UINT8: return 1;
    case CU_TENSOR_MAP_DATA_TYPE_UINT16:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT16:
    case CU_TENSOR_MAP_DATA_TYPE_BFLOAT16: return 2;
    case CU_TENSOR_MAP_DATA_TYPE_UINT32:
    case CU_TENSOR_MAP_DATA_TYPE_INT32:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT32: return 4;
    case CU_TENSOR_MAP_DATA_TYPE_UINT64:
    case CU_TENSOR_MAP_DATA_TYPE_INT64:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT64: return 8;
    default: return 0;
  }
}

std::string tensor_map_error(const TensorMapSpec& s) {
  const std::uint32_t elem = tma_element_bytes(s.dtype);
  if (elem == 0) return "unsupported tensor map data type " + std::to_string(static_cast<int>(s.dtype));
  if (s.rank < 1 || s.rank > 5) return "tensor map rank " + std::to_string(s.rank) + " is not in 1..5";
  if (!s.base) return "tensor map base is null";
  if (reinterpret_cast<std::uintptr_t>(s.base) % 16 != 0) return "TMA needs a 16-byte aligned base address";
  for (int i = 0; i < s.rank; ++i) {
    const std::string d = "dimension " + std::to_string(i);
    if (s.dims[i] == 0 || s.dims[i] > (std::uint64_t(1) << 32))
      return d + " has " + std::to_string(s.dims[i]) + " elements; TMA allows 1..2^32";
    if (s.box[i] == 0 || s.box[i] > 256)
      return d + ": box of " + std::to_string(s.box[i]) + " elements; TMA allows 1..256";
  }
  for (int i = 0; i + 1 < s.rank; ++i) {
    const std::string d = "dimension " + std::to_string(i + 1);
    if (s.strides[i] % 16 != 0)
      return d + "'s stride of " + std::to_string(s.strides[i]) +
             " bytes is not a multiple of 16 (TMA needs 16-byte aligned rows: for a row-major matrix, the row "
             "length in bytes must be a multiple of 16)";
    if (s.strides[i] >= (std::uint64_t(1) << 40))
      return d + "'s stride of " + std::to_string(s.strides[i]) + " bytes is not below 2^40";
    // The first stride spans at least one row of the innermost dimension.
    if (i == 0 && s.strides[0] < s.dims[0] * elem)
      return "dimension 1's stride of " + std::to_string(s.strides[0]) + " bytes is shorter than a row of " +
             std::to_string(s.dims[0] * elem) + " bytes";
  }
  const std::uint64_t inner_bytes = std::uint64_t(s.box[0]) * elem;
  if (inner_bytes % 16 != 0)
    return "the innermost box dimension is " + std::to_string(inner_bytes) + " bytes; TMA needs a multiple of 16";
  if (s.swizzle != CU_TENSOR_MAP_SWIZZLE_NONE) {
    const std::uint32_t span = swizzle_span(s.swizzle);
    if (span == 0) return "unsupported swizzle mode " + std::to_string(static_cast<int>(s.swizzle));
    if (inner_bytes > span)
      return "the innermost box dimension is " + std::to_string(inner_bytes) + " bytes, wider than the " +
             std::to_string(span) + "-byte swizzle span";
  }
  if (s.oob_fill == CU_TENSOR_MAP_FLOAT_OOB_FILL_NAN_REQUEST_ZERO_FMA &&
      (s.dtype == CU_TENSOR_MAP_DATA_TYPE_UINT8 || s.dtype == CU_TENSOR_MAP_DATA_TYPE_UINT16 ||
       s.dtype == CU_TENSOR_MAP_DATA_TYPE_UINT32 || s.dtype == CU_TENSOR_MAP_DATA_TYPE_INT32 ||
       s.dtype == CU_TENSOR_MAP_DATA_TYPE_UINT64 || s.dtype == CU_TENSOR_MAP_DATA_TYPE_INT64))
    return "NaN out-of-bounds fill needs a floating-point data type";
  return {};
}

CUtensorMap make_tensor_map(const TensorMapSpec& s) {
  if (const std::string e = tensor_map_error(s); !e.empty()) throw std::invalid_argument(e + " (" + shape_text(s) + ")");
  CUtensorMap map{};
  cuuint64_t dims[5], strides[4];
  cuuint32_t box[5], elem_strides[5];
  for (int i = 0; i < s.rank; ++i) {
    dims[i] = s.dims[i];
    box[i] = s.box[i];
    elem_strides[i] = 1;
  }
  for (int i = 0; i + 1 < s.rank; ++i) strides[i] = s.strides[i];
  const CUresult r = encode_tiled_fn()(&map, s.dtype, static_cast<cuuint32_t>(s.rank), const_cast<void*>(s.base),
                                       dims, strides, box, elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, s.swizzle,
                                       s.l2_promotion, s.oob_fill);
  if (r != CUDA_SUCCESS)
    throw std::runtime_error("cuTensorMapEncodeTiled failed with CUresult " + std::to_string(static_cast<int>(r)) +
                             " (" + shape_text(s) + ")");
  return map;
}

TensorMapSpec matrix_spec(CUtensorMapDataType dtype, const void* base, std::uint64_t rows, std::uint64_t cols,
                          std::uint64_t ld, std::uint32_t box_rows, std::uint32_t box_cols,
                          CUtensorMapSwizzle swizzle) {
  TensorMapSpec s;
  s.dtype = dtype;
  s.base = base;
  s.rank = 2;
  s.dims = {cols, rows, 0, 0, 0};
  s.strides = {ld * tma_element_bytes(dtype), 0, 0, 0};
  s.box = {box_cols, box_rows, 0, 0, 0};
  s.swizzle = swizzle;
  return s;
}

}  // namespace aipe::kernels
