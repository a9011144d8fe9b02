// Nsight Compute as a subprocess: finding `ncu`, the command line `aipe profile` runs it with, and a
// parser for its `--csv --page raw` output, reduced to a small set of per-variant numbers.
// Host-only: the parser is tested on recorded ncu output (tests/fixtures/).
#pragma once
#include <cmath>
#include <istream>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace aipe::profile {

struct NcuParseError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One profiled kernel launch: a row of the raw page. Metric values are converted to base units
// (ns, bytes, bytes/s, %, plain ratios); a value ncu printed as "n/a" or left empty is absent.
struct NcuKernel {
  std::string id;
  std::string name;
  std::string stream;
  std::map<std::string, double> metrics;
  std::optional<double> get(const std::string& metric) const;
};

struct NcuReport {
  std::vector<std::string> columns;          // metric names, in ncu's order
  std::map<std::string, std::string> units;  // as ncu printed them (before conversion)
  std::vector<NcuKernel> kernels;
};

// Parses the output of `ncu --csv --page raw` (ncu's own "==PROF==" lines may precede the table).
// Throws NcuParseError saying what is wrong: no header, a row with the wrong number of fields, an
// unterminated quote (a truncated file), a value that is not a number.
NcuReport parse_ncu_csv(std::istream& is);
NcuReport parse_ncu_csv_file(const std::string& path);

// The numbers `aipe profile` shows for one variant, over all kernels it launched (times summed;
// percentages weighted by each kernel's duration). NaN when ncu did not report the metric.
struct NcuSummary {
  int kernels = 0;
  double duration_ns = NAN;
  double dram_bytes = NAN;        // read + written
  double dram_gbps = NAN;         // dram_bytes / duration (decimal GB/s)
  double dram_pct = NAN;          // DRAM throughput, % of peak
  double sm_pct = NAN;            // SM throughput, % of peak
  double occupancy_pct = NAN;     // achieved occupancy: active warps / max warps per SM
  double tensor_pct = NAN;        // busiest tensor pipe, % of peak while the SM is active
  double l1_hit_pct = NAN;
  double l2_hit_pct = NAN;
  double l2_bytes = NAN;          // L2 sectors accessed (lts__t_sectors) x 32 bytes
  double l2_fabric_bytes = NAN;   // of those, sectors that came across the link between the two L2
                                  // partitions of A100 / H100 (lts__t_sectors_srcunit_ltcfabric) x 32 bytes
  std::vector<std::pair<std::string, double>> stalls;  // top warp-stall reasons: cycles per issued instruction
  std::string kernel_names;       // distinct kernel names, comma-separated (shortened)
};

NcuSummary summarize(const NcuReport& r, std::size_t top_stalls = 3);

// Adds a summary to a Result's metrics map under "ncu_..." keys (absent metrics are left out), so
// profiled numbers travel in the ordinary aipe.run/1 JSON.
void add_metrics(const NcuSummary& s, std::map<std::string, double>& out);

// ncu on PATH, else $CUDA_HOME/bin, else /usr/local/cuda/bin. `searched` lists where it looked.
std::optional<std::string> find_ncu(std::string* searched = nullptr);

// The ncu arguments (without the program): clocks left alone, only kernels inside the NVTX range
// `range`, raw page as CSV in base units. `set` is "default" or "full". `l2_fabric`: also count the L2
// traffic between the two L2 partitions (only GPUs with a partitioned L2 have that metric: compute
// capability 8.0 and 9.0; ncu refuses a metric the GPU lacks).
std::vector<std::string> ncu_args(const std::string& set, const std::string& range, const std::string& log_file,
                                  bool l2_fabric = false);

}  // namespace aipe::profile
