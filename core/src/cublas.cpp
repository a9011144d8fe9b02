#include "aipe/cublas.hpp"

#include <string>

#include "aipe/check.hpp"

namespace aipe {

void throw_cublas_error(cublasStatus_t s, const char* call, const char* file, int line) {
  std::string where = file;
  if (auto p = where.rfind("/examples/"); p != std::string::npos) where = where.substr(p + 1);
  // An allocation failure inside cuBLAS is an out-of-memory, not a bug: say so.
  throw CudaError(s == CUBLAS_STATUS_ALLOC_FAILED ? cudaErrorMemoryAllocation : cudaErrorNotSupported,
                  std::string(cublasGetStatusName(s)) + " (" + cublasGetStatusString(s) + ") in " + call + " at " +
                      where + ":" + std::to_string(line));
}

CublasHandle CublasHandle::create() {
  cublasHandle_t h = nullptr;
  AIPE_CUBLAS(cublasCreate(&h));
  return CublasHandle(h);
}
CublasLtHandle CublasLtHandle::create() {
  cublasLtHandle_t h = nullptr;
  AIPE_CUBLAS(cublasLtCreate(&h));
  return CublasLtHandle(h);
}

LtMatmulDesc lt_matmul_desc(cublasComputeType_t compute, cudaDataType_t scale, cublasOperation_t trans_a,
                            cublasOperation_t trans_b) {
  cublasLtMatmulDesc_t d = nullptr;
  AIPE_CUBLAS(cublasLtMatmulDescCreate(&d, compute, scale));
  LtMatmulDesc owned(d);
  lt_set(d, CUBLASLT_MATMUL_DESC_TRANSA, trans_a);
  lt_set(d, CUBLASLT_MATMUL_DESC_TRANSB, trans_b);
  return owned;
}

LtLayout lt_layout(cudaDataType_t type, std::uint64_t rows, std::uint64_t cols, std::int64_t ld) {
  cublasLtMatrixLayout_t l = nullptr;
  AIPE_CUBLAS(cublasLtMatrixLayoutCreate(&l, type, rows, cols, ld));
  return LtLayout(l);
}

std::vector<LtAlgo> lt_heuristics(cublasLtHandle_t lt, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t a,
                                  cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                  std::size_t workspace_bytes, int want, std::string* why) {
  struct PrefDestroy {
    void operator()(cublasLtMatmulPreference_t p) const { cublasLtMatmulPreferenceDestroy(p); }
  };
  using Pref = CublasOwned<cublasLtMatmulPreference_t, PrefDestroy>;
  cublasLtMatmulPreference_t p = nullptr;
  AIPE_CUBLAS(cublasLtMatmulPreferenceCreate(&p));
  const Pref pref(p);
  AIPE_CUBLAS(cublasLtMatmulPreferenceSetAttribute(p, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes,
                                                   sizeof workspace_bytes));
  std::vector<cublasLtMatmulHeuristicResult_t> res(static_cast<std::size_t>(want > 0 ? want : 1));
  int found = 0;
  const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt, desc, a, b, c, d, p, int(res.size()), res.data(), &found);
  if (st != CUBLAS_STATUS_SUCCESS || found <= 0) {
    if (why)
      *why = st != CUBLAS_STATUS_SUCCESS ? std::string("cuBLASLt offers no algorithm (") + cublasGetStatusName(st) + ")"
                                         : "cuBLASLt found no algorithm for this problem";
    return {};
  }
  std::vector<LtAlgo> out;
  for (int i = 0; i < found && i < int(res.size()); ++i) out.push_back({res[i].algo, res[i].state, res[i].workspaceSize});
  return out;
}

}  // namespace aipe
