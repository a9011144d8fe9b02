// The ceilings results are judged against: spec peaks derived from the device, and the measured
// peaks `aipe peak` caches per GPU UUID.
#pragma once
#include <istream>
#include <optional>
#include <string>

#include "aipe/device.hpp"

namespace aipe {

// $AIPE_CACHE_DIR, else $XDG_CACHE_HOME/aipe, else $HOME/.cache/aipe.
std::string cache_dir();
std::string peak_cache_path(const std::string& uuid);

// Measured peaks for this GPU, if `aipe peak` cached them. Throws on a malformed cache file.
std::optional<SpecPeaks> load_measured_peaks(const std::string& uuid, std::string* source = nullptr);
// The cache file's reader (what load_measured_peaks uses), every field checked; errors name `path`.
SpecPeaks read_peak_cache(std::istream& is, const std::string& path, std::string* source = nullptr);
void save_measured_peaks(const std::string& uuid, const SpecPeaks& p, const std::string& source);

}  // namespace aipe
