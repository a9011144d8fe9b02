#pragma once
#include <ostream>

#include "aipe/device.hpp"

namespace aipe::cli {
// The human-readable device report of `aipe info`.
void print_device(std::ostream& os, const DeviceInfo& d, const SpecPeaks& spec);
}  // namespace aipe::cli
