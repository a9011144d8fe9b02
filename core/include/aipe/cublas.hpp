// cuBLAS / cuBLASLt handles as RAII owners and a status check naming the failing call.
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>

#include <utility>

namespace aipe {

[[noreturn]] void throw_cublas_error(cublasStatus_t s, const char* call, const char* file, int line);

class CublasHandle {
 public:
  CublasHandle() = default;  // empty: touches no GPU (examples are constructed without one)
  static CublasHandle create();
  ~CublasHandle() { if (h_) cublasDestroy(h_); }
  CublasHandle(CublasHandle&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  CublasHandle& operator=(CublasHandle&& o) noexcept { std::swap(h_, o.h_); return *this; }
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  cublasHandle_t get() const { return h_; }
  operator cublasHandle_t() const { return h_; }

 private:
  cublasHandle_t h_ = nullptr;
};

class CublasLtHandle {
 public:
  CublasLtHandle() = default;
  static CublasLtHandle create();
  ~CublasLtHandle() { if (h_) cublasLtDestroy(h_); }
  CublasLtHandle(CublasLtHandle&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  CublasLtHandle& operator=(CublasLtHandle&& o) noexcept { std::swap(h_, o.h_); return *this; }
  CublasLtHandle(const CublasLtHandle&) = delete;
  CublasLtHandle& operator=(const CublasLtHandle&) = delete;
  cublasLtHandle_t get() const { return h_; }
  operator cublasLtHandle_t() const { return h_; }

 private:
  cublasLtHandle_t h_ = nullptr;
};

}  // namespace aipe

#define AIPE_CUBLAS(call)                                                      \
  do {                                                                         \
    const cublasStatus_t aipe_cublas_status_ = (call);                         \
    if (aipe_cublas_status_ != CUBLAS_STATUS_SUCCESS)                          \
      ::aipe::throw_cublas_error(aipe_cublas_status_, #call, __FILE__, __LINE__); \
  } while (0)
