#include "aipe/profile/html_report.hpp"

#include "aipe/example.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "aipe/printable.hpp"
#include "aipe/profile/bench_report.hpp"

namespace aipe::profile {

namespace {

std::string esc(const std::string& raw) {
  std::string o;
  for (char c : printable(raw)) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string f(const char* fmt, double v) {
  char b[64];
  std::snprintf(b, sizeof b, fmt, v);
  return b;
}

// A value a log axis can hold. Results files are read with every number finite and >= 0, but 0 (a
// missing field), 1e300 or a product that overflows must never reach log10 or a tick loop: such a
// rung is left off the charts and counted.
constexpr double kAxisMin = 1e-30, kAxisMax = 1e30;
bool plottable(double v) { return std::isfinite(v) && v >= kAxisMin && v <= kAxisMax; }

bool timed_ok(const Result& r) { return r.status == Status::passed && r.timed && r.median_ms > 0; }
// Which chart a rung belongs on, and whether its numbers can be drawn there.
bool drawable(const Result& r) {
  if (r.flops > 0) return plottable(r.tflops) && (r.bytes <= 0 || plottable(r.intensity));
  if (r.bytes > 0) return plottable(r.gbps);
  return plottable(r.median_ms * 1e3);
}
bool placed(const Result& r) { return timed_ok(r) && drawable(r); }
bool honest(const Result& r) { return placed(r) && honestly_timed(r) && plottable(r.speedup_vs_baseline); }

const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
                          "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"};

// Examples in first-seen order, each with a colour.
std::map<std::string, std::string> colours(const RunReport& r, std::vector<std::string>* order) {
  std::map<std::string, std::string> c;
  for (const auto& x : r.results)
    if (!c.count(x.example)) {
      c[x.example] = kPalette[c.size() % (sizeof kPalette / sizeof *kPalette)];
      order->push_back(x.example);
    }
  return c;
}

// Decade ticks between lo and hi; none unless 0 < lo <= hi < inf. The exponent is an integer counter
// (at most kMaxDecades ticks), so no input can make this loop run away.
constexpr int kMaxDecades = 128;
std::vector<double> decades(double lo, double hi) {
  std::vector<double> t;
  if (!(std::isfinite(lo) && std::isfinite(hi) && lo > 0 && hi >= lo)) return t;
  const int e0 = static_cast<int>(std::floor(std::log10(lo))), e1 = static_cast<int>(std::ceil(std::log10(hi)));
  for (int e = e0; e <= e1 && e - e0 < kMaxDecades; ++e) {
    const double v = std::pow(10.0, e);
    if (v >= lo * 0.999 && v <= hi * 1.001) t.push_back(v);
  }
  return t;
}

std::string tick_label(double v) {
  if (v >= 1000) return f("%.0f", v);
  if (v >= 1) return f("%.0f", v);
  if (v >= 0.01) return f("%.2g", v);
  return f("%.0e", v);
}

struct Ceil {
  double dram_gbps = 0;
  std::map<std::string, double> tflops;  // per compute unit used in the report
  std::string source;                   // "measured (aipe peak ...)" or "spec sheet"
};

Ceil ceilings(const RunReport& r) {
  Ceil c;
  const bool meas = r.measured && plottable(r.measured->dram_gbps);
  c.dram_gbps = meas ? r.measured->dram_gbps : plottable(r.spec.dram_gbps) ? r.spec.dram_gbps : 0;
  c.source = meas ? "measured" + (r.measured_source.empty() ? std::string() : " (" + r.measured_source + ")") : "spec sheet";
  static const std::map<std::string, ComputeUnit> units = {{"fp32", ComputeUnit::fp32}, {"fp64", ComputeUnit::fp64},
                                                           {"tf32", ComputeUnit::tf32}, {"bf16", ComputeUnit::bf16},
                                                           {"fp16", ComputeUnit::fp16}, {"fp8", ComputeUnit::fp8},
                                                           {"int8", ComputeUnit::int8}};
  for (const auto& x : r.results) {
    if (!placed(x) || x.flops <= 0) continue;
    auto u = units.find(x.unit);
    if (u == units.end()) continue;
    double t = meas ? peak_tflops(*r.measured, u->second) : 0;
    if (!plottable(t)) t = peak_tflops(r.spec, u->second);
    if (plottable(t)) c.tflops[x.unit] = t;
  }
  return c;
}

std::string point_title(const Result& x) {
  std::string t = x.example + " · " + x.variant + ": " + format_time_ms(x.median_ms);
  if (x.flops > 0) t += ", " + f("%.2f TFLOP/s", x.tflops) + " at " + f("%.3g FLOP/B", x.intensity);
  if (x.bytes > 0) t += ", " + f("%.1f GB/s", x.gbps);
  if (x.pct_of_measured > 0) t += ", " + f("%.1f%% of measured roofline", x.pct_of_measured);
  else if (x.pct_of_spec > 0) t += ", " + f("%.1f%% of spec roofline", x.pct_of_spec);
  if (x.timing != "standard") t += " (timing: " + x.timing + ", deliberately not the standard method)";
  return t;
}

void marker(std::ostream& os, double cx, double cy, const Result& x, const std::string& colour) {
  const bool lib = is_library_variant(x.variant);
  const bool dishonest = x.timing != "standard";
  os << "<circle class=\"point\" data-example=\"" << esc(x.example) << "\" data-variant=\"" << esc(x.variant)
     << "\" cx=\"" << f("%.1f", cx) << "\" cy=\"" << f("%.1f", cy) << "\" r=\"" << (lib ? 6 : 5) << "\" fill=\""
     << (dishonest ? "white" : colour) << "\" stroke=\"" << (lib ? "black" : colour) << "\" stroke-width=\""
     << (lib ? 2 : 1.5) << "\"><title>" << esc(point_title(x)) << "</title></circle>\n";
}

// Log-log roofline of the variants that do arithmetic: x = FLOP/byte, y = TFLOP/s.
void roofline_svg(std::ostream& os, const RunReport& r, const Ceil& c, const std::map<std::string, std::string>& col) {
  std::vector<const Result*> pts;
  for (const auto& x : r.results)
    if (placed(x) && x.flops > 0) pts.push_back(&x);
  if (pts.empty()) return;
  const double W = 860, H = 460, L = 70, R = 20, T = 20, B = 50;
  double xlo = 1e30, xhi = 0, ylo = 1e30, yhi = 0;
  for (const auto* p : pts) {
    if (p->bytes > 0) {
      xlo = std::min(xlo, p->intensity);
      xhi = std::max(xhi, p->intensity);
    }
    ylo = std::min(ylo, p->tflops);
    yhi = std::max(yhi, p->tflops);
  }
  if (xhi <= 0) xlo = xhi = 1;  // every point moves no DRAM bytes: they sit at the right edge
  for (const auto& [u, t] : c.tflops) {
    yhi = std::max(yhi, t);
    if (c.dram_gbps > 0) xhi = std::max(xhi, t * 1000 / c.dram_gbps);  // ridge point
  }
  xlo = std::pow(10, std::floor(std::log10(xlo / 2)));
  xhi = std::pow(10, std::ceil(std::log10(xhi * 2)));
  ylo = std::pow(10, std::floor(std::log10(std::max(ylo / 2, 1e-6))));
  yhi = std::pow(10, std::ceil(std::log10(yhi * 1.5)));
  auto X = [&](double v) { return L + (W - L - R) * (std::log10(v) - std::log10(xlo)) / (std::log10(xhi) - std::log10(xlo)); };
  auto Y = [&](double v) { return H - B - (H - T - B) * (std::log10(v) - std::log10(ylo)) / (std::log10(yhi) - std::log10(ylo)); };
  os << "<svg class=\"roofline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
     << "\" viewBox=\"0 0 " << W << " " << H << "\" role=\"img\" aria-label=\"roofline\">\n";
  os << "<rect x=\"" << L << "\" y=\"" << T << "\" width=\"" << W - L - R << "\" height=\"" << H - T - B
     << "\" fill=\"#fafafa\" stroke=\"#999\"/>\n";
  for (double t : decades(xlo, xhi))
    os << "<line class=\"grid\" x1=\"" << f("%.1f", X(t)) << "\" x2=\"" << f("%.1f", X(t)) << "\" y1=\"" << T << "\" y2=\""
       << H - B << "\" stroke=\"#e4e4e4\"/><text x=\"" << f("%.1f", X(t)) << "\" y=\"" << H - B + 16
       << "\" text-anchor=\"middle\" class=\"tick\">" << tick_label(t) << "</text>\n";
  for (double t : decades(ylo, yhi))
    os << "<line class=\"grid\" x1=\"" << L << "\" x2=\"" << W - R << "\" y1=\"" << f("%.1f", Y(t)) << "\" y2=\""
       << f("%.1f", Y(t)) << "\" stroke=\"#e4e4e4\"/><text x=\"" << L - 6 << "\" y=\"" << f("%.1f", Y(t) + 4)
       << "\" text-anchor=\"end\" class=\"tick\">" << tick_label(t) << "</text>\n";
  os << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 10
     << "\" text-anchor=\"middle\" class=\"axis\">arithmetic intensity (FLOP per DRAM byte)</text>\n";
  os << "<text transform=\"translate(16," << (T + H - B) / 2
     << ") rotate(-90)\" text-anchor=\"middle\" class=\"axis\">TFLOP/s</text>\n";
  // Roofs: min(peak, intensity x bandwidth) per compute unit.
  for (const auto& [u, peak] : c.dram_gbps > 0 ? c.tflops : std::map<std::string, double>{}) {
    const double ridge = peak * 1000 / c.dram_gbps;
    const double x0 = xlo, y0 = x0 * c.dram_gbps / 1000;
    std::string d = "M" + f("%.1f", X(x0)) + "," + f("%.1f", Y(std::max(y0, ylo)));
    if (y0 < ylo) d = "M" + f("%.1f", X(ylo * 1000 / c.dram_gbps)) + "," + f("%.1f", Y(ylo));
    d += " L" + f("%.1f", X(ridge)) + "," + f("%.1f", Y(peak)) + " L" + f("%.1f", X(xhi)) + "," + f("%.1f", Y(peak));
    os << "<path class=\"roof\" d=\"" << d << "\" fill=\"none\" stroke=\"#333\" stroke-width=\"2\"/>\n";
    os << "<text x=\"" << W - R - 4 << "\" y=\"" << f("%.1f", Y(peak) - 5) << "\" text-anchor=\"end\" class=\"roof-label\">"
       << esc(u) << " " << f("%.0f", peak) << " TFLOP/s</text>\n";
  }
  if (c.dram_gbps > 0)
    os << "<text x=\"" << L + 8 << "\" y=\"" << T + 16 << "\" class=\"roof-label\">DRAM " << f("%.0f", c.dram_gbps)
       << " GB/s (" << esc(c.source) << ")</text>\n";
  // A rung whose work model moves no DRAM bytes has unbounded intensity: it sits on the right edge.
  for (const auto* p : pts)
    marker(os, p->bytes > 0 ? X(p->intensity) : X(xhi), Y(std::max(p->tflops, ylo)), *p, col.at(p->example));
  os << "</svg>\n";
}

// Rungs with neither FLOPs nor DRAM bytes in their work model (launch latency, synchronization):
// no roof applies; each sits at its median time (log scale), one row per example.
void latency_svg(std::ostream& os, const RunReport& r, const std::map<std::string, std::string>& col,
                 const std::vector<std::string>& order) {
  std::vector<std::string> rows;
  double lo = 1e30, hi = 0;
  for (const auto& e : order)
    for (const auto& x : r.results)
      if (x.example == e && placed(x) && x.flops <= 0 && x.bytes <= 0) {
        if (std::find(rows.begin(), rows.end(), e) == rows.end()) rows.push_back(e);
        lo = std::min(lo, x.median_ms * 1e3);
        hi = std::max(hi, x.median_ms * 1e3);
      }
  if (rows.empty()) return;
  lo = std::pow(10, std::floor(std::log10(lo)));
  hi = std::pow(10, std::ceil(std::log10(hi * 1.01)));
  if (hi <= lo) hi = lo * 10;
  const double W = 860, L = 240, R = 30, T = 12, rowh = 34, B = 46;
  const double H = T + rowh * rows.size() + B;
  auto X = [&](double us) { return L + (W - L - R) * (std::log10(us) - std::log10(lo)) / (std::log10(hi) - std::log10(lo)); };
  os << "<svg class=\"latency\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
     << "\" viewBox=\"0 0 " << W << " " << H << "\" role=\"img\" aria-label=\"time per run\">\n";
  os << "<rect x=\"" << L << "\" y=\"" << T << "\" width=\"" << W - L - R << "\" height=\"" << rowh * rows.size()
     << "\" fill=\"#fafafa\" stroke=\"#999\"/>\n";
  for (double t : decades(lo, hi))
    os << "<line class=\"grid\" x1=\"" << f("%.1f", X(t)) << "\" x2=\"" << f("%.1f", X(t)) << "\" y1=\"" << T
       << "\" y2=\"" << T + rowh * rows.size() << "\" stroke=\"#e4e4e4\"/><text x=\"" << f("%.1f", X(t)) << "\" y=\""
       << T + rowh * rows.size() + 16 << "\" text-anchor=\"middle\" class=\"tick\">" << tick_label(t) << "</text>\n";
  os << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 8
     << "\" text-anchor=\"middle\" class=\"axis\">median time per run (us): rungs whose work model has no FLOPs and no DRAM bytes</text>\n";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const double cy = T + rowh * (i + 0.5);
    os << "<text x=\"" << L - 8 << "\" y=\"" << f("%.1f", cy + 4) << "\" text-anchor=\"end\" class=\"row-label\">"
       << esc(rows[i]) << "</text>\n";
    for (const auto& x : r.results)
      if (x.example == rows[i] && placed(x) && x.flops <= 0 && x.bytes <= 0)
        marker(os, X(x.median_ms * 1e3), cy, x, col.at(x.example));
  }
  os << "</svg>\n";
}

// Rungs that do no arithmetic (copies, transposes, bandwidth probes): the roofline for them is the
// DRAM roof alone; each sits at its attained GB/s, one row per example.
void bandwidth_svg(std::ostream& os, const RunReport& r, const Ceil& c, const std::map<std::string, std::string>& col,
                   const std::vector<std::string>& order) {
  std::vector<std::string> rows;
  double hi = c.dram_gbps;
  for (const auto& e : order)
    for (const auto& x : r.results)
      if (x.example == e && placed(x) && x.flops <= 0 && x.bytes > 0) {
        if (std::find(rows.begin(), rows.end(), e) == rows.end()) rows.push_back(e);
        hi = std::max(hi, x.gbps);
      }
  if (rows.empty()) return;
  const double W = 860, L = 240, R = 30, T = 24, rowh = 34, B = 46;
  const double H = T + rowh * rows.size() + B;
  hi = hi > 0 ? hi * 1.08 : 1;
  auto X = [&](double v) { return L + (W - L - R) * v / hi; };
  os << "<svg class=\"bandwidth-roof\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
     << "\" viewBox=\"0 0 " << W << " " << H << "\" role=\"img\" aria-label=\"bandwidth roof\">\n";
  os << "<rect x=\"" << L << "\" y=\"" << T << "\" width=\"" << W - L - R << "\" height=\"" << rowh * rows.size()
     << "\" fill=\"#fafafa\" stroke=\"#999\"/>\n";
  // Ticks at multiples of a power of ten: at most ~20 (hi is finite: every rate on it is plottable).
  const double step = std::pow(10, std::floor(std::log10(hi / 2)));
  for (int k = 0; k < 64 && k * step <= hi; ++k) {
    const double v = k * step;
    os << "<line class=\"grid\" x1=\"" << f("%.1f", X(v)) << "\" x2=\"" << f("%.1f", X(v)) << "\" y1=\"" << T
       << "\" y2=\"" << T + rowh * rows.size() << "\" stroke=\"#e4e4e4\"/><text x=\"" << f("%.1f", X(v)) << "\" y=\""
       << T + rowh * rows.size() + 16 << "\" text-anchor=\"middle\" class=\"tick\">" << f("%.0f", v) << "</text>\n";
  }
  os << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 8
     << "\" text-anchor=\"middle\" class=\"axis\">attained DRAM bandwidth (GB/s, work-model bytes / median time)</text>\n";
  if (c.dram_gbps > 0)
    os << "<line class=\"roof\" x1=\"" << f("%.1f", X(c.dram_gbps)) << "\" x2=\"" << f("%.1f", X(c.dram_gbps))
       << "\" y1=\"" << T - 6 << "\" y2=\"" << T + rowh * rows.size() << "\" stroke=\"#333\" stroke-width=\"2\"/>"
       << "<text x=\"" << f("%.1f", X(c.dram_gbps) - 4) << "\" y=\"" << T - 8 << "\" text-anchor=\"end\" class=\"roof-label\">DRAM "
       << f("%.0f", c.dram_gbps) << " GB/s (" << esc(c.source) << ")</text>\n";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const double cy = T + rowh * (i + 0.5);
    os << "<text x=\"" << L - 8 << "\" y=\"" << f("%.1f", cy + 4) << "\" text-anchor=\"end\" class=\"row-label\">"
       << esc(rows[i]) << "</text>\n";
    for (const auto& x : r.results)
      if (x.example == rows[i] && placed(x) && x.flops <= 0 && x.bytes > 0) marker(os, X(x.gbps), cy, x, col.at(x.example));
  }
  os << "</svg>\n";
}

