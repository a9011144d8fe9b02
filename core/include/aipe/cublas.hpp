// cuBLAS / cuBLASLt objects as RAII owners, a status check naming the failing call, and the few calls
// every cuBLASLt matmul needs (descriptor, layouts, the heuristic's algorithms), written once.
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace aipe {

[[noreturn]] void throw_cublas_error(cublasStatus_t s, const char* call, const char* file, int line);

// Owner of one cuBLAS / cuBLASLt object (library handle, matmul descriptor, matrix layout, preference):
// empty until created, destroyed with it, movable, not copyable. `Destroy` is a function object.
template <class H, class Destroy>
class CublasOwned {
 public:
  CublasOwned() = default;  // empty: touches no GPU (examples are constructed without one)
  explicit CublasOwned(H h) : h_(h) {}
  ~CublasOwned() { if (h_) Destroy{}(h_); }
  CublasOwned(CublasOwned&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  CublasOwned& operator=(CublasOwned&& o) noexcept { std::swap(h_, o.h_); return *this; }
  CublasOwned(const CublasOwned&) = delete;
  CublasOwned& operator=(const CublasOwned&) = delete;
  H get() const { return h_; }
  operator H() const { return h_; }

 private:
  H h_ = nullptr;
};
struct CublasDestroy {
  void operator()(cublasHandle_t h) const { cublasDestroy(h); }
};
struct CublasLtDestroy {
  void operator()(cublasLtHandle_t h) const { cublasLtDestroy(h); }
};
struct LtDescDestroy {
  void operator()(cublasLtMatmulDesc_t d) const { cublasLtMatmulDescDestroy(d); }
};
struct LtLayoutDestroy {
  void operator()(cublasLtMatrixLayout_t l) const { cublasLtMatrixLayoutDestroy(l); }
};

class CublasHandle : public CublasOwned<cublasHandle_t, CublasDestroy> {
 public:
  using CublasOwned::CublasOwned;
  static CublasHandle create();
};
class CublasLtHandle : public CublasOwned<cublasLtHandle_t, CublasLtDestroy> {
 public:
  using CublasOwned::CublasOwned;
  static CublasLtHandle create();
};
using LtMatmulDesc = CublasOwned<cublasLtMatmulDesc_t, LtDescDestroy>;
using LtLayout = CublasOwned<cublasLtMatrixLayout_t, LtLayoutDestroy>;

// A matmul descriptor: compute type, scale type, and the operations applied to A and B.
LtMatmulDesc lt_matmul_desc(cublasComputeType_t compute, cudaDataType_t scale, cublasOperation_t trans_a,
                            cublasOperation_t trans_b);
// A column-major matrix layout: rows x cols, leading dimension ld (elements).
LtLayout lt_layout(cudaDataType_t type, std::uint64_t rows, std::uint64_t cols, std::int64_t ld);
// One attribute of a matmul descriptor (bias pointer, epilogue, scale pointers and modes, ...).
template <class T>
void lt_set(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr, const T& value);

// One algorithm the heuristic offered. (A named struct: nvcc 13.0's front end crashes on a std::vector of
// cuBLASLt's typedef'd cublasLtMatmulHeuristicResult_t.)
struct LtAlgo {
  cublasLtMatmulAlgo_t algo;
  cublasStatus_t state;         // CUBLAS_STATUS_SUCCESS if it can run
  std::size_t workspace_bytes;  // what it needs
};

// Up to `want` algorithms from cuBLASLt's heuristic for D = op(A) op(B) (+ C), best first, each within
// `workspace_bytes` of workspace. Empty when it offers none; `why` (if given) then says what it returned.
std::vector<LtAlgo> lt_heuristics(cublasLtHandle_t lt, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t a,
                                  cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                  std::size_t workspace_bytes, int want, std::string* why = nullptr);

}  // namespace aipe

#define AIPE_CUBLAS(call)                                                      \
  do {                                                                         \
    const cublasStatus_t aipe_cublas_status_ = (call);                         \
    if (aipe_cublas_status_ != CUBLAS_STATUS_SUCCESS)                          \
      ::aipe::throw_cublas_error(aipe_cublas_status_, #call, __FILE__, __LINE__); \
  } while (0)

namespace aipe {
template <class T>
void lt_set(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr, const T& value) {
  AIPE_CUBLAS(cublasLtMatmulDescSetAttribute(desc, attr, &value, sizeof value));
}
}  // namespace aipe
