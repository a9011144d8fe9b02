// The run loop: select the rungs, set the example up, then for each rung: requirements, poison,
// prepare, one launch, verify, and only then measure. A failed verification gets no timing.
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
  std::map<std::string, std::int64_t> sizes;       // --size overrides of integer axes
  std::map<std::string, std::string> choices;      // --size overrides of choice axes (mask=causal)
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

// Resolves an example's integer sizes: preset value, then --size overrides for the axes it has.
// Throws BadInput for a value outside an axis's range.
std::map<std::string, std::int64_t> resolve_sizes(const ExampleInfo& info, const RunOptions& o);
// The same for its choice axes; throws BadInput naming the valid choices for one it does not have.
std::map<std::string, std::string> resolve_choices(const ExampleInfo& info, const RunOptions& o);

// Why a requirement is unmet on this device (or this build), or "".
std::string unmet_requirement(const Requirements& r, const DeviceInfo& d, int gpu_count);

RunReport run_examples(const std::vector<const RegistryEntry*>& selected, const RunOptions& opts);

StopCriteria stop_criteria_for(SizePreset preset);

}  // namespace aipe
