// `aipe report` on `aipe bench generate` and `aipe bench serve` files: the same tables in Markdown and HTML,
// and for the page an inline-SVG chart per file (generate: decode tokens/s against batch, the roofline
// bound's tokens/s beside each point; serve: TPOT and TTFT p50/p99 against output tokens/s, one point per
// rate). Numbers are the file's, rounded: times in ms (TTFT 2 decimals, TPOT/ITL/bound 3), tokens/s 1
// decimal (the bound's: batch / bound step time), requests/s 2, % of bound 1.
#pragma once
#include <ostream>
#include <string>
#include <vector>

#include "aipe/bench_report.hpp"

namespace aipe::profile {

struct NamedGenerate {
  std::string source;
  const BenchGenerateReport* report;
};

void write_generate_markdown(std::ostream& os, const std::string& source, const BenchGenerateReport& r);
void write_serve_markdown(std::ostream& os, const std::string& source, const BenchServeReport& r);
// Generate files of one model, device and input/output length, batch by batch beside each other (e.g. with
// and without PDL); nothing unless two or more files share them.
void write_generate_side_by_side_markdown(std::ostream& os, const std::vector<NamedGenerate>& files);

void write_generate_html(std::ostream& os, const std::string& source, const BenchGenerateReport& r);
void write_serve_html(std::ostream& os, const std::string& source, const BenchServeReport& r);
void write_generate_side_by_side_html(std::ostream& os, const std::vector<NamedGenerate>& files);

// How many runs the page's chart places (one point per run, per series for serve).
int placed_runs(const BenchGenerateReport& r);
int placed_runs(const BenchServeReport& r);

}  // namespace aipe::profile
