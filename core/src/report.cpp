#include "aipe/report.hpp"

#include "aipe/example.hpp"
#include "aipe/json_fields.hpp"
#include "aipe/printable.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace aipe {

const char* to_string(Status s) {
  switch (s) {
    case Status::passed: return "passed";
    case Status::failed: return "failed";
    case Status::skipped: return "skipped";
  }
  return "?";
}

Status status_from_string(const std::string& s) {
  if (s == "passed") return Status::passed;
  if (s == "failed") return Status::failed;
  if (s == "skipped") return Status::skipped;
  throw std::runtime_error("unknown status '" + printable(s) + "' (expected passed, failed or skipped)");
}

int RunReport::failed() const {
  return static_cast<int>(std::count_if(results.begin(), results.end(), [](const Result& r) { return r.status == Status::failed; }));
}
int RunReport::passed() const {
  return static_cast<int>(std::count_if(results.begin(), results.end(), [](const Result& r) { return r.status == Status::passed; }));
}
int RunReport::skipped() const {
  return static_cast<int>(std::count_if(results.begin(), results.end(), [](const Result& r) { return r.status == Status::skipped; }));
}

// Only honestly timed rungs take part in comparisons: chapter 1's deliberately wrong timings and
// component rungs don't.
bool honestly_timed(const Result& r) {
  return r.status == Status::passed && r.timed && (r.timing == "standard" || r.timing == "standard_no_flush") &&
         !r.component && r.median_ms > 0;
}

namespace {

bool is_library(const std::string& v) { return is_library_variant(v); }

// Consecutive results of one example.
template <class F>
void for_each_example(std::vector<Result>& rs, F f) {
  std::size_t i = 0;
  while (i < rs.size()) {
    std::size_t j = i;
    while (j < rs.size() && rs[j].example == rs[i].example) ++j;
    f(i, j);
    i = j;
  }
}

}  // namespace

void compute_speedups(std::vector<Result>& rs) {
  for_each_example(rs, [&](std::size_t b, std::size_t e) {
    const Result* base = nullptr;
    const Result* lib = nullptr;
    for (std::size_t k = b; k < e; ++k) {
      if (!honestly_timed(rs[k])) continue;
      if (!base) base = &rs[k];
      if (!lib && is_library(rs[k].variant)) lib = &rs[k];
    }
    const double base_ms = base ? base->median_ms : 0, lib_ms = lib ? lib->median_ms : 0;
    for (std::size_t k = b; k < e; ++k) {
      rs[k].speedup_vs_baseline = honestly_timed(rs[k]) && base_ms > 0 ? base_ms / rs[k].median_ms : 0;
      rs[k].speedup_vs_library = honestly_timed(rs[k]) && lib_ms > 0 ? lib_ms / rs[k].median_ms : 0;
    }
  });
}

Geomeans geomeans(const std::vector<Result>& results) {
  std::vector<Result> rs = results;
  Geomeans g;
  double lb = 0, ll = 0;
  for_each_example(rs, [&](std::size_t b, std::size_t e) {
    const Result* best = nullptr;
    const Result* best_own = nullptr;  // best rung that is not the library
    int timed = 0;
    for (std::size_t k = b; k < e; ++k) {
      if (!honestly_timed(rs[k])) continue;
      ++timed;
      if (!best || rs[k].median_ms < best->median_ms) best = &rs[k];
      if (!is_library(rs[k].variant) && (!best_own || rs[k].median_ms < best_own->median_ms)) best_own = &rs[k];
    }
    if (timed >= 2 && best_own && best_own->speedup_vs_baseline > 0) {
      lb += std::log(best_own->speedup_vs_baseline);
      ++g.n_baseline;
    }
    if (best_own && best_own->speedup_vs_library > 0) {
      ll += std::log(best_own->speedup_vs_library);
      ++g.n_library;
    }
  });
  if (g.n_baseline) g.vs_baseline = std::exp(lb / g.n_baseline);
  if (g.n_library) g.vs_library = std::exp(ll / g.n_library);
  return g;
}

std::string format_time_ms(double ms) {
  char b[32];
  if (ms <= 0) return "-";
  if (ms >= 1000) std::snprintf(b, sizeof b, "%.3f s", ms / 1e3);
  else if (ms >= 1) std::snprintf(b, sizeof b, "%.3f ms", ms);
  else std::snprintf(b, sizeof b, "%.2f us", ms * 1e3);
  return b;
}