// Per example: each timed rung's speedup over the ladder's first rung.
void speedup_svg(std::ostream& os, const RunReport& r, const std::string& example, const std::string& colour) {
  std::vector<const Result*> rs;
  double hi = 1, lo = 1;
  for (const auto& x : r.results)
    if (x.example == example && honest(x) && x.speedup_vs_baseline > 0) {
      rs.push_back(&x);
      hi = std::max(hi, x.speedup_vs_baseline);
      lo = std::min(lo, x.speedup_vs_baseline);
    }
  if (rs.size() < 2) return;
  // Ladders that span orders of magnitude (one thread -> the whole GPU) get a log scale.
  const bool log_scale = hi / lo > 30;
  const double lmin = std::log10(lo) - 0.3;
  auto bar = [&](double v) {
    return log_scale ? (std::log10(v) - lmin) / (std::log10(hi) - lmin) : v / hi;
  };
  const double W = 860, L = 200, R = 80, T = 8, rowh = 24;
  const double H = T * 2 + rowh * rs.size();
  os << "<svg class=\"speedup\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
     << "\" viewBox=\"0 0 " << W << " " << H << "\" role=\"img\" aria-label=\"speedup of " << esc(example) << "\">\n";
  for (std::size_t i = 0; i < rs.size(); ++i) {
    const Result& x = *rs[i];
    const double y = T + rowh * i, w = (W - L - R) * bar(x.speedup_vs_baseline);
    const bool lib = is_library_variant(x.variant);
    os << "<text x=\"" << L - 8 << "\" y=\"" << f("%.1f", y + rowh * 0.68) << "\" text-anchor=\"end\" class=\"row-label\">"
       << esc(x.variant) << "</text>";
    os << "<rect class=\"bar\" data-variant=\"" << esc(x.variant) << "\" x=\"" << L << "\" y=\"" << f("%.1f", y + 3)
       << "\" width=\"" << f("%.1f", std::max(w, 1.0)) << "\" height=\"" << rowh - 6 << "\" fill=\""
       << (lib ? "#555" : colour) << "\"><title>" << esc(x.variant + ": " + f("%.2fx", x.speedup_vs_baseline) +
                                                         " vs " + rs[0]->variant)
       << "</title></rect>";
    os << "<text x=\"" << f("%.1f", L + std::max(w, 1.0) + 6) << "\" y=\"" << f("%.1f", y + rowh * 0.68)
       << "\" class=\"tick\">" << f("%.2fx", x.speedup_vs_baseline) << "</text>\n";
  }
  if (log_scale)
    os << "<text x=\"" << W - 4 << "\" y=\"" << H - 4 << "\" text-anchor=\"end\" class=\"tick\">log scale</text>\n";
  os << "</svg>\n";
}

