// The run loop: for each selected example, setup, then for each variant: requirements, poison,
// one launch, verify, and only then measure. A failed verification gets no timing.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "aipe/example.hpp"
#include "aipe/registry.hpp"
#include "aipe/report.hpp"
#include "aipe/stats.hpp"

namespace aipe {

struct RunOptions {
  std::vector<std::string> variants;               // empty: all
  std::map<std::string, std::int64_t> sizes;       // --size overrides
  SizePreset preset = SizePreset::def;
  bool verify_only = false;
  // For `aipe profile` and `aipe trace`: instead of measuring, launch each verified variant this many
  // times more, each launch inside an NVTX range (named `nvtx_range`, or "example/variant" when that
  // is empty), then synchronize. The results are passed but untimed. 0: measure as usual.
  int profile_launches = 0;
  std::string nvtx_range;
  std::uint64_t seed = 0x5eed;
  StopCriteria stop;
  int device = 0;
  // progress lines ("[2/9] ch07/copy · vec4"), called before each variant
  std::function<void(const std::string&)> progress;
};

// Resolves an example's sizes: preset value, then --size overrides for the axes it has.
// Throws BadInput for a value outside an axis's range.
std::map<std::string, std::int64_t> resolve_sizes(const ExampleInfo& info, const RunOptions& o);

// Why a requirement is unmet on this device (or this build), or "".
std::string unmet_requirement(const Requirements& r, const DeviceInfo& d, int gpu_count);

RunReport run_examples(const std::vector<const RegistryEntry*>& selected, const RunOptions& opts);

StopCriteria stop_criteria_for(SizePreset preset);

}  // namespace aipe