std::string format_rate(double v, int digits) {
  if (v <= 0) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.*f", digits, v);
  return b;
}

namespace {

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

// Integer sizes and choice axes together, in name order: "mask=causal n=4096".
std::string sizes_str(const Result& r, const char* sep = " ") {
  std::map<std::string, std::string> all(r.choices.begin(), r.choices.end());
  for (const auto& [k, v] : r.sizes) all[k] = std::to_string(v);
  std::string out;
  for (const auto& [k, v] : all) out += (out.empty() ? "" : sep) + k + "=" + v;
  return out;
}

std::string bytes_str(double b) {
  if (b >= 1e9) return fmt("%.2f GB", b / 1e9);
  if (b >= 1e6) return fmt("%.2f MB", b / 1e6);
  if (b >= 1e3) return fmt("%.2f kB", b / 1e3);
  return fmt("%.0f B", b);
}

std::string flops_str(double f) {
  if (f >= 1e12) return fmt("%.2f TFLOP", f / 1e12);
  if (f >= 1e9) return fmt("%.2f GFLOP", f / 1e9);
  if (f >= 1e6) return fmt("%.2f MFLOP", f / 1e6);
  return fmt("%.0f FLOP", f);
}

std::string ratio(double x) { return x > 0 ? fmt("%.2fx", x) : "-"; }
std::string pct(double x) { return x > 0 ? fmt("%.1f%%", x) : "-"; }
std::string err(const Result& r) {
  if (r.status == Status::skipped) return "-";
  return fmt("%.1e", r.norm_rel_error);
}

std::string status_cell(const Result& r) {
  switch (r.status) {
    case Status::passed: {
      std::string extra;
      for (const auto& [k, v] : r.metrics) extra += (extra.empty() ? "" : ", ") + k + " " + fmt("%.4g", v);
      if (!r.note.empty()) extra += (extra.empty() ? "" : "; ") + r.note;
      return extra.empty() ? "ok" : "ok (" + extra + ")";
    }
    case Status::failed: return "FAILED: " + r.reason;
    case Status::skipped: return "SKIPPED: " + r.reason;
  }
  return "";
}

struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<bool> right;  // right-align column
};

std::vector<std::string> row_cells(const Result& r) {
  const bool t = r.timed;
  return {r.variant,
          t ? format_time_ms(r.median_ms) : "-",
          t ? pct(100.0 * r.noise) : "-",
          t && r.bytes > 0 ? format_rate(r.gbps) : "-",
          t && r.flops > 0 ? format_rate(r.tflops) : "-",
          t ? pct(r.pct_of_spec) : "-",
          t ? pct(r.pct_of_measured) : "-",
          ratio(r.speedup_vs_baseline),
          ratio(r.speedup_vs_library),
          err(r),
          status_cell(r)};
}

const std::vector<std::string> kHeader = {"variant", "median", "noise", "GB/s", "TFLOP/s", "%spec", "%meas",
                                          "x base", "x lib", "rel err", "status"};
const std::vector<bool> kRight = {false, true, true, true, true, true, true, true, true, true, false};

void print_table(std::ostream& os, const Table& t, const std::string& indent) {
  std::vector<std::size_t> w(t.header.size(), 0);
  auto width = [](const std::string& s) {
    // Count UTF-8 code points so "µ" aligns.
    std::size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
  };
  for (std::size_t c = 0; c < t.header.size(); ++c) w[c] = width(t.header[c]);
  for (const auto& r : t.rows)
    for (std::size_t c = 0; c + 1 < r.size(); ++c) w[c] = std::max(w[c], width(r[c]));
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s = indent;
    for (std::size_t c = 0; c < cells.size(); ++c) {
      const std::size_t pad = c + 1 < cells.size() ? w[c] - std::min(w[c], width(cells[c])) : 0;
      if (t.right[c]) s += std::string(pad, ' ') + cells[c];
      else s += cells[c] + std::string(pad, ' ');
      if (c + 1 < cells.size()) s += "  ";
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    os << s << "\n";
  };
  line(t.header);
  for (const auto& r : t.rows) line(r);
}

}  // namespace

