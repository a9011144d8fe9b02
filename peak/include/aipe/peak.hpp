// `aipe peak`: measures the ceilings a performance engineer reasons with (DRAM, caches, shared
// memory, latency, FP32/FP64, tensor cores through cuBLASLt, the host link, peer links) and keeps
// them as the roofline `aipe run` reports against. Each row carries how it was measured.
// Decimal units throughout: GB/s = 1e9 B/s, TFLOP/s = 1e12 FLOP/s; sizes of buffers are binary (KiB, MiB).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "aipe/device.hpp"

namespace aipe::peak {

// One measured ceiling.
struct Row {
  std::string group;       // dram, cache, latency, compute, tensor, host, p2p, sweep
  std::string name;        // stable key, e.g. "dram_copy_sm"
  std::string what;        // human label
  std::string method;      // how it was measured, with the formula
  std::string unit;        // "GB/s", "TFLOP/s", "TOP/s", "cycles"
  double value = 0;        // the measured value (best over the configurations tried)
  double spec = 0;         // the data-sheet value it is judged against; 0 = none
  std::string spec_basis;  // where the spec value comes from
  std::string config;      // the winning configuration
  bool skipped = false;
  std::string reason;      // why skipped (or why a spec is missing)
  std::map<std::string, double> extra;  // supporting numbers (bytes, median_ms, ns_per_hop, ...)
  // Compute ceilings (groups compute and tensor): `value` is the sustained figure, measured after a
  // warm-up that brought the SM clock and power to their steady state; `burst` is the same call
  // measured first, on the GPU as it was (cold: clocks at their maximum until the power cap bites).
  // sm_mhz and power_w: NVML medians while `value` was measured. 0 = not measured (old files: value
  // was a burst figure then, and these are absent).
  double burst = 0;
  double sm_mhz = 0, power_w = 0;

  double pct_of_spec() const { return (!skipped && spec > 0) ? 100.0 * value / spec : 0.0; }
};

struct Options {
  bool quick = false;                      // smaller buffers, fewer configurations and shapes: < 1 minute
  int device = 0;
  std::vector<std::string> groups;         // only these groups (empty: all)
  std::function<void(const std::string&)> progress;
};

struct Report {
  std::string aipe_version, git_revision, timestamp, command;
  DeviceInfo device;
  SpecPeaks spec;
  int gpu_count = 1;
  bool quick = false;
  double seconds = 0;
  std::vector<Row> rows;

  const Row* find(const std::string& name) const;
};

// Runs the measurements (needs a GPU).
Report run_peak(const Options& o);

// ---- host-only logic (CPU-tested) ----

// Known groups, in output order.
const std::vector<std::string>& groups();
bool valid_group(const std::string& g);

// Decimal rates from a byte/FLOP count and milliseconds.
double gbps(double bytes, double ms);
double tflops(double flops, double ms);
// Two directions running at once: the bytes each direction moved, summed, over the shared time.
double bidirectional_gbps(double bytes_a_to_b, double bytes_b_to_a, double ms);

// PCIe payload bandwidth per direction for a link generation and width: transfer rate x lanes x
// encoding efficiency / 8 (Gen1-2: 8b/10b; Gen3-5: 128b/130b; Gen6: 242/256 FLIT). 0 when unknown.
double pcie_gbps_per_direction(int gen, int width);
// NVLink per direction: links x per-link rate (NVLink 2-4: 25 GB/s, NVLink 5: 50 GB/s). 0 when unknown.
double nvlink_gbps_per_direction(int version, int links);
// NVML's nvmlDeviceGetNvLinkVersion answers with its nvmlNvlinkVersion_t enum (1: 1.0, 2: 2.0, 3: 2.2,
// 4: 3.0, 5: 3.1, 6: 4.0, 7: 5.0), not the major version: an H100 answers 6. Returns the major version
// (0 when unknown).
int nvlink_major_from_nvml(unsigned nvml_version);
// Shared-memory bandwidth from the data sheet: 32 banks x 4 B per clock per SM.
double smem_spec_gbps(const DeviceInfo& d);

// The working sets of the bandwidth sweep: 4 KiB, x4 steps up to 16 MiB, L2/2, L2, 2xL2, 4xL2, then
// x4 steps up to `max_bytes` (1 GiB unless memory is short). Sorted, unique, multiples of 4 KiB.
std::vector<std::uint64_t> sweep_sizes(std::uint64_t l2_bytes, std::uint64_t max_bytes);

// Every ordered pair (src != dst) of n GPUs, with whether the src can access the dst's memory.
struct PeerPair {
  int src = 0, dst = 0;
  bool peer_access = false;
  std::string label() const;  // "0->1"
};
std::vector<PeerPair> peer_pairs(int n, const std::function<bool(int, int)>& can_access);
// The unordered pairs {i<j}, for bidirectional measurements.
std::vector<PeerPair> peer_pairs_bidirectional(int n, const std::function<bool(int, int)>& can_access);

// The measured ceilings to cache: DRAM = best DRAM row (copy, read or write, SM or copy engine);
// compute = the FP32/FP64 kernels; tensor = best cuBLASLt result per type over all shapes.
// Values not measured in this report are taken from `previous` (a partial run keeps the rest).
SpecPeaks measured_peaks(const Report& r, const SpecPeaks* previous = nullptr);

// ---- steady state of the compute ceilings ----
// A compute ceiling is what the GPU sustains: the call runs back to back while NVML is sampled, until
// the SM clock stops falling and the power draw stops moving (the power cap and the temperature have
// settled), then it is measured. Criterion: the median SM clock of the last `window_s` is at least
// (1 - clock_tol) x that of the window before, and the median power is within power_tol of it;
// never before min_s (NVML's power reading on Hopper is itself a 1-second average), and timed out
// at max_s.
struct SteadyCriterion {
  double window_s = 0.5;
  double clock_tol = 0.01;
  double power_tol = 0.03;
  double min_s = 1.5;
  double max_s = 10.0;
};
struct TimedSample {
  double t_s = 0;  // seconds since the warm-up began
  double sm_mhz = 0, power_w = 0;
};
enum class Steadiness { warming, steady, timed_out };
const char* to_string(Steadiness s);
Steadiness steady_state(const std::vector<TimedSample>& samples, const SteadyCriterion& c);

// The SM clock the data sheet quotes the compute peaks at (MHz), for the GPUs aipe knows; 0 = unknown.
// H100 SXM and H200 SXM: 1830 MHz (989.4 TFLOP/s dense BF16 = 132 SMs x 4096 FLOP/clock x 1830 MHz);
// A100: 1410 MHz (its max clock).
double datasheet_sm_clock_mhz(const DeviceInfo& d);
// spec_basis text of a compute row: the per-SM rate, which clock aipe's spec assumes (the device's
// max SM clock) and, where known, the data sheet's clock and the spec at it.
std::string compute_spec_basis(const std::string& rate, const DeviceInfo& d, double spec, const std::string& unit);

// "4 KiB", "50 MiB", "1 GiB": binary sizes of buffers.
std::string format_bytes(std::uint64_t b);

void to_json(nlohmann::json& j, const Row& r);
void from_json(const nlohmann::json& j, Row& r);
void to_json(nlohmann::json& j, const Report& r);
Report report_from_json(const nlohmann::json& j);

// The table (measured, spec, % of spec, configuration), then the bandwidth sweep, then each method.
void print_report(std::ostream& os, const Report& r);

}  // namespace aipe::peak
