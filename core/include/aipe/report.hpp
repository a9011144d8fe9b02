// Results and the formats they are written in: an aligned terminal table, JSON (schema in
// docs/json-schema.md), CSV and Markdown. Host-only; golden-file tested.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "aipe/device.hpp"

namespace aipe {

enum class Status { passed, failed, skipped };
const char* to_string(Status s);
Status status_from_string(const std::string& s);

struct Result {
  std::string example;
  std::string variant;
  std::string summary;
  std::map<std::string, std::int64_t> sizes;
  std::map<std::string, std::string> choices;  // choice axes (mask=causal); absent from older files
  Status status = Status::skipped;
  std::string reason;       // why failed / skipped; empty when passed
  std::string note;         // a warning on a passed result (e.g. the blocking kernel timed out)
  std::string timing;       // how it was timed (Timing name)
  bool component = false;   // a partial measurement (Variant::component): not compared
  // verification
  double max_abs_error = 0;
  double max_rel_error = 0;
  double norm_rel_error = 0;
  // timing (absent for failed/skipped, and with --verify-only)
  bool timed = false;
  std::size_t samples = 0;
  double median_ms = 0, min_ms = 0, p90_ms = 0, noise = 0;
  std::string stop_reason;
  // work model and rates
  double bytes = 0, flops = 0, intensity = 0;
  std::string unit;         // compute unit the FLOPs are judged against ("bf16", "fp32", "" for none)
  double gbps = 0, tflops = 0;
  double pct_of_spec = 0;       // % of the roofline bound from spec peaks
  double pct_of_measured = 0;   // % of the roofline bound from `aipe peak` (0 when not measured)
  std::string bound;            // "memory" or "compute"
  double speedup_vs_baseline = 0;  // baseline median / this median (first passed rung = baseline)
  double speedup_vs_library = 0;   // library median / this median (0 when the ladder has no library rung)
  std::map<std::string, double> metrics;  // the rung's own numbers (Variant::metrics) and power readings
};

struct RunReport {
  std::string aipe_version;
  std::string git_revision;
  std::string timestamp;   // ISO 8601 UTC
  std::string command;
  std::optional<DeviceInfo> device;
  SpecPeaks spec;
  std::optional<SpecPeaks> measured;  // from `aipe peak`'s cache
  std::string measured_source;
  std::uint64_t seed = 0;
  std::vector<Result> results;
  bool bad_input = false;  // an example rejected its sizes (exit code 2)

  int failed() const;
  int passed() const;
  int skipped() const;
};

// Geometric mean, over examples that have both, of the best passed rung's speedup vs the baseline
// and vs the library rung. 0 when nothing qualifies.
struct Geomeans {
  double vs_baseline = 0;
  int n_baseline = 0;
  double vs_library = 0;
  int n_library = 0;
};
Geomeans geomeans(const std::vector<Result>& results);

// Passed, timed by the standard method (with or without the L2 flush), not a component: the results
// that take part in baselines, best rungs and ratios.
bool honestly_timed(const Result& r);

// Fills speedups and the baseline/library ratios within each example.
void compute_speedups(std::vector<Result>& results);

void write_table(std::ostream& os, const RunReport& r, bool color = false);
void write_json(std::ostream& os, const RunReport& r);
void write_csv(std::ostream& os, const RunReport& r);
void write_markdown(std::ostream& os, const RunReport& r);

// Reads a report written by write_json; throws std::runtime_error naming what is malformed.
RunReport read_json(std::istream& is);
// The same on JSON already parsed.
RunReport run_report_from_json(const nlohmann::json& j);

void to_json(nlohmann::json& j, const Result& r);
void from_json(const nlohmann::json& j, Result& r);

// Human formats shared by the table and Markdown: "1.234 ms", "812.4 µs", "3,012 GB/s".
std::string format_time_ms(double ms);
std::string format_rate(double v, int digits = 1);

}  // namespace aipe
