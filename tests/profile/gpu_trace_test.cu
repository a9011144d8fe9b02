// GPU tier: a real CUPTI trace of a two-stream run. Two kernels that each spin for ~2 ms are put on
// two streams at once; the trace must be valid trace-event JSON, hold both kernels with their
// streams, show them overlapping in time, and hold the NVTX range around the launches.
#include <gtest/gtest.h>
#include <nvtx3/nvToolsExt.h>

#include <nlohmann/json.hpp>
#include <set>

#include "aipe/buffer.hpp"
#include "aipe/check.hpp"
#include "aipe/device.hpp"
#include "aipe/profile/cupti_tracer.hpp"
#include "aipe/profile/trace.hpp"

namespace {

__global__ void spin_kernel(long long cycles, int* out) {
  const long long t0 = clock64();
  while (clock64() - t0 < cycles) {
  }
  if (threadIdx.x == 0) out[blockIdx.x] = 1;
}

}  // namespace

TEST(ProfileGpu, TraceShowsTwoStreamsOverlapping) {
  if (auto why = aipe::gpu_unavailable_reason()) GTEST_SKIP() << *why;
  std::string missing;
  if (!aipe::profile::CuptiTracer::locate(&missing)) GTEST_SKIP() << missing;
  aipe::profile::CuptiTracer tracer;
  const aipe::DeviceInfo d = aipe::query_device(0);
  const long long cycles = static_cast<long long>(d.max_sm_clock_khz) * 2;  // ~2 ms at the max clock
  aipe::DeviceBuffer<int> out(2);
  aipe::Stream a, b;
  AIPE_CUDA(cudaDeviceSynchronize());
  tracer.start();
  nvtxRangePushA("two_streams");
  spin_kernel<<<1, 32, 0, a>>>(cycles, out.get());
  AIPE_CHECK_LAUNCH();
  spin_kernel<<<1, 32, 0, b>>>(cycles, out.get() + 1);
  AIPE_CHECK_LAUNCH();
  nvtxRangePop();
  AIPE_CUDA(cudaDeviceSynchronize());
  const auto acts = tracer.stop();

  std::set<std::uint32_t> streams;
  int kernels = 0, ranges = 0;
  for (const auto& x : acts) {
    if (x.kind == aipe::profile::Activity::Kind::kernel && x.name.find("spin_kernel") != std::string::npos) {
      ++kernels;
      streams.insert(x.stream);
      EXPECT_GT(x.end_ns, x.start_ns);
    }
    if (x.kind == aipe::profile::Activity::Kind::range && x.name == "two_streams") ++ranges;
  }
  EXPECT_EQ(kernels, 2);
  EXPECT_EQ(streams.size(), 2u);
  EXPECT_EQ(ranges, 1) << "NVTX range not recorded (NVTX_INJECTION64_PATH -> CUPTI)";
  // Each kernel runs ~2 ms; launched back to back on idle streams they must overlap for most of it.
  EXPECT_GT(aipe::profile::max_cross_stream_kernel_overlap_ns(acts), 1'000'000u);
  const nlohmann::json j = aipe::profile::chrome_trace(acts);
  EXPECT_EQ(aipe::profile::validate_chrome_trace(j), "");
}
