// In-process activity tracing with CUPTI: kernels (concurrent), memcpys, memsets and NVTX ranges,
// with their streams. CUPTI is loaded at run time (dlopen), so the aipe binary runs on machines
// without it and `aipe trace` says clearly what is missing.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "aipe/profile/trace.hpp"

namespace aipe::profile {

class CuptiTracer {
 public:
  // Loads CUPTI and points NVTX at it (NVTX_INJECTION64_PATH) so ranges are recorded; call before
  // the process's first NVTX call and, ideally, before the CUDA context exists. Throws
  // std::runtime_error naming what is missing.
  CuptiTracer();
  ~CuptiTracer();
  CuptiTracer(const CuptiTracer&) = delete;
  CuptiTracer& operator=(const CuptiTracer&) = delete;

  void start();
  // Flushes and returns everything recorded since start(), sorted by start time.
  std::vector<Activity> stop();
  std::uint64_t dropped() const;
  const std::string& library() const;

  // Where CUPTI was found, or why it cannot be loaded.
  static std::optional<std::string> locate(std::string* why = nullptr);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace aipe::profile