void write_table(std::ostream& os, const RunReport& rep, bool /*color*/) {
  if (rep.device) {
    const DeviceInfo& d = *rep.device;
    os << d.name << " (sm_" << d.cc() << ", " << d.sm_count << " SMs, " << fmt("%.0f MB L2", d.l2_bytes / 1e6)
       << ")  ceilings: DRAM " << format_rate(rep.spec.dram_gbps, 0) << " GB/s spec";
    if (rep.measured) os << ", " << format_rate(rep.measured->dram_gbps, 0) << " GB/s measured";
    os << "\n";
  }
  std::vector<Result> rs = rep.results;
  for_each_example(rs, [&](std::size_t b, std::size_t e) {
    const Result& h = rs[b];
    os << "\n" << h.example << "  " << sizes_str(h) << "\n";
    os << "  work: " << bytes_str(h.bytes) << " moved, " << flops_str(h.flops);
    if (h.flops > 0 && h.bytes > 0) os << fmt(", %.2f FLOP/B", h.intensity);
    if (!h.unit.empty()) os << " (" << h.unit << ")";
    os << "\n";
    Table t{kHeader, {}, kRight};
    for (std::size_t k = b; k < e; ++k) t.rows.push_back(row_cells(rs[k]));
    print_table(os, t, "  ");
  });
  const Geomeans g = geomeans(rep.results);
  os << "\n" << rep.passed() << " passed, " << rep.failed() << " failed, " << rep.skipped() << " skipped";
  if (g.n_baseline) os << fmt("; geomean of best rung vs baseline %.2fx", g.vs_baseline) << " (" << g.n_baseline << " examples)";
  if (g.n_library) os << fmt(", vs library %.2fx", g.vs_library) << " (" << g.n_library << ")";
  os << "\n";
}

namespace {
// JSON has no NaN/Inf: a non-finite number is written as null, and read back as 0.
nlohmann::json finite(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }
}  // namespace

void to_json(nlohmann::json& j, const Result& r) {
  j = nlohmann::json{{"example", r.example},
                     {"variant", r.variant},
                     {"summary", r.summary},
                     {"sizes", r.sizes},
                     {"status", to_string(r.status)},
                     {"reason", r.reason},
                     {"note", r.note},
                     {"timing", r.timing},
                     {"component", r.component},
                     {"max_abs_error", finite(r.max_abs_error)},
                     {"max_rel_error", finite(r.max_rel_error)},
                     {"norm_rel_error", finite(r.norm_rel_error)},
                     {"timed", r.timed},
                     {"samples", r.samples},
                     {"median_ms", finite(r.median_ms)},
                     {"min_ms", finite(r.min_ms)},
                     {"p90_ms", finite(r.p90_ms)},
                     {"noise", finite(r.noise)},
                     {"stop_reason", r.stop_reason},
                     {"bytes", finite(r.bytes)},
                     {"flops", finite(r.flops)},
                     {"intensity", finite(r.intensity)},
                     {"unit", r.unit},
                     {"gbps", finite(r.gbps)},
                     {"tflops", finite(r.tflops)},
                     {"pct_of_spec", finite(r.pct_of_spec)},
                     {"pct_of_measured", finite(r.pct_of_measured)},
                     {"bound", r.bound},
                     {"speedup_vs_baseline", finite(r.speedup_vs_baseline)},
                     {"speedup_vs_library", finite(r.speedup_vs_library)},
                     {"metrics", nlohmann::json::object()}};
  for (const auto& [k, v] : r.metrics) j["metrics"][k] = finite(v);
  // Only where the example has choice axes, so files without them read and compare as before.
  if (!r.choices.empty()) j["choices"] = r.choices;
}

