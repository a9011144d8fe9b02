#include "aipe/ceilings.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "aipe/json_fields.hpp"
#include "aipe/output_file.hpp"

namespace aipe {

std::string cache_dir() {
  if (const char* d = std::getenv("AIPE_CACHE_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/aipe";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/aipe";
  return ".aipe-cache";
}

std::string peak_cache_path(const std::string& uuid) { return cache_dir() + "/peak-" + uuid + ".json"; }

SpecPeaks read_peak_cache(std::istream& is, const std::string& path, std::string* source) {
  try {
    const nlohmann::json j = nlohmann::json::parse(is);
    if (source) *source = fields::string(j, "source", "", path);
    SpecPeaks p;
    spec_peaks_from_json(fields::object(j, "peaks", ""), p, "peaks");
    return p;
  } catch (const std::exception& e) {
    throw std::runtime_error("malformed peak cache " + path + ": " + e.what() + " (delete it or rerun `aipe peak`)");
  }
}

std::optional<SpecPeaks> load_measured_peaks(const std::string& uuid, std::string* source) {
  const std::string path = peak_cache_path(uuid);
  std::ifstream f(path);
  if (!f) return std::nullopt;
  return read_peak_cache(f, path, source);
}

void save_measured_peaks(const std::string& uuid, const SpecPeaks& p, const std::string& source) {
  std::filesystem::create_directories(cache_dir());
  write_file(peak_cache_path(uuid), nlohmann::json{{"uuid", uuid}, {"source", source}, {"peaks", p}}.dump(2) + "\n");
}

}  // namespace aipe