std::string cell_pct(double v) { return v > 0 ? f("%.1f%%", v) : "-"; }
std::string cell_x(double v) { return v > 0 ? f("%.2fx", v) : "-"; }

void table(std::ostream& os, const RunReport& r) {
  os << "<table><thead><tr><th>example</th><th>variant</th><th>median</th><th>noise</th><th>GB/s</th><th>TFLOP/s</th>"
        "<th>FLOP/B</th><th>% spec</th><th>% meas</th><th>x base</th><th>x lib</th><th>rel err</th><th>status</th>"
        "<th>metrics</th></tr></thead><tbody>\n";
  for (const auto& x : r.results) {
    const bool t = x.timed;
    std::string st = x.status == Status::passed ? "ok" : std::string(to_string(x.status)) + ": " + x.reason;
    if (x.status == Status::passed && x.timing != "standard") st += " (timing: " + x.timing + ")";
    std::string metrics;
    for (const auto& [k, v] : x.metrics) metrics += (metrics.empty() ? "" : ", ") + k + " " + f("%.4g", v);
    os << "<tr class=\"" << to_string(x.status) << "\"><td>" << esc(x.example) << "</td><td>" << esc(x.variant)
       << "</td><td>" << (t ? format_time_ms(x.median_ms) : "-") << "</td><td>" << (t ? cell_pct(100 * x.noise) : "-")
       << "</td><td>" << (t && x.bytes > 0 ? format_rate(x.gbps) : "-") << "</td><td>"
       << (t && x.flops > 0 ? format_rate(x.tflops, 2) : "-") << "</td><td>" << (x.flops > 0 ? f("%.3g", x.intensity) : "-")
       << "</td><td>" << (t ? cell_pct(x.pct_of_spec) : "-") << "</td><td>" << (t ? cell_pct(x.pct_of_measured) : "-")
       << "</td><td>" << cell_x(x.speedup_vs_baseline) << "</td><td>" << cell_x(x.speedup_vs_library) << "</td><td>"
       << (x.status == Status::skipped ? "-" : f("%.1e", x.norm_rel_error)) << "</td><td>" << esc(st)
       << "</td><td class=\"metrics\">" << esc(metrics) << "</td></tr>\n";
  }
  os << "</tbody></table>\n";
}

}  // namespace

