#include "aipe/profile/bench_report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <tuple>

#include "aipe/printable.hpp"

namespace aipe::profile {

namespace {

std::string f(const char* fmt, double v) {
  char b[64];
  std::snprintf(b, sizeof b, fmt, v);
  return b;
}
std::string ms2(double s) { return f("%.2f", s * 1e3); }
std::string ms3(double s) { return f("%.3f", s * 1e3); }

std::string html_esc(const std::string& raw) {
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

// Inline Markdown code or a table cell: terminal-safe, and no character that ends the span or the cell.
std::string md_code(const std::string& raw) {
  std::string o;
  for (char c : printable(raw)) o += c == '`' ? '\'' : c;
  return "`" + o + "`";
}
std::string md_cell(const std::string& raw) {
  std::string o;
  for (char c : printable(raw)) o += c == '|' ? std::string("\\|") : std::string(1, c);
  return o;
}

// One table, rendered as Markdown or HTML from the same cells.
struct TextTable {
  std::vector<std::string> header;
  std::vector<bool> right;
  std::vector<std::vector<std::string>> rows;
};

void markdown(std::ostream& os, const TextTable& t) {
  os << "|";
  for (const auto& h : t.header) os << " " << md_cell(h) << " |";
  os << "\n|";
  for (bool r : t.right) os << (r ? " ---: |" : " --- |");
  os << "\n";
  for (const auto& row : t.rows) {
    os << "|";
    for (const auto& c : row) os << " " << md_cell(c) << " |";
    os << "\n";
  }
}

void html(std::ostream& os, const TextTable& t, const std::string& cls) {
  os << "<table class=\"" << cls << "\"><thead><tr>";
  for (const auto& h : t.header) os << "<th>" << html_esc(h) << "</th>";
  os << "</tr></thead><tbody>\n";
  for (const auto& row : t.rows) {
    os << "<tr>";
    for (std::size_t c = 0; c < row.size(); ++c)
      os << "<td style=\"text-align:" << (t.right[c] ? "right" : "left") << "\">" << html_esc(row[c]) << "</td>";
    os << "</tr>\n";
  }
  os << "</tbody></table>\n";
}

std::string on_off(const std::optional<bool>& b) { return b ? (*b ? "on" : "off") : "not recorded"; }

std::string model_line(const BenchGenerateReport& r) {
  std::string s = r.model + (r.synthetic ? " (synthetic weights)" : " (checkpoint)");
  if (r.weight_bytes > 0) s += ", " + f("%.2f GB", r.weight_bytes / 1e9) + " of weights";
  if (r.parameters > 0) s += ", " + f("%.2f B", double(r.parameters) / 1e9) + " parameters";
  return s + "; input " + std::to_string(r.input_len) + ", output " + std::to_string(r.output_len) + " tokens";
}

std::string source_or(const std::string& s) { return s.empty() ? "source not recorded" : s; }

std::string ceilings_line(const BenchGenerateReport& r) {
  std::string s = "DRAM " + (r.dram_gbps > 0 ? f("%.0f GB/s", r.dram_gbps) + ", " + source_or(r.dram_source)
                                            : std::string("not recorded"));
  s += "; BF16 " + (r.bf16_tflops > 0 ? f("%.0f TFLOP/s", r.bf16_tflops) + ", " + source_or(r.bf16_source)
                                      : std::string("not recorded (the bound is DRAM time alone)"));
  return s;
}

std::string switches_line(const BenchGenerateReport& r) {
  return "PDL " + on_off(r.programmatic_launch) + ", CUDA graphs " + on_off(r.cuda_graphs);
}

TextTable generate_table(const BenchGenerateReport& r) {
  TextTable t{{"batch", "TTFT ms", "TPOT p50 ms", "TPOT p90 ms", "TPOT p99 ms", "decode tok/s", "bound", "bound ms",
               "bound tok/s", "% of bound"},
              {true, true, true, true, true, true, false, true, true, true},
              {}};
  for (const auto& x : r.runs)
    t.rows.push_back({std::to_string(x.batch), ms2(x.ttft_s), ms3(x.tpot_s.p50), ms3(x.tpot_s.p90), ms3(x.tpot_s.p99),
                      f("%.1f", x.decode_tokens_per_s), x.bound.empty() ? "-" : x.bound,
                      x.bound_step_s > 0 ? ms3(x.bound_step_s) : "-",
                      x.bound_step_s > 0 ? f("%.1f", double(x.batch) / x.bound_step_s) : "-",
                      x.fraction_of_bound > 0 ? f("%.1f%%", 100 * x.fraction_of_bound) : "-"});
  return t;
}

std::string load(const BenchServeRun& x) {
  if (x.concurrency > 0) return "concurrency " + std::to_string(x.concurrency);
  if (x.rate > 0) return f("%g req/s", x.rate);
  return "all at once";
}

std::string slo_line(const BenchServeReport& r) {
  if (r.slo_ttft_ms <= 0 && r.slo_tpot_ms <= 0) return "SLOs: none (goodput counts every completed request)";
  std::string s = "SLOs:";
  if (r.slo_ttft_ms > 0) s += " TTFT <= " + f("%g ms", r.slo_ttft_ms);
  if (r.slo_tpot_ms > 0) s += std::string(r.slo_ttft_ms > 0 ? "," : "") + " TPOT <= " + f("%g ms", r.slo_tpot_ms);
  return s + " (goodput: requests/s that met them)";
}

std::string workload_line(const BenchServeReport& r) {
  return std::to_string(r.num_prompts) + " requests, " +
         (r.dataset.empty() ? "input " + std::to_string(r.input_len) + " tokens" : "dataset " + r.dataset) + ", output " +
         std::to_string(r.output_len) + " tokens" +
         (r.shared_prefix > 0 ? ", the first " + std::to_string(r.shared_prefix) + " shared by every prompt" : "") +
         (r.malformed_fraction > 0 || r.disconnect_fraction > 0
              ? ", " + f("%g", r.malformed_fraction) + " of the requests malformed and " +
                    f("%g", r.disconnect_fraction) + " hanging up mid-stream (counted apart; the latencies are the others')"
              : "");
}

// Runs with faults mixed in, or a drain check, get the columns that count them; other files keep their table.
bool has_mixed_in(const BenchServeReport& r) {
  return std::any_of(r.runs.begin(), r.runs.end(), [](const BenchServeRun& x) {
    return x.disconnected > 0 || x.malformed > 0 || x.metrics_drained.has_value();
  });
}

TextTable serve_table(const BenchServeReport& r) {
  TextTable t{{"load", "completed", "failed", "req/s", "out tok/s", "TTFT p50 ms", "TTFT p90 ms", "TTFT p99 ms",
               "TPOT p50 ms", "TPOT p90 ms", "TPOT p99 ms", "ITL p99 ms", "goodput req/s"},
              {false, true, true, true, true, true, true, true, true, true, true, true, true},
              {}};
  for (const auto& x : r.runs)
    t.rows.push_back({load(x), std::to_string(x.completed), std::to_string(x.failed), f("%.2f", x.request_throughput),
                      f("%.1f", x.output_throughput), ms2(x.ttft_s.p50), ms2(x.ttft_s.p90), ms2(x.ttft_s.p99),
                      ms3(x.tpot_s.p50), ms3(x.tpot_s.p90), ms3(x.tpot_s.p99), ms3(x.itl_s.p99), f("%.2f", x.goodput)});
  if (has_mixed_in(r)) {
    for (const char* h : {"hung up", "malformed", "answered 400", "drained"}) {
      t.header.push_back(h);
      t.right.push_back(true);
    }
    for (std::size_t i = 0; i < r.runs.size(); ++i) {
      const BenchServeRun& x = r.runs[i];
      for (const std::int64_t n : {x.disconnected, x.malformed, x.malformed_rejected}) t.rows[i].push_back(std::to_string(n));
      t.rows[i].push_back(!x.metrics_drained ? "" : *x.metrics_drained ? "yes" : "no");
    }
  }
  return t;
}

// Files that compare: one model on one device with the same input and output lengths.
using GroupKey = std::tuple<std::string, std::string, std::int64_t, std::int64_t>;
std::vector<std::pair<GroupKey, std::vector<const NamedGenerate*>>> groups(const std::vector<NamedGenerate>& files) {
  std::vector<std::pair<GroupKey, std::vector<const NamedGenerate*>>> g;
  for (const auto& nf : files) {
    const GroupKey k{nf.report->model, nf.report->device, nf.report->input_len, nf.report->output_len};
    auto it = std::find_if(g.begin(), g.end(), [&](const auto& e) { return e.first == k; });
    if (it == g.end()) g.push_back({k, {&nf}});
    else it->second.push_back(&nf);
  }
  std::erase_if(g, [](const auto& e) { return e.second.size() < 2; });
  return g;
}

std::string group_title(const GroupKey& k) {
  return std::get<0>(k) + " on " + (std::get<1>(k).empty() ? std::string("an unrecorded device") : std::get<1>(k)) +
         ", input " + std::to_string(std::get<2>(k)) + ", output " + std::to_string(std::get<3>(k));
}

// Batch by batch (ascending), each file's row in the order given; "x first" is decode tokens/s against the
// group's first file at that batch.
TextTable side_by_side(const std::vector<const NamedGenerate*>& files) {
  TextTable t{{"batch", "file", "PDL", "CUDA graphs", "TPOT p50 ms", "decode tok/s", "% of bound", "x first"},
              {true, false, false, false, true, true, true, true},
              {}};
  std::vector<std::int64_t> batches;
  for (const auto* nf : files)
    for (const auto& x : nf->report->runs)
      if (std::find(batches.begin(), batches.end(), x.batch) == batches.end()) batches.push_back(x.batch);
  std::sort(batches.begin(), batches.end());
  for (const std::int64_t b : batches) {
    double first = 0;
    bool first_seen = false;
    for (const auto* nf : files)
      for (const auto& x : nf->report->runs) {
        if (x.batch != b) continue;
        if (!first_seen) {
          first_seen = true;
          first = x.decode_tokens_per_s;
        }
        t.rows.push_back({std::to_string(b), nf->source, on_off(nf->report->programmatic_launch),
                          on_off(nf->report->cuda_graphs), ms3(x.tpot_s.p50), f("%.1f", x.decode_tokens_per_s),
                          x.fraction_of_bound > 0 ? f("%.1f%%", 100 * x.fraction_of_bound) : "-",
                          first > 0 && x.decode_tokens_per_s > 0 ? f("%.2fx", x.decode_tokens_per_s / first) : "-"});
        break;  // one row per file and batch
      }
  }
  return t;
}

// ---- charts ----

// What a chart axis can hold: the reader admits any finite number >= 0, and 1e300 must not reach a tick loop.
bool plottable(double v) { return std::isfinite(v) && (v == 0 || (v >= 1e-30 && v <= 1e30)); }

struct Point {
  double x = 0, y = 0;
  std::string title, data;  // tooltip; data-* attributes
};
struct Series {
  std::string name, colour, cls;  // cls: the marker's class ("point" for measured runs)
  bool hollow = false, line = true, dashed = false;
  std::vector<Point> points;
};

// A tick step of 1, 2 or 5 times a power of ten giving about five ticks up to hi.
double nice_step(double hi) {
  const double raw = hi / 5, mag = std::pow(10, std::floor(std::log10(raw)));
  const double n = raw / mag;
  return mag * (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10);
}

// x linear from 0 (or log2 for batch sizes, which are >= 1), y linear from 0. Points that cannot be drawn are
// left off (each series' count is what the tests check).
void xy_chart(std::ostream& os, const std::string& cls, const std::string& xlabel, const std::string& ylabel,
              const std::vector<Series>& series, bool log2_x) {
  double xlo = log2_x ? 1e30 : 0, xhi = 0, yhi = 0;
  bool any = false;
  for (const auto& s : series)
    for (const auto& p : s.points) {
      if (!plottable(p.x) || !plottable(p.y) || (log2_x && p.x < 1)) continue;
      any = true;
      xlo = std::min(xlo, p.x);
      xhi = std::max(xhi, p.x);
      yhi = std::max(yhi, p.y);
    }
  if (!any) return;
  if (xhi <= 0) xhi = 1;  // every point at 0 (e.g. no request completed): still drawn, at the left edge
  const double W = 860, H = 380, L = 80, R = 150, T = 20, B = 50;
  if (log2_x) {
    xlo = std::pow(2, std::floor(std::log2(xlo)));
    xhi = std::pow(2, std::ceil(std::log2(xhi)));
    if (xhi <= xlo) {
      xlo /= 2;
      xhi *= 2;
    }
  } else {
    xhi *= 1.1;
  }
  yhi = yhi > 0 ? yhi * 1.1 : 1;
  auto X = [&](double v) {
    return log2_x ? L + (W - L - R) * (std::log2(v) - std::log2(xlo)) / (std::log2(xhi) - std::log2(xlo))
                  : L + (W - L - R) * v / xhi;
  };
  auto Y = [&](double v) { return H - B - (H - T - B) * v / yhi; };
  os << "<svg class=\"" << cls << "\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
     << "\" viewBox=\"0 0 " << W << " " << H << "\" role=\"img\" aria-label=\"" << html_esc(ylabel + " against " + xlabel)
     << "\">\n";
  os << "<rect x=\"" << L << "\" y=\"" << T << "\" width=\"" << W - L - R << "\" height=\"" << H - T - B
     << "\" fill=\"#fafafa\" stroke=\"#999\"/>\n";
  auto xtick = [&](double v, const std::string& label) {
    os << "<line class=\"grid\" x1=\"" << f("%.1f", X(v)) << "\" x2=\"" << f("%.1f", X(v)) << "\" y1=\"" << T << "\" y2=\""
       << H - B << "\" stroke=\"#e4e4e4\"/><text x=\"" << f("%.1f", X(v)) << "\" y=\"" << H - B + 16
       << "\" text-anchor=\"middle\" class=\"tick\">" << label << "</text>\n";
  };
  // Tick counts are bounded by counters, whatever the input.
  if (log2_x) {
    for (int k = 0; k < 64 && xlo * std::pow(2, k) <= xhi * 1.001; ++k) xtick(xlo * std::pow(2, k), f("%g", xlo * std::pow(2, k)));
  } else {
    const double step = nice_step(xhi);
    for (int k = 0; k < 64 && k * step <= xhi; ++k) xtick(k * step, f("%g", k * step));
  }
  const double ystep = nice_step(yhi);
  for (int k = 0; k < 64 && k * ystep <= yhi; ++k)
    os << "<line class=\"grid\" x1=\"" << L << "\" x2=\"" << W - R << "\" y1=\"" << f("%.1f", Y(k * ystep)) << "\" y2=\""
       << f("%.1f", Y(k * ystep)) << "\" stroke=\"#e4e4e4\"/><text x=\"" << L - 6 << "\" y=\""
       << f("%.1f", Y(k * ystep) + 4) << "\" text-anchor=\"end\" class=\"tick\">" << f("%g", k * ystep) << "</text>\n";
  os << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 10 << "\" text-anchor=\"middle\" class=\"axis\">"
     << html_esc(xlabel) << "</text>\n";
  os << "<text transform=\"translate(18," << (T + H - B) / 2 << ") rotate(-90)\" text-anchor=\"middle\" class=\"axis\">"
     << html_esc(ylabel) << "</text>\n";
  double legend_y = T + 12;
  for (const auto& s : series) {
    std::vector<const Point*> ps;
    for (const auto& p : s.points)
      if (plottable(p.x) && plottable(p.y) && (!log2_x || p.x >= 1)) ps.push_back(&p);
    if (s.line && ps.size() > 1) {
      std::string d;
      for (const auto* p : ps) d += (d.empty() ? "M" : " L") + f("%.1f", X(p->x)) + "," + f("%.1f", Y(p->y));
      os << "<path d=\"" << d << "\" fill=\"none\" stroke=\"" << s.colour << "\" stroke-width=\"1.5\""
         << (s.dashed ? " stroke-dasharray=\"5,4\"" : "") << "/>\n";
    }
    for (const auto* p : ps)
      os << "<circle class=\"" << s.cls << "\" " << p->data << " cx=\"" << f("%.1f", X(p->x)) << "\" cy=\""
         << f("%.1f", Y(p->y)) << "\" r=\"5\" fill=\"" << (s.hollow ? "white" : s.colour) << "\" stroke=\"" << s.colour
         << "\" stroke-width=\"1.5\"><title>" << html_esc(p->title) << "</title></circle>\n";
    os << "<circle cx=\"" << W - R + 14 << "\" cy=\"" << legend_y - 4 << "\" r=\"4\" fill=\""
       << (s.hollow ? "white" : s.colour) << "\" stroke=\"" << s.colour << "\"/><text x=\"" << W - R + 24 << "\" y=\""
       << legend_y << "\" class=\"legend-label\">" << html_esc(s.name) << "</text>\n";
    legend_y += 18;
  }
  os << "</svg>\n";
}

Series series(std::string name, std::string colour, std::string cls, bool hollow, bool dashed) {
  return {.name = std::move(name), .colour = std::move(colour), .cls = std::move(cls), .hollow = hollow, .line = true,
          .dashed = dashed, .points = {}};
}

const char* kMeasured = "#1f77b4";
const char* kBound = "#333";

std::vector<Series> generate_series(const BenchGenerateReport& r) {
  Series tok = series("decode tok/s", kMeasured, "point", false, false);
  Series bound = series("roofline bound", kBound, "bound", true, true);
  for (const auto& x : r.runs) {
    const std::string data = "data-batch=\"" + std::to_string(x.batch) + "\"";
    tok.points.push_back({.x = double(x.batch), .y = x.decode_tokens_per_s,
                          .title = "batch " + std::to_string(x.batch) + ": " + f("%.1f decode tok/s", x.decode_tokens_per_s) +
                                   ", TPOT p50 " + ms3(x.tpot_s.p50) + " ms",
                          .data = data});
    // The bound as a rate: a decode step at the bound makes `batch` tokens.
    if (x.bound_step_s > 0)
      bound.points.push_back({.x = double(x.batch), .y = double(x.batch) / x.bound_step_s,
                              .title = "batch " + std::to_string(x.batch) + ": bound " +
                                       f("%.1f tok/s", double(x.batch) / x.bound_step_s) + " (" +
                                       (x.bound.empty() ? std::string("memory") : x.bound) + ", " +
                                       ms3(x.bound_step_s) + " ms a step)",
                              .data = data});
  }
  std::vector<Series> s{tok};
  if (!bound.points.empty()) s.push_back(bound);
  return s;
}

std::vector<Series> serve_series(const BenchServeReport& r, bool tpot) {
  const char* what = tpot ? "TPOT" : "TTFT";
  Series p50 = series(std::string(what) + " p50", tpot ? "#1f77b4" : "#2ca02c", "point", false, false);
  Series p99 = series(std::string(what) + " p99", tpot ? "#d62728" : "#ff7f0e", "point", true, false);
  for (const auto& x : r.runs) {
    const Percentiles& p = tpot ? x.tpot_s : x.ttft_s;
    const std::string base = load(x) + ": " + f("%.1f out tok/s", x.output_throughput) + ", " + what;
    const std::string data = std::string("data-series=\"") + (tpot ? "tpot" : "ttft");
    p50.points.push_back({.x = x.output_throughput, .y = p.p50 * 1e3, .title = base + " p50 " + ms3(p.p50) + " ms",
                          .data = data + "-p50\""});
    p99.points.push_back({.x = x.output_throughput, .y = p.p99 * 1e3, .title = base + " p99 " + ms3(p.p99) + " ms",
                          .data = data + "-p99\""});
  }
  return {p50, p99};
}

bool drawn(const Point& p) { return plottable(p.x) && plottable(p.y); }

}  // namespace

int placed_runs(const BenchGenerateReport& r) {
  const auto s = generate_series(r);
  return int(std::count_if(s[0].points.begin(), s[0].points.end(), [](const Point& p) { return drawn(p) && p.x >= 1; }));
}

int placed_runs(const BenchServeReport& r) {
  const auto s = serve_series(r, true);
  return int(std::count_if(s[0].points.begin(), s[0].points.end(), drawn));
}

void write_generate_markdown(std::ostream& os, const std::string& source, const BenchGenerateReport& r) {
  os << "### Bench generate: " << printable(r.model) << " on " << printable(r.device.empty() ? "an unrecorded device" : r.device)
     << "\n\n";
  os << "From " << md_code(source) << ": aipe " << printable(r.aipe_version) << " (" << printable(r.git_revision) << "), "
     << printable(r.timestamp) << "; " << md_code(r.command) << ".\n\n";
  os << "Model: " << printable(model_line(r)) << ". Ceilings: " << printable(ceilings_line(r)) << ". "
     << switches_line(r) << ".\n\n";
  markdown(os, generate_table(r));
  os << "\n";
}

void write_serve_markdown(std::ostream& os, const std::string& source, const BenchServeReport& r) {
  os << "### Bench serve: " << printable(r.model) << " at " << printable(r.url) << "\n\n";
  os << "From " << md_code(source) << ": aipe " << printable(r.aipe_version) << " (" << printable(r.git_revision) << "), "
     << printable(r.timestamp) << "; " << md_code(r.command) << ".\n\n";
  os << printable(workload_line(r)) << "; " << printable(slo_line(r)) << ".\n\n";
  markdown(os, serve_table(r));
  os << "\n";
}

void write_generate_side_by_side_markdown(std::ostream& os, const std::vector<NamedGenerate>& files) {
  for (const auto& [key, members] : groups(files)) {
    os << "### Side by side: " << printable(group_title(key)) << "\n\n";
    markdown(os, side_by_side(members));
    os << "\n";
  }
}

void write_generate_html(std::ostream& os, const std::string& source, const BenchGenerateReport& r) {
  os << "<section class=\"bench-generate\">\n<h2>" << html_esc(r.device.empty() ? "unknown device" : r.device) << " — "
     << html_esc(source) << "</h2>\n";
  os << "<p class=\"meta\">aipe bench generate: aipe " << html_esc(r.aipe_version) << " (" << html_esc(r.git_revision)
     << "), " << html_esc(r.timestamp) << ", <code>" << html_esc(r.command) << "</code></p>\n";
  os << "<p class=\"meta\">Model: " << html_esc(model_line(r)) << ". Ceilings: " << html_esc(ceilings_line(r)) << ". "
     << html_esc(switches_line(r)) << ".</p>\n";
  os << "<h3>Decode tokens/s against batch, with the roofline bound</h3>\n";
  xy_chart(os, "bench-generate-chart", "batch (log scale)", "decode tokens/s", generate_series(r), true);
  html(os, generate_table(r), "bench");
  os << "</section>\n";
}

void write_serve_html(std::ostream& os, const std::string& source, const BenchServeReport& r) {
  os << "<section class=\"bench-serve\">\n<h2>" << html_esc(r.model) << " — " << html_esc(source) << "</h2>\n";
  os << "<p class=\"meta\">aipe bench serve against " << html_esc(r.url) << ": aipe " << html_esc(r.aipe_version) << " ("
     << html_esc(r.git_revision) << "), " << html_esc(r.timestamp) << ", <code>" << html_esc(r.command) << "</code></p>\n";
  os << "<p class=\"meta\">" << html_esc(workload_line(r)) << "; " << html_esc(slo_line(r)) << ".</p>\n";
  os << "<h3>Latency against throughput (one point per load)</h3>\n";
  xy_chart(os, "bench-serve-tpot", "output tokens/s", "TPOT ms", serve_series(r, true), false);
  xy_chart(os, "bench-serve-ttft", "output tokens/s", "TTFT ms", serve_series(r, false), false);
  html(os, serve_table(r), "bench");
  os << "</section>\n";
}

void write_generate_side_by_side_html(std::ostream& os, const std::vector<NamedGenerate>& files) {
  for (const auto& [key, members] : groups(files)) {
    os << "<section class=\"bench-side-by-side\">\n<h2>Side by side: " << html_esc(group_title(key)) << "</h2>\n";
    html(os, side_by_side(members), "bench");
    os << "</section>\n";
  }
}

}  // namespace aipe::profile
