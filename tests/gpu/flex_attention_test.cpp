// ch18/flex_attention beyond the registry test's one small shape: both functor rungs verified (no timing) at
// d = 128 and 64, with document lengths that leave few tiles empty and many, and a row length no tile divides.
// dense_masked and block_sparse must run on a Hopper GPU (and skip only for want of one); cudnn skips with its
// reason.
#include <gtest/gtest.h>

#include <cstdint>
#include <iostream>
#include <map>
#include <string>

#include "aipe/device.hpp"
#include "aipe/registry.hpp"
#include "aipe/runner.hpp"
#include "../kernels/hopper_gpu.hpp"

using namespace aipe;

namespace {

TEST(FlexAttention, BothRungsVerifyAtAwkwardShapes) {
  if (auto why = gpu_unavailable_reason()) GTEST_SKIP() << *why;
  const RegistryEntry* e = Registry::instance().find("ch18/flex_attention");
  ASSERT_NE(e, nullptr);
  const std::map<std::string, std::int64_t> shapes[] = {
      {{"d", 128}, {"seq", 1000}, {"doc_max", 300}},
      {{"d", 128}, {"seq", 2049}, {"doc_max", 2049}, {"heads", 8}, {"kv_heads", 1}},
      {{"d", 64}, {"seq", 777}, {"doc_max", 40}, {"batch", 3}},
  };
  const bool hopper = !aipe::test::no_hopper("ch18/flex_attention");
  std::uint64_t salt = 0xF1E;
  for (const auto& sizes : shapes) {
    std::string label;
    for (const auto& [k, v] : sizes) label += " " + k + "=" + std::to_string(v);
    SCOPED_TRACE(label);
    RunOptions o;
    o.preset = SizePreset::small;
    o.verify_only = true;
    o.seed = ++salt;
    o.sizes = sizes;
    const RunReport r = run_examples({e}, o);
    ASSERT_EQ(r.results.size(), e->variant_names.size());
    for (const Result& res : r.results) {
      SCOPED_TRACE(res.variant);
      EXPECT_NE(res.status, Status::failed) << res.reason;
      if (hopper && res.variant != "cudnn") {
        EXPECT_NE(res.status, Status::skipped) << res.reason;
      }
      if (res.status == Status::skipped)
        std::cout << "[ SKIPPED VARIANT ] " << label << " " << res.variant << ": " << res.reason << "\n";
    }
  }
}

}  // namespace