NamedReport named_report(std::string source, AnyReport r) {
  NamedReport n{.source = std::move(source), .report = {}, .generate = {}, .serve = {}};
  if (auto* run = std::get_if<RunReport>(&r)) n.report = std::move(*run);
  else if (auto* g = std::get_if<BenchGenerateReport>(&r)) n.generate = std::move(*g);
  else n.serve = std::move(std::get<BenchServeReport>(r));
  return n;
}

namespace {
std::vector<NamedGenerate> generate_files(const std::vector<NamedReport>& reports) {
  std::vector<NamedGenerate> v;
  for (const auto& nr : reports)
    if (nr.generate) v.push_back({.source = nr.source, .report = &*nr.generate});
  return v;
}
}  // namespace

int placed_variants(const RunReport& r) {
  return int(std::count_if(r.results.begin(), r.results.end(), [](const Result& x) { return placed(x); }));
}

void write_html(std::ostream& os, const std::vector<NamedReport>& reports) {
  os << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>aipe results</title>\n<style>\n"
        "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#222;max-width:1200px}\n"
        "h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ccc}h3{font-size:15px}\n"
        "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ddd;padding:3px 6px;text-align:right}\n"
        "td:nth-child(1),td:nth-child(2),td:nth-last-child(-n+2),th{text-align:left}td.metrics{font-size:10px;color:#555;max-width:360px}td:nth-child(3){white-space:nowrap}tr.failed{background:#fde}tr.skipped{color:#888}\n"
        "svg text{font-size:11px;fill:#333}svg .axis{font-size:12px}svg .roof-label{font-size:11px;font-weight:600}\n"
        ".legend span{display:inline-block;margin-right:14px;font-size:12px}.legend i{display:inline-block;width:10px;"
        "height:10px;border-radius:5px;margin-right:4px}\n.meta{color:#555;font-size:13px}\n</style></head><body>\n";
  os << "<h1>aipe results</h1>\n";
  for (const auto& nr : reports) {
    if (nr.generate) {
      write_generate_html(os, nr.source, *nr.generate);
      continue;
    }
    if (nr.serve) {
      write_serve_html(os, nr.source, *nr.serve);
      continue;
    }
    const RunReport& r = nr.report;
    std::vector<std::string> order;
    const auto col = colours(r, &order);
    const Ceil c = ceilings(r);
    os << "<section class=\"report\">\n<h2>" << esc(r.device ? r.device->name : std::string("unknown device")) << " — "
       << esc(nr.source) << "</h2>\n";
    os << "<p class=\"meta\">aipe " << esc(r.aipe_version) << " (" << esc(r.git_revision) << "), " << esc(r.timestamp)
       << ", <code>" << esc(r.command) << "</code>; " << r.passed() << " passed, " << r.failed() << " failed, "
       << r.skipped() << " skipped; ceilings: " << esc(c.source) << "</p>\n";
    os << "<div class=\"legend\">";
    for (const auto& e : order) os << "<span><i style=\"background:" << col.at(e) << "\"></i>" << esc(e) << "</span>";
    os << "<span>black ring: vendor library rung; hollow: deliberately non-standard timing</span></div>\n";
    os << "<h3>Roofline</h3>\n";
    roofline_svg(os, r, c, col);
    bandwidth_svg(os, r, c, col, order);
    latency_svg(os, r, col, order);
    if (placed_variants(r) == 0) os << "<p>No timed variants in this report (verify-only, skipped or failed).</p>\n";
    const auto unplaced = std::count_if(r.results.begin(), r.results.end(), [](const Result& x) { return timed_ok(x) && !drawable(x); });
    if (unplaced > 0)
      os << "<p class=\"unplaced\">" << unplaced << " timed variant(s) not on the charts: a rate or intensity in the "
         << "results file is 0, missing or out of range (table below).</p>\n";
    os << "<h3>Speedup over each ladder's first rung</h3>\n";
    for (const auto& e : order) {
      std::ostringstream s;
      speedup_svg(s, r, e, col.at(e));
      if (!s.str().empty()) os << "<h4>" << esc(e) << "</h4>\n" << s.str();
    }
    os << "<h3>All results</h3>\n";
    table(os, r);
    os << "</section>\n";
  }
  write_generate_side_by_side_html(os, generate_files(reports));
  os << "</body></html>\n";
}

