#include "aipe/profile/ncu.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <unistd.h>

namespace aipe::profile {

std::optional<double> NcuKernel::get(const std::string& metric) const {
  auto it = metrics.find(metric);
  if (it == metrics.end()) return std::nullopt;
  return it->second;
}

namespace {

// Splits one CSV record (RFC 4180 quoting). Returns false when a quote is left open.
bool split_csv(const std::string& line, std::vector<std::string>& out) {
  out.clear();
  std::string cur;
  bool quoted = false, any = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    any = true;
    if (quoted) {
      if (c == '"') {
        if (i + 1 < line.size() && line[i + 1] == '"') {
          cur += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        cur += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.push_back(cur);
      cur.clear();
    } else if (c != '\r') {
      cur += c;
    }
  }
  if (any) out.push_back(cur);
  return !quoted;
}

// Scale from the unit ncu printed to aipe's base units: time in ns, data in bytes, rates per second.
double unit_scale(const std::string& unit) {
  if (unit.empty() || unit == "%") return 1;
  auto prefix = [](const std::string& u, const std::string& base) -> double {
    if (u == base) return 1;
    if (u.size() == base.size() + 1 && u.compare(1, std::string::npos, base) == 0) {
      switch (u[0]) {
        case 'K': return 1e3;
        case 'M': return 1e6;
        case 'G': return 1e9;
        case 'T': return 1e12;
        case 'P': return 1e15;
        case 'm': return 1e-3;
        case 'u': return 1e-6;
        case 'n': return 1e-9;
        default: return 0;
      }
    }
    return 0;
  };
  static const std::map<std::string, double> short_time = {{"ns", 1}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}};
  const auto slash = unit.find('/');
  const std::string num = unit.substr(0, slash);
  double s = 1;
  if (auto st = short_time.find(num); st != short_time.end()) {
    s = st->second;
  } else if (double t = prefix(num, "second"); t > 0) {
    s = t * 1e9;  // time -> ns
  } else if (num.size() > 1 && std::string("KMGTP").find(num[0]) != std::string::npos && std::islower(num[1])) {
    s = prefix(num, num.substr(1));  // Kbyte, Mcycle, Ginst ...
  }
  if (slash != std::string::npos) {
    const std::string den = unit.substr(slash + 1);
    if (auto st = short_time.find(den); st != short_time.end()) s *= 1e9 / st->second;  // per second
    else if (double t = prefix(den, "second"); t > 0) s /= t;
  }
  return s;
}

bool parse_number(std::string v, double* out) {
  v.erase(std::remove(v.begin(), v.end(), ','), v.end());
  while (!v.empty() && v.back() == ' ') v.pop_back();
  while (!v.empty() && v.front() == ' ') v.erase(v.begin());
  if (v.empty()) return false;
  char* end = nullptr;
  const double d = std::strtod(v.c_str(), &end);
  if (end != v.c_str() + v.size()) return false;
  *out = d;
  return true;
}

bool is_metric_column(const std::string& c) { return c.find("__") != std::string::npos; }

}  // namespace

NcuReport parse_ncu_csv(std::istream& is) {
  NcuReport rep;
  std::string line;
  std::vector<std::string> header, f;
  std::size_t lineno = 0;
  bool no_kernels = false, any_line = false;
  int id_col = -1, name_col = -1, stream_col = -1;
  bool units_done = false;
  while (std::getline(is, line)) {
    ++lineno;
    // ncu ends every line with a newline: a last line without one was cut off.
    const bool unterminated = is.eof();
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    any_line = true;
    if (line.rfind("==", 0) == 0) {  // ==PROF== / ==WARNING== / ==ERROR== lines
      if (line.find("No kernels were profiled") != std::string::npos) no_kernels = true;
      if (line.rfind("==ERROR==", 0) == 0 && header.empty())
        throw NcuParseError("ncu reported an error: " + line);
      continue;
    }
    if (!split_csv(line, f))
      throw NcuParseError("line " + std::to_string(lineno) + ": unterminated quoted field (truncated output?)");
    if (header.empty()) {
      if (f.empty() || f[0] != "ID") continue;  // not the table yet (program output, banners)
      header = f;
      for (std::size_t c = 0; c < header.size(); ++c) {
        if (header[c] == "ID") id_col = int(c);
        if (header[c] == "Kernel Name") name_col = int(c);
        if (header[c] == "Stream") stream_col = int(c);
        if (is_metric_column(header[c])) rep.columns.push_back(header[c]);
      }
      if (name_col < 0) throw NcuParseError("line " + std::to_string(lineno) + ": header has no \"Kernel Name\" column");
      continue;
    }
    if (unterminated)
      throw NcuParseError("line " + std::to_string(lineno) + ": the output ends in the middle of a row (truncated)");
    if (f.size() != header.size())
      throw NcuParseError("line " + std::to_string(lineno) + ": " + std::to_string(f.size()) + " fields, the header has " +
                          std::to_string(header.size()) + " (truncated or malformed output)");
    if (!units_done && f[std::size_t(id_col)].empty()) {  // the units row
      for (std::size_t c = 0; c < header.size(); ++c)
        if (is_metric_column(header[c])) rep.units[header[c]] = f[c];
      units_done = true;
      continue;
    }
    units_done = true;
    NcuKernel k;
    k.id = f[std::size_t(id_col)];
    k.name = f[std::size_t(name_col)];
    if (stream_col >= 0) k.stream = f[std::size_t(stream_col)];
    for (std::size_t c = 0; c < header.size(); ++c) {
      if (!is_metric_column(header[c])) continue;
      const std::string& v = f[c];
      if (v.empty() || v == "n/a" || v == "N/A") continue;
      double d = 0;
      if (!parse_number(v, &d)) {
        // Some raw-page metrics are text (device names, enums, "(256, 1, 1)"): skipped. A value that
        // starts like a number but is not one is corrupt.
        const unsigned char c0 = static_cast<unsigned char>(v[0]);
        if (!std::isdigit(c0) && c0 != '-' && c0 != '+' && c0 != '.') continue;
        throw NcuParseError("line " + std::to_string(lineno) + ": '" + v + "' in column " + header[c] +
                            " is not a number");
      }
      auto u = rep.units.find(header[c]);
      k.metrics[header[c]] = d * (u == rep.units.end() ? 1.0 : unit_scale(u->second));
    }
    rep.kernels.push_back(std::move(k));
  }
  if (header.empty()) {
    if (no_kernels) return rep;
    if (!any_line) throw NcuParseError("empty ncu output");
    throw NcuParseError("no ncu raw-page table found (expected a header line starting with \"ID\")");
  }
  return rep;
}

NcuReport parse_ncu_csv_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw NcuParseError("cannot read '" + path + "'");
  try {
    return parse_ncu_csv(f);
  } catch (const NcuParseError& e) {
    throw NcuParseError(path + ": " + e.what());
  }
}