namespace {
// Every quantity a result holds is a finite number >= 0 (JSON null, what non-finite values are written
// as, reads as 0); sizes and counts are integers in their type's range.
constexpr double kMaxQuantity = std::numeric_limits<double>::max();

void result_from_json(const nlohmann::json& j, Result& r, const std::string& w) {
  namespace F = fields;
  auto q = [&](const char* k) { return F::number(j, k, w, 0.0, 0.0, kMaxQuantity); };
  r.example = F::string(j, "example", w);
  r.variant = F::string(j, "variant", w);
  r.summary = F::string(j, "summary", w, "");
  r.sizes.clear();
  if (j.contains("sizes") && !j.at("sizes").is_null()) {
    const auto& sz = F::object(j, "sizes", w);
    for (const auto& [k, v] : sz.items())
      r.sizes[k] = F::integer_value(v, F::field_name(w + ".sizes", k), 0, std::numeric_limits<std::int64_t>::max());
  }
  r.choices.clear();
  if (j.contains("choices") && !j.at("choices").is_null())
    for (const auto& [k, v] : F::object(j, "choices", w).items()) {
      if (!v.is_string()) throw std::runtime_error(F::field_name(w + ".choices", k) + ": not a string");
      r.choices[k] = v.get<std::string>();
    }
  try {
    r.status = status_from_string(F::string(j, "status", w));
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(F::field_name(w, "status") + ": " + e.what());
  }
  r.reason = F::string(j, "reason", w, "");
  r.note = F::string(j, "note", w, "");
  r.timing = F::string(j, "timing", w, "standard");
  r.component = F::boolean(j, "component", w, false);
  r.max_abs_error = q("max_abs_error");
  r.max_rel_error = q("max_rel_error");
  r.norm_rel_error = q("norm_rel_error");
  r.timed = F::boolean(j, "timed", w, false);
  r.samples = static_cast<std::size_t>(F::unsigned_integer(j, "samples", w, std::numeric_limits<std::int64_t>::max(), 0));
  r.median_ms = q("median_ms");
  r.min_ms = q("min_ms");
  r.p90_ms = q("p90_ms");
  r.noise = q("noise");
  r.stop_reason = F::string(j, "stop_reason", w, "");
  r.bytes = q("bytes");
  r.flops = q("flops");
  r.intensity = q("intensity");
  r.unit = F::string(j, "unit", w, "");
  r.gbps = q("gbps");
  r.tflops = q("tflops");
  r.pct_of_spec = q("pct_of_spec");
  r.pct_of_measured = q("pct_of_measured");
  r.bound = F::string(j, "bound", w, "");
  r.speedup_vs_baseline = q("speedup_vs_baseline");
  r.speedup_vs_library = q("speedup_vs_library");
  r.metrics.clear();
  if (j.contains("metrics") && !j.at("metrics").is_null())
    for (const auto& [k, v] : F::object(j, "metrics", w).items())
      r.metrics[k] = v.is_null() ? 0.0 : F::number_value(v, F::field_name(w + ".metrics", k));
}
}  // namespace

void from_json(const nlohmann::json& j, Result& r) { result_from_json(j, r, "result"); }

void write_json(std::ostream& os, const RunReport& rep) {
  const Geomeans g = geomeans(rep.results);
  nlohmann::json j;
  j["schema"] = "aipe.run/1";
  j["aipe"] = {{"version", rep.aipe_version}, {"git_revision", rep.git_revision}};
  j["timestamp"] = rep.timestamp;
  j["command"] = rep.command;
  j["seed"] = rep.seed;
  j["device"] = rep.device ? nlohmann::json(*rep.device) : nlohmann::json(nullptr);
  j["ceilings"] = {{"spec", rep.spec},
                   {"measured", rep.measured ? nlohmann::json(*rep.measured) : nlohmann::json(nullptr)},
                   {"measured_source", rep.measured_source}};
  j["results"] = rep.results;
  j["summary"] = {{"passed", rep.passed()},
                  {"failed", rep.failed()},
                  {"skipped", rep.skipped()},
                  {"geomean_speedup_vs_baseline", g.vs_baseline},
                  {"geomean_speedup_vs_library", g.vs_library}};
  os << j.dump(2) << "\n";
}

RunReport read_json(std::istream& is) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(is);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(std::string("not valid JSON: ") + e.what());
  }
  return run_report_from_json(j);
}

