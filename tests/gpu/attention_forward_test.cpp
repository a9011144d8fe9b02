// ch18/attention_forward beyond the registry test's one small shape: every rung verified (no timing) at shapes
// no tile divides, for each head dimension and mask, bottom-right causal with seq_kv > seq_q and with
// seq_q > seq_kv (the first rows see no key: O = 0, LSE = -inf), MHA and MQA. The two rungs written in the
// example (materialized, fa2_mma) must run; the library and cuDNN rungs may skip with a reason.
#include <gtest/gtest.h>

#include <cstdint>
#include <iostream>
#include <map>
#include <string>

#include "aipe/device.hpp"
#include "aipe/registry.hpp"
#include "aipe/runner.hpp"

using namespace aipe;

namespace {

struct Shape {
  std::map<std::string, std::int64_t> sizes;
  std::string mask;
};

TEST(AttentionForward, EveryRungVerifiesAtAwkwardShapes) {
  if (auto why = gpu_unavailable_reason()) GTEST_SKIP() << *why;
  const RegistryEntry* e = Registry::instance().find("ch18/attention_forward");
  ASSERT_NE(e, nullptr);
  const Shape shapes[] = {
      {{{"d", 128}}, "none"},
      {{{"d", 128}, {"seq_kv", 461}}, "causal"},
      {{{"seq_q", 461}, {"seq_kv", 200}}, "causal"},
      {{{"heads", 4}, {"kv_heads", 4}, {"seq_q", 300}, {"seq_kv", 300}}, "none"},
      {{{"heads", 8}, {"kv_heads", 1}, {"d", 128}, {"seq_q", 129}, {"seq_kv", 777}}, "causal"},
      {{{"batch", 1}, {"seq_q", 1}, {"seq_kv", 65}}, "causal"},
  };
  std::uint64_t salt = 0xA77E;
  for (const Shape& s : shapes) {
    std::string label = "mask=" + s.mask;
    for (const auto& [k, v] : s.sizes) label += " " + k + "=" + std::to_string(v);
    SCOPED_TRACE(label);
    RunOptions o;
    o.preset = SizePreset::small;
    o.verify_only = true;
    o.seed = ++salt;
    o.sizes = s.sizes;
    o.choices["mask"] = s.mask;
    const RunReport r = run_examples({e}, o);
    ASSERT_EQ(r.results.size(), e->variant_names.size());
    for (const Result& res : r.results) {
      SCOPED_TRACE(res.variant);
      EXPECT_NE(res.status, Status::failed) << res.reason;
      if (res.variant == "materialized" || res.variant == "fa2_mma") EXPECT_NE(res.status, Status::skipped) << res.reason;
      if (res.status == Status::skipped)
        std::cout << "[ SKIPPED VARIANT ] " << label << " " << res.variant << ": " << res.reason << "\n";
    }
  }
}

}  // namespace