namespace {

std::optional<double> first_of(const NcuKernel& k, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (auto v = k.get(n)) return v;
  return std::nullopt;
}

bool ends_with(const std::string& s, const std::string& t) {
  return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}

std::string short_name(const std::string& n) {
  // "void (anonymous namespace)::copy_kernel<4>(const float *, ...)" -> "copy_kernel<4>"
  std::string s = n;
  if (auto p = s.find('('); p != std::string::npos && p > 0) {
    // the parameter list starts at the first '(' that is not part of "(anonymous namespace)"
    std::size_t depth = 0, cut = std::string::npos;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (s.compare(i, 21, "(anonymous namespace)") == 0) { i += 20; continue; }
      if (s[i] == '<') ++depth;
      if (s[i] == '>' && depth) --depth;
      if (s[i] == '(' && depth == 0) { cut = i; break; }
    }
    if (cut != std::string::npos) s = s.substr(0, cut);
  }
  if (auto p = s.rfind("::"); p != std::string::npos) {
    // keep template arguments whole: cut at the last "::" outside <>
    std::size_t depth = 0, last = std::string::npos;
    for (std::size_t i = 0; i + 1 < s.size(); ++i) {
      if (s[i] == '<') ++depth;
      if (s[i] == '>' && depth) --depth;
      if (depth == 0 && s[i] == ':' && s[i + 1] == ':') last = i;
    }
    if (last != std::string::npos) s = s.substr(last + 2);
  }
  if (s.rfind("void ", 0) == 0) s = s.substr(5);
  if (s.size() > 48) s = s.substr(0, 45) + "...";
  return s;
}

}  // namespace

