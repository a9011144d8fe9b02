#pragma once
#include <optional>
#include <ostream>
#include <string>

#include "aipe/device.hpp"

namespace aipe::cli {
// The human-readable device report of `aipe info`.
void print_device(std::ostream& os, const DeviceInfo& d, const SpecPeaks& spec);
// The peaks `aipe peak` measured and cached for this GPU, or why there are none.
void print_measured(std::ostream& os, const std::optional<SpecPeaks>& m, const std::string& source,
                    const std::string& why);
}  // namespace aipe::cli