RunReport run_report_from_json(const nlohmann::json& j) {
  namespace F = fields;
  try {
    if (!j.is_object() || !j.contains("schema") || j.at("schema") != "aipe.run/1")
      throw std::runtime_error("not an aipe run report (expected \"schema\": \"aipe.run/1\")");
    RunReport r;
    const auto& a = F::object(j, "aipe", "");
    r.aipe_version = F::string(a, "version", "aipe", "");
    r.git_revision = F::string(a, "git_revision", "aipe", "");
    r.timestamp = F::string(j, "timestamp", "", "");
    r.command = F::string(j, "command", "", "");
    r.seed = F::unsigned_integer(j, "seed", "", std::numeric_limits<std::uint64_t>::max(), 0);
    if (!j.contains("device")) throw std::runtime_error("device: missing (null when the run had no GPU)");
    if (!j.at("device").is_null()) device_from_json(F::object(j, "device", ""), r.device.emplace(), "device");
    const auto& c = F::object(j, "ceilings", "");
    spec_peaks_from_json(F::object(c, "spec", "ceilings"), r.spec, "ceilings.spec");
    if (c.contains("measured") && !c.at("measured").is_null())
      spec_peaks_from_json(F::object(c, "measured", "ceilings"), r.measured.emplace(), "ceilings.measured");
    r.measured_source = F::string(c, "measured_source", "ceilings", "");
    if (!j.contains("results") || !j.at("results").is_array()) throw std::runtime_error("results: missing or not an array");
    const auto& res = j.at("results");
    r.results.resize(res.size());
    for (std::size_t i = 0; i < res.size(); ++i) result_from_json(res[i], r.results[i], "results[" + std::to_string(i) + "]");
    return r;
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(std::string("malformed aipe run report: ") + e.what());
  }
}

namespace {
std::string csv_escape(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string o = "\"";
  for (char c : s) o += c == '"' ? std::string("\"\"") : std::string(1, c);
  return o + "\"";
}
std::string num(double v) {
  std::ostringstream s;
  s << std::setprecision(9) << v;
  return s.str();
}
}  // namespace

void write_csv(std::ostream& os, const RunReport& rep) {
  os << "example,variant,sizes,status,reason,timing,samples,median_ms,min_ms,p90_ms,noise,bytes,flops,gbps,tflops,"
        "pct_of_spec,pct_of_measured,speedup_vs_baseline,speedup_vs_library,max_abs_error,max_rel_error,norm_rel_error\n";
  for (const Result& r : rep.results) {
    os << csv_escape(r.example) << ',' << csv_escape(r.variant) << ',' << csv_escape(sizes_str(r, ";")) << ','
       << to_string(r.status) << ',' << csv_escape(r.reason) << ',' << r.timing << ',' << r.samples << ','
       << num(r.median_ms) << ',' << num(r.min_ms) << ',' << num(r.p90_ms) << ',' << num(r.noise) << ','
       << num(r.bytes) << ',' << num(r.flops) << ',' << num(r.gbps) << ',' << num(r.tflops) << ','
       << num(r.pct_of_spec) << ',' << num(r.pct_of_measured) << ',' << num(r.speedup_vs_baseline) << ','
       << num(r.speedup_vs_library) << ',' << num(r.max_abs_error) << ',' << num(r.max_rel_error) << ','
       << num(r.norm_rel_error) << '\n';
  }
}

void write_markdown(std::ostream& os, const RunReport& rep) {
  if (rep.device) {
    // Names and strings from a results file reach terminals through `aipe report`: escaped.
    os << "Device: **" << printable(rep.device->name) << "** (sm_" << rep.device->cc() << ", " << rep.device->sm_count
       << " SMs), aipe " << printable(rep.aipe_version) << " (" << printable(rep.git_revision) << "), "
       << printable(rep.timestamp) << "\n";
  }
  std::vector<Result> rs = rep.results;
  for_each_example(rs, [&](std::size_t b, std::size_t e) {
    os << "\n### " << printable(rs[b].example) << "\n\n";
    os << "Sizes: `" << printable(sizes_str(rs[b])) << "`; work: " << bytes_str(rs[b].bytes) << ", "
       << flops_str(rs[b].flops) << "\n\n";
    os << "|";
    for (const auto& h : kHeader) os << " " << h << " |";
    os << "\n|";
    for (std::size_t c = 0; c < kHeader.size(); ++c) os << (kRight[c] ? " ---: |" : " --- |");
    os << "\n";
    for (std::size_t k = b; k < e; ++k) {
      os << "|";
      for (auto cell : row_cells(rs[k])) {
        std::string esc;
        for (char ch : printable(cell)) esc += ch == '|' ? std::string("\\|") : std::string(1, ch);
        os << " " << esc << " |";
      }
      os << "\n";
    }
  });
  const Geomeans g = geomeans(rep.results);
  os << "\n" << rep.passed() << " passed, " << rep.failed() << " failed, " << rep.skipped() << " skipped";
  if (g.n_baseline) os << fmt("; geomean of best rung vs baseline %.2fx", g.vs_baseline);
  if (g.n_library) os << fmt(", vs library %.2fx", g.vs_library);
  os << "\n";
}

}  // namespace aipe