NcuSummary summarize(const NcuReport& r, std::size_t top_stalls) {
  NcuSummary s;
  s.kernels = int(r.kernels.size());
  if (r.kernels.empty()) return s;
  double dur = 0, bytes = 0, l2 = 0, fabric = 0;
  bool have_dur = true, have_bytes = true, have_l2 = true, have_fabric = true;
  struct Acc {
    double sum = 0, w = 0;
    void add(std::optional<double> v, double weight) {
      if (v) {
        sum += *v * weight;
        w += weight;
      }
    }
    double get() const { return w > 0 ? sum / w : NAN; }
  } dram, sm, occ, tensor, l1, l2hit;
  std::map<std::string, double> stall;
  std::vector<std::string> names;
  const std::string sp = "smsp__average_warps_issue_stalled_", ss = "_per_issue_active.ratio";
  for (const NcuKernel& k : r.kernels) {
    const auto d = k.get("gpu__time_duration.sum");
    if (!d) have_dur = false;
    const double w = d ? std::max(*d, 1.0) : 1.0;
    dur += d.value_or(0);
    const auto rd = k.get("dram__bytes_read.sum"), wr = k.get("dram__bytes_write.sum");
    if (rd && wr) bytes += *rd + *wr;
    else if (auto b = k.get("dram__bytes.sum")) bytes += *b;
    else have_bytes = false;
    constexpr double kSector = 32;  // bytes
    if (auto v = k.get("lts__t_sectors.sum")) l2 += *v * kSector;
    else have_l2 = false;
    if (auto v = k.get("lts__t_sectors_srcunit_ltcfabric.sum")) fabric += *v * kSector;
    else have_fabric = false;
    dram.add(first_of(k, {"gpu__dram_throughput.avg.pct_of_peak_sustained_elapsed",
                          "dram__throughput.avg.pct_of_peak_sustained_elapsed"}), w);
    sm.add(first_of(k, {"sm__throughput.avg.pct_of_peak_sustained_elapsed"}), w);
    occ.add(first_of(k, {"sm__warps_active.avg.pct_of_peak_sustained_active"}), w);
    l1.add(first_of(k, {"l1tex__t_sector_hit_rate.pct"}), w);
    l2hit.add(first_of(k, {"lts__t_sector_hit_rate.pct"}), w);
    // Tensor pipes: the all-types metric (sm__pipe_tensor_cycles_active) where ncu has it, else the
    // busiest of the per-type ones (hmma for mma.sync, imma, dmma).
    std::optional<double> t = k.get("sm__pipe_tensor_cycles_active.avg.pct_of_peak_sustained_active");
    if (!t)
      for (const auto& [name, v] : k.metrics)
        if (name.rfind("sm__pipe_tensor", 0) == 0 && ends_with(name, ".avg.pct_of_peak_sustained_active"))
          t = std::max(t.value_or(0.0), v);
    tensor.add(t, w);
    for (const auto& [name, v] : k.metrics)
      if (name.rfind(sp, 0) == 0 && ends_with(name, ss)) {
        const std::string reason = name.substr(sp.size(), name.size() - sp.size() - ss.size());
        // "selected" is the cycle a warp issues, not a stall
        if (reason != "not_issued" && reason != "selected") stall[reason] += v * w;
      }
    const std::string n = short_name(k.name);
    if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
  }
  if (have_dur) s.duration_ns = dur;
  if (have_bytes) s.dram_bytes = bytes;
  if (have_dur && have_bytes && dur > 0) s.dram_gbps = bytes / dur;  // bytes per ns = GB/s
  s.dram_pct = dram.get();
  s.sm_pct = sm.get();
  s.occupancy_pct = occ.get();
  s.tensor_pct = tensor.get();
  s.l1_hit_pct = l1.get();
  s.l2_hit_pct = l2hit.get();
  if (have_l2) s.l2_bytes = l2;
  if (have_fabric) s.l2_fabric_bytes = fabric;
  const double wsum = have_dur && dur > 0 ? dur : double(r.kernels.size());
  std::vector<std::pair<std::string, double>> st(stall.begin(), stall.end());
  for (auto& p : st) p.second /= wsum;
  std::sort(st.begin(), st.end(), [](auto& a, auto& b) { return a.second > b.second; });
  if (st.size() > top_stalls) st.resize(top_stalls);
  s.stalls = st;
  for (const auto& n : names) s.kernel_names += (s.kernel_names.empty() ? "" : ", ") + n;
  return s;
}

