#include "aipe/device.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "fixtures/devices.hpp"

using namespace aipe;
using aipe::fixtures::h100_sxm;

TEST(SpecPeaks, H100) {
  const SpecPeaks p = derive_spec_peaks(h100_sxm());
  EXPECT_TRUE(p.known_arch);
  EXPECT_NEAR(p.dram_gbps, 3352.3, 0.1);                     // 2 x 2619 MHz x 640 B
  EXPECT_NEAR(p.fp32_tflops, 256 * 132 * 1.98e9 / 1e12, 1e-9);  // 66.9
  EXPECT_NEAR(p.bf16_tflops, 4096 * 132 * 1.98e9 / 1e12, 1e-9); // 1070.5 at the max clock
  EXPECT_DOUBLE_EQ(p.fp8_tflops, 2 * p.bf16_tflops);
  EXPECT_DOUBLE_EQ(p.tf32_tflops, p.bf16_tflops / 2);
  EXPECT_DOUBLE_EQ(peak_tflops(p, ComputeUnit::bf16), p.bf16_tflops);
  EXPECT_DOUBLE_EQ(peak_tflops(p, ComputeUnit::none), 0);
}

TEST(SpecPeaks, UnknownArchKeepsBandwidthOnly) {
  DeviceInfo d = h100_sxm();
  d.cc_major = 42;
  const SpecPeaks p = derive_spec_peaks(d);
  EXPECT_FALSE(p.known_arch);
  EXPECT_GT(p.dram_gbps, 0);
  EXPECT_EQ(p.bf16_tflops, 0);
  EXPECT_EQ(d.arch_name(), "sm_420");
}

TEST(DeviceInfo, JsonRoundTrip) {
  DeviceInfo d = h100_sxm();
  d.uuid = "GPU-01234567-89ab-cdef-0123-456789abcdef";
  const nlohmann::json j = d;
  EXPECT_EQ(j.at("compute_capability"), "9.0");
  EXPECT_EQ(j.at("arch"), "Hopper");
  const DeviceInfo back = j.get<DeviceInfo>();
  EXPECT_EQ(back.name, d.name);
  EXPECT_EQ(back.cc(), 90);
  EXPECT_EQ(back.l2_bytes, d.l2_bytes);
  EXPECT_EQ(back.uuid, d.uuid);
}
