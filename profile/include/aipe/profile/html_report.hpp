// `aipe report`: results rendered for people. A self-contained HTML page (inline SVG and CSS, no
// external assets, no script): a roofline per report (ceilings measured by `aipe peak` when the run
// had them, else the spec sheet's; one point per timed variant at its arithmetic intensity; rungs
// that do no arithmetic are placed against the bandwidth roof), per-example speedup bars and the
// full table. And a Markdown summary for docs (README's results block is generated with it).
#pragma once
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "aipe/bench_report.hpp"
#include "aipe/report.hpp"

namespace aipe::profile {

struct NamedReport {
  std::string source;  // file it was read from (shown on the page)
  RunReport report;
  // A file of `aipe bench generate` or `aipe bench serve` instead (then `report` is empty): rendered in its
  // own section (profile/bench_report.hpp).
  std::optional<BenchGenerateReport> generate;
  std::optional<BenchServeReport> serve;
};

// A file of any of the three kinds, read into a NamedReport.
NamedReport named_report(std::string source, AnyReport r);

void write_html(std::ostream& os, const std::vector<NamedReport>& reports);

// One row per example: its best own rung, the library rung, rates and ratios; then (unless
// summary_only) the per-variant tables of every report.
void write_report_markdown(std::ostream& os, const std::vector<NamedReport>& reports, bool summary_only);

// How many variants write_html places on a chart (timed, passed): what the tests count.
int placed_variants(const RunReport& r);

}  // namespace aipe::profile