void add_metrics(const NcuSummary& s, std::map<std::string, double>& out) {
  auto put = [&](const char* k, double v) {
    if (std::isfinite(v)) out[k] = v;
  };
  out["ncu_kernels"] = s.kernels;
  put("ncu_duration_ms", s.duration_ns / 1e6);
  put("ncu_dram_bytes", s.dram_bytes);
  put("ncu_dram_gbps", s.dram_gbps);
  put("ncu_dram_pct", s.dram_pct);
  put("ncu_sm_pct", s.sm_pct);
  put("ncu_occupancy_pct", s.occupancy_pct);
  put("ncu_tensor_pct", s.tensor_pct);
  put("ncu_l1_hit_pct", s.l1_hit_pct);
  put("ncu_l2_hit_pct", s.l2_hit_pct);
  put("ncu_l2_bytes", s.l2_bytes);
  put("ncu_l2_fabric_bytes", s.l2_fabric_bytes);
  for (const auto& [reason, v] : s.stalls) out["ncu_stall_" + reason] = v;
}

std::optional<std::string> find_ncu(std::string* searched) {
  std::vector<std::string> dirs;
  if (const char* p = std::getenv("PATH")) {
    std::stringstream ss(p);
    std::string d;
    while (std::getline(ss, d, ':'))
      if (!d.empty()) dirs.push_back(d);
  }
  if (const char* c = std::getenv("CUDA_HOME"); c && *c) dirs.push_back(std::string(c) + "/bin");
  dirs.push_back("/usr/local/cuda/bin");
  std::string where;
  for (const auto& d : dirs) {
    const std::string p = d + "/ncu";
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  if (searched) {
    *searched = "PATH";
    if (const char* c = std::getenv("CUDA_HOME"); c && *c) *searched += ", $CUDA_HOME/bin (" + std::string(c) + "/bin)";
    *searched += ", /usr/local/cuda/bin";
  }
  return std::nullopt;
}

std::vector<std::string> ncu_args(const std::string& set, const std::string& range, const std::string& log_file,
                                  bool l2_fabric) {
  std::vector<std::string> a = {"--clock-control", "none", "--nvtx", "--nvtx-include", range + "/",
                                "--csv", "--page", "raw", "--print-units", "base", "--log-file", log_file};
  if (set == "full") {
    a.insert(a.end(), {"--set", "full"});
  } else {
    // Small and fast: the sections that hold the default metrics, plus DRAM bytes by direction.
    for (const char* s : {"SpeedOfLight", "MemoryWorkloadAnalysis", "Occupancy", "ComputeWorkloadAnalysis",
                          "WarpStateStats", "LaunchStats"})
      a.insert(a.end(), {"--section", s});
  }
  std::string m = "dram__bytes_read.sum,dram__bytes_write.sum,lts__t_sectors.sum";
  if (l2_fabric) m += ",lts__t_sectors_srcunit_ltcfabric.sum";
  a.insert(a.end(), {"--metrics", m});
  return a;
}

}  // namespace aipe::profile
