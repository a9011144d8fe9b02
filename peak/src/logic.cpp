// Host-only logic of `aipe peak`: units, link rates, the sweep's sizes, peer pairs, the cached
// peaks, JSON and the table. Tested without a GPU (tests/peak/).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>
#include <nlohmann/json.hpp>

#include "aipe/json_fields.hpp"

#include "aipe/peak.hpp"

namespace aipe::peak {

const Row* Report::find(const std::string& name) const {
  for (const Row& r : rows)
    if (r.name == name) return &r;
  return nullptr;
}

const std::vector<std::string>& groups() {
  static const std::vector<std::string> g = {"dram", "cache", "latency", "compute", "tensor", "host", "p2p", "sweep"};
  return g;
}

bool valid_group(const std::string& g) { return std::find(groups().begin(), groups().end(), g) != groups().end(); }

double gbps(double bytes, double ms) { return ms > 0 ? bytes / (ms * 1e-3) / 1e9 : 0; }
double tflops(double flops, double ms) { return ms > 0 ? flops / (ms * 1e-3) / 1e12 : 0; }
double bidirectional_gbps(double a_to_b, double b_to_a, double ms) { return gbps(a_to_b + b_to_a, ms); }

double pcie_gbps_per_direction(int gen, int width) {
  if (width <= 0) return 0;
  double gtps = 0, eff = 0;  // transfers per second per lane (1e9), line-code efficiency
  switch (gen) {
    case 1: gtps = 2.5, eff = 8.0 / 10.0; break;
    case 2: gtps = 5.0, eff = 8.0 / 10.0; break;
    case 3: gtps = 8.0, eff = 128.0 / 130.0; break;
    case 4: gtps = 16.0, eff = 128.0 / 130.0; break;
    case 5: gtps = 32.0, eff = 128.0 / 130.0; break;
    case 6: gtps = 64.0, eff = 242.0 / 256.0; break;
    default: return 0;
  }
  return gtps * width * eff / 8.0;
}

double nvlink_gbps_per_direction(int version, int links) {
  if (links <= 0) return 0;
  double per_link = 0;
  switch (version) {
    case 2: case 3: case 4: per_link = 25.0; break;
    case 5: per_link = 50.0; break;
    default: return 0;
  }
  return per_link * links;
}

int nvlink_major_from_nvml(unsigned v) {
  switch (v) {
    case 1: return 1;
    case 2: case 3: return 2;
    case 4: case 5: return 3;
    case 6: return 4;
    case 7: return 5;
    default: return 0;
  }
}

double smem_spec_gbps(const DeviceInfo& d) {
  return 32.0 * 4.0 * d.sm_count * (d.max_sm_clock_khz * 1e3) / 1e9;
}

std::vector<std::uint64_t> sweep_sizes(std::uint64_t l2, std::uint64_t max_bytes) {
  std::vector<std::uint64_t> v;
  auto add = [&](std::uint64_t b) {
    b = (b / 4096) * 4096;
    if (b >= 4096 && b <= max_bytes) v.push_back(b);
  };
  for (std::uint64_t b = 4096; b <= (16ull << 20); b *= 4) add(b);
  if (l2) {
    add(l2 / 2);
    add(l2);
    add(2 * l2);
    add(4 * l2);
  }
  for (std::uint64_t b = 64ull << 20; b <= max_bytes; b *= 4)
    if (b > 4 * l2) add(b);
  add(max_bytes);
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

std::string PeerPair::label() const { return std::to_string(src) + "->" + std::to_string(dst); }

std::vector<PeerPair> peer_pairs(int n, const std::function<bool(int, int)>& can) {
  std::vector<PeerPair> p;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j)
      if (i != j) p.push_back({i, j, can(i, j)});
  return p;
}

std::vector<PeerPair> peer_pairs_bidirectional(int n, const std::function<bool(int, int)>& can) {
  std::vector<PeerPair> p;
  for (int i = 0; i < n; ++i)
    for (int j = i + 1; j < n; ++j) p.push_back({i, j, can(i, j) && can(j, i)});
  return p;
}

SpecPeaks measured_peaks(const Report& r, const SpecPeaks* previous) {
  SpecPeaks m = previous ? *previous : SpecPeaks{};
  m.known_arch = r.spec.known_arch;
  auto best = [&](const std::string& group, const std::string& prefix) {
    double b = 0;
    for (const Row& x : r.rows)
      if (!x.skipped && x.group == group && x.name.rfind(prefix, 0) == 0) b = std::max(b, x.value);
    return b;
  };
  auto set = [](double& field, double v) {
    if (v > 0) field = v;
  };
  set(m.dram_gbps, best("dram", "dram_"));
  set(m.fp32_tflops, best("compute", "fp32"));
  set(m.fp64_tflops, best("compute", "fp64"));
  set(m.tf32_tflops, best("tensor", "tf32"));
  set(m.bf16_tflops, best("tensor", "bf16"));
  set(m.fp16_tflops, best("tensor", "fp16"));
  set(m.fp8_tflops, best("tensor", "fp8"));
  set(m.int8_tops, best("tensor", "int8"));
  return m;
}

const char* to_string(Steadiness s) {
  switch (s) {
    case Steadiness::warming: return "warming";
    case Steadiness::steady: return "steady";
    case Steadiness::timed_out: return "timed out";
  }
  return "";
}

Steadiness steady_state(const std::vector<TimedSample>& v, const SteadyCriterion& c) {
  if (v.empty()) return Steadiness::warming;
  const double now = v.back().t_s;
  if (now >= c.max_s) return Steadiness::timed_out;
  if (now < c.min_s) return Steadiness::warming;
  // Medians of the samples in (now - 2w, now - w] and (now - w, now].
  auto median_of = [&](double lo, double hi, double TimedSample::*f) {
    std::vector<double> x;
    for (const TimedSample& s : v)
      if (s.t_s > lo && s.t_s <= hi) x.push_back(s.*f);
    if (x.size() < 3) return -1.0;  // too few to say anything
    std::sort(x.begin(), x.end());
    return x.size() % 2 ? x[x.size() / 2] : 0.5 * (x[x.size() / 2 - 1] + x[x.size() / 2]);
  };
  const double w = c.window_s;
  const double clk_prev = median_of(now - 2 * w, now - w, &TimedSample::sm_mhz),
               clk_last = median_of(now - w, now, &TimedSample::sm_mhz),
               p_prev = median_of(now - 2 * w, now - w, &TimedSample::power_w),
               p_last = median_of(now - w, now, &TimedSample::power_w);
  if (clk_prev <= 0 || clk_last <= 0 || p_prev <= 0 || p_last <= 0) return Steadiness::warming;
  const bool clock_settled = clk_last >= (1.0 - c.clock_tol) * clk_prev;
  const bool power_settled = std::fabs(p_last - p_prev) <= c.power_tol * p_prev;
  return clock_settled && power_settled ? Steadiness::steady : Steadiness::warming;
}

double datasheet_sm_clock_mhz(const DeviceInfo& d) {
  // Exact names as the driver reports them: the PCIe and NVL boards have other clocks and power limits.
  if (d.name == "NVIDIA H100 80GB HBM3" || d.name == "NVIDIA H200") return 1830;
  if (d.name.rfind("NVIDIA A100", 0) == 0) return 1410;
  return 0;
}

std::string compute_spec_basis(const std::string& rate, const DeviceInfo& d, double spec, const std::string& unit) {
  const double max_mhz = d.max_sm_clock_khz / 1000.0;
  char b[384];
  std::snprintf(b, sizeof b, "%s x %d SMs x %.0f MHz (the device's max SM clock: a burst figure, above what the power cap "
                "sustains)", rate.c_str(), d.sm_count, max_mhz);
  std::string s = b;
  const double sheet = datasheet_sm_clock_mhz(d);
  if (sheet > 0 && max_mhz > 0 && spec > 0) {
    std::snprintf(b, sizeof b, "; at the data sheet's %.0f MHz: %.4g %s", sheet, spec * sheet / max_mhz, unit.c_str());
    s += b;
  }
  return s + ".";
}

std::string format_bytes(std::uint64_t b) {
  char s[32];
  if (b >= (1ull << 30) && b % (1ull << 30) == 0) std::snprintf(s, sizeof s, "%llu GiB", (unsigned long long)(b >> 30));
  else if (b >= (1ull << 20) && b % (1ull << 20) == 0) std::snprintf(s, sizeof s, "%llu MiB", (unsigned long long)(b >> 20));
  else if (b >= (1ull << 20)) std::snprintf(s, sizeof s, "%.1f MiB", b / 1048576.0);
  else if (b >= 1024 && b % 1024 == 0) std::snprintf(s, sizeof s, "%llu KiB", (unsigned long long)(b >> 10));
  else std::snprintf(s, sizeof s, "%llu B", (unsigned long long)b);
  return s;
}

void to_json(nlohmann::json& j, const Row& r) {
  j = nlohmann::json{{"group", r.group}, {"name", r.name},     {"what", r.what},       {"method", r.method},
                     {"unit", r.unit},   {"value", r.value},   {"spec", r.spec},       {"spec_basis", r.spec_basis},
                     {"config", r.config}, {"skipped", r.skipped}, {"reason", r.reason}, {"extra", r.extra}};
  j["pct_of_spec"] = r.pct_of_spec();
  // Only compute ceilings carry these; absent elsewhere (and in files written before they existed).
  if (r.burst > 0) j["burst"] = r.burst;
  if (r.sm_mhz > 0) j["sm_mhz"] = r.sm_mhz;
  if (r.power_w > 0) j["power_w"] = r.power_w;
}

namespace {
// A peak report's row, every field checked (aipe/json_fields.hpp): rates and clocks finite and >= 0.
Row row_from_json(const nlohmann::json& j, const std::string& w) {
  namespace F = fields;
  constexpr double kMax = std::numeric_limits<double>::max();
  auto q = [&](const char* k) { return F::number(j, k, w, 0.0, 0.0, kMax); };
  Row r;
  r.group = F::string(j, "group", w);
  r.name = F::string(j, "name", w);
  r.what = F::string(j, "what", w, "");
  r.method = F::string(j, "method", w, "");
  r.unit = F::string(j, "unit", w, "");
  r.value = q("value");
  r.spec = q("spec");
  r.spec_basis = F::string(j, "spec_basis", w, "");
  r.config = F::string(j, "config", w, "");
  r.skipped = F::boolean(j, "skipped", w, false);
  r.reason = F::string(j, "reason", w, "");
  if (j.contains("extra") && !j.at("extra").is_null())
    for (const auto& [k, v] : F::object(j, "extra", w).items())
      r.extra[k] = v.is_null() ? 0.0 : F::number_value(v, F::field_name(w + ".extra", k));
  r.burst = q("burst");
  r.sm_mhz = q("sm_mhz");
  r.power_w = q("power_w");
  return r;
}
}  // namespace

void from_json(const nlohmann::json& j, Row& r) { r = row_from_json(j, "row"); }

void to_json(nlohmann::json& j, const Report& r) {
  j = nlohmann::json{{"aipe", {{"version", r.aipe_version}, {"git_revision", r.git_revision}}},
                     {"timestamp", r.timestamp},
                     {"command", r.command},
                     {"units", "decimal: GB/s = 1e9 B/s, TFLOP/s = 1e12 FLOP/s; buffer sizes binary (KiB/MiB/GiB)"},
                     {"quick", r.quick},
                     {"seconds", r.seconds},
                     {"gpu_count", r.gpu_count},
                     {"device", r.device},
                     {"spec", r.spec},
                     {"measured_peaks", measured_peaks(r)},
                     {"rows", r.rows}};
}

Report report_from_json(const nlohmann::json& j) {
  namespace F = fields;
  if (!j.is_object()) throw std::runtime_error("a peak report is a JSON object");
  Report r;
  const auto& a = F::object(j, "aipe", "");
  r.aipe_version = F::string(a, "version", "aipe", "");
  r.git_revision = F::string(a, "git_revision", "aipe", "");
  r.timestamp = F::string(j, "timestamp", "", "");
  r.command = F::string(j, "command", "", "");
  r.quick = F::boolean(j, "quick", "", false);
  r.seconds = F::number(j, "seconds", "", 0.0, 0.0);
  r.gpu_count = static_cast<int>(F::integer(j, "gpu_count", "", 0, 1 << 16, 1));
  r.device = j.at("device").get<DeviceInfo>();
  r.spec = j.at("spec").get<SpecPeaks>();
  r.rows.clear();
  if (!j.contains("rows") || !j.at("rows").is_array()) throw std::runtime_error("rows: missing or not an array");
  for (std::size_t i = 0; i < j.at("rows").size(); ++i)
    r.rows.push_back(row_from_json(j.at("rows")[i], "rows[" + std::to_string(i) + "]"));
  return r;
}

namespace {
std::string num(double v) {
  char b[32];
  if (v >= 100) std::snprintf(b, sizeof b, "%.0f", v);
  else if (v >= 10) std::snprintf(b, sizeof b, "%.1f", v);
  else std::snprintf(b, sizeof b, "%.2f", v);
  return b;
}
}  // namespace

void print_report(std::ostream& os, const Report& r) {
  os << "aipe peak on GPU " << r.device.ordinal << ": " << r.device.name << " (" << r.device.sm_count << " SMs, "
     << format_bytes(r.device.l2_bytes) << " L2)" << (r.quick ? ", --quick" : "") << "\n";
  os << "Decimal units (GB/s = 1e9 B/s, TFLOP/s = 1e12 FLOP/s). Spec values from the device's properties; "
        "% of spec = measured / spec.\n\n";
  char b[512];
  std::snprintf(b, sizeof b, "%-9s %-34s %11s %-8s %9s %7s %9s %6s %5s  %s\n", "group", "measurement", "measured", "unit",
                "spec", "% spec", "burst", "SM MHz", "W", "best configuration / note");
  os << b;
  os << std::string(144, '-') << "\n";
  for (const std::string& g : groups()) {
    if (g == "sweep") continue;
    for (const Row& x : r.rows) {
      if (x.group != g) continue;
      if (x.skipped) {
        std::snprintf(b, sizeof b, "%-9s %-34s %11s %-8s %9s %7s %9s %6s %5s  skipped: %s\n", x.group.c_str(),
                      x.what.c_str(), "-", x.unit.c_str(), "-", "-", "-", "-", "-", x.reason.c_str());
      } else {
        std::snprintf(b, sizeof b, "%-9s %-34s %11s %-8s %9s %7s %9s %6s %5s  %s\n", x.group.c_str(), x.what.c_str(),
                      num(x.value).c_str(), x.unit.c_str(), x.spec > 0 ? num(x.spec).c_str() : "n/a",
                      x.spec > 0 ? (num(x.pct_of_spec()) + "%").c_str() : "-", x.burst > 0 ? num(x.burst).c_str() : "-",
                      x.sm_mhz > 0 ? num(x.sm_mhz).c_str() : "-", x.power_w > 0 ? num(x.power_w).c_str() : "-",
                      x.config.c_str());
      }
      os << b;
    }
  }
  bool any_burst = false;
  for (const Row& x : r.rows) any_burst = any_burst || x.burst > 0;
  if (any_burst) {
    const double sheet = datasheet_sm_clock_mhz(r.device);
    os << "\nCompute ceilings are sustained: measured after the call ran back to back until the SM clock stopped "
          "falling and the power draw settled (NVML); 'burst' is the same call measured first, on the GPU as it was; "
          "SM MHz and W are NVML medians during the sustained measurement. Compute spec values assume the device's "
          "max SM clock, " << num(r.device.max_sm_clock_khz / 1000.0) << " MHz"
       << (sheet > 0 ? "; the data sheet's figures assume " + num(sheet) + " MHz" : std::string()) << ".\n";
  }
  bool any_sweep = false;
  for (const Row& x : r.rows) any_sweep = any_sweep || (x.group == "sweep" && !x.skipped);
  if (any_sweep) {
    os << "\nRead bandwidth vs working set (each block re-reads a rotated window of the set; L1 / L2 / DRAM regimes):\n";
    double top = 0;
    for (const Row& x : r.rows)
      if (x.group == "sweep") top = std::max(top, x.value);
    for (const Row& x : r.rows) {
      if (x.group != "sweep" || x.skipped) continue;
      const int bar = top > 0 ? static_cast<int>(50.0 * x.value / top + 0.5) : 0;
      std::snprintf(b, sizeof b, "  %10s %9s GB/s  %s\n", x.what.c_str(), num(x.value).c_str(),
                    std::string(static_cast<std::size_t>(bar), '#').c_str());
      os << b;
    }
  }
  os << "\nMethods:\n";
  std::string last;
  for (const Row& x : r.rows) {
    if (x.method.empty() || x.method == last) continue;
    os << "  " << x.name << ": " << x.method << (x.spec_basis.empty() ? "" : " Spec: " + x.spec_basis) << "\n";
    last = x.method;
  }
  const SpecPeaks m = measured_peaks(r);
  std::snprintf(b, sizeof b,
                "\nMeasured ceilings (cached for `aipe run`): DRAM %.0f GB/s, FP32 %.1f, FP64 %.1f, TF32 %.0f, BF16 %.0f, "
                "FP16 %.0f, FP8 %.0f TFLOP/s, INT8 %.0f TOP/s\n",
                m.dram_gbps, m.fp32_tflops, m.fp64_tflops, m.tf32_tflops, m.bf16_tflops, m.fp16_tflops, m.fp8_tflops,
                m.int8_tops);
  os << b;
}

}  // namespace aipe::peak