void write_report_markdown(std::ostream& os, const std::vector<NamedReport>& reports, bool summary_only) {
  for (const auto& nr : reports) {
    // A bench file's table is its summary: --summary does not shorten it.
    if (nr.generate) {
      write_generate_markdown(os, nr.source, *nr.generate);
      continue;
    }
    if (nr.serve) {
      write_serve_markdown(os, nr.source, *nr.serve);
      continue;
    }
    const RunReport& r = nr.report;
    os << "Results from `" << printable(nr.source) << "`";
    if (r.device) os << " on **" << printable(r.device->name) << "**";
    os << " (aipe " << printable(r.aipe_version) << ", " << printable(r.git_revision) << ", " << printable(r.timestamp)
       << "); ceilings: " << printable(ceilings(r).source) << ".\n\n";
    os << "| example | best rung | median | GB/s | TFLOP/s | % of roofline | x first rung | library rung | x library |\n"
          "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |\n";
    std::vector<std::string> order;
    colours(r, &order);
    for (const auto& e : order) {
      const Result* best = nullptr;
      const Result* lib = nullptr;
      for (const auto& x : r.results) {
        if (x.example != e || !honest(x)) continue;
        if (is_library_variant(x.variant)) {
          if (!lib) lib = &x;
        } else if (!best || x.median_ms < best->median_ms) {
          best = &x;
        }
      }
      if (!best && !lib) {
        os << "| " << printable(e) << " | (no timed rung) | | | | | | | |\n";
        continue;
      }
      const Result& b = best ? *best : *lib;
      const double pct = b.pct_of_measured > 0 ? b.pct_of_measured : b.pct_of_spec;
      os << "| " << printable(e) << " | " << printable(b.variant) << " | " << format_time_ms(b.median_ms) << " | "
         << (b.bytes > 0 ? format_rate(b.gbps) : "-") << " | " << (b.flops > 0 ? format_rate(b.tflops, 2) : "-")
         << " | " << cell_pct(pct) << (b.pct_of_measured > 0 ? " (meas.)" : pct > 0 ? " (spec)" : "") << " | "
         << cell_x(b.speedup_vs_baseline) << " | " << (lib ? printable(lib->variant) : "-") << " | "
         << (best && lib ? cell_x(best->speedup_vs_library) : "-") << " |\n";
    }
    const Geomeans g = geomeans(r.results);
    os << "\n" << r.passed() << " passed, " << r.failed() << " failed, " << r.skipped() << " skipped";
    if (g.n_baseline) os << f("; geomean of best rung vs first rung %.2fx", g.vs_baseline);
    if (g.n_library) os << f(", vs library %.2fx", g.vs_library);
    os << ".\n\n";
    if (!summary_only) {
      write_markdown(os, r);
      os << "\n";
    }
  }
  write_generate_side_by_side_markdown(os, generate_files(reports));
}

}  // namespace aipe::profile
