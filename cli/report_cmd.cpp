// aipe report RESULTS.json...: an HTML page (roofline, speedup bars, table) and/or Markdown, of `aipe run`
// reports and of `aipe bench generate` / `aipe bench serve` files (each in its own section).
#include <algorithm>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include "aipe/printable.hpp"
#include "aipe/bench_report.hpp"
#include "aipe/profile/bench_report.hpp"
#include "aipe/profile/html_report.hpp"
#include "aipe/registry.hpp"
#include "aipe/report.hpp"
#include "app.hpp"
#include "command.hpp"

namespace aipe::cli {
namespace {

using namespace aipe::profile;

struct ReportArgs {
  std::vector<std::string> inputs, examples;
  std::string html, markdown;
  bool summary = false;
};

std::vector<NamedReport> read_reports(const std::vector<std::string>& paths) {
  std::vector<NamedReport> v;
  for (const auto& p : paths) {
    std::ifstream f(p);
    if (!f) throw UsageError("cannot read '" + p + "'");
    try {
      v.push_back(named_report(p, read_any_report(f)));
    } catch (const std::exception& e) {  // every reader error is bad input: exit 2, with the file named
      throw UsageError(p + ": " + e.what());
    }
  }
  return v;
}

// Each --examples pattern must match a result of some input: a filter that matches nothing is a typo,
// not an empty report.
void filter_examples(std::vector<NamedReport>& reports, const std::vector<std::string>& patterns) {
  if (patterns.empty()) return;
  // Bench files hold no examples: they are kept whole, and a filter with nothing else to act on is a mistake.
  if (std::none_of(reports.begin(), reports.end(), [](const NamedReport& r) { return !r.generate && !r.serve; }))
    throw UsageError("--examples selects examples of 'aipe run' reports, and " + printable(reports.front().source) +
                     " is an 'aipe bench " + (reports.front().generate ? "generate" : "serve") +
                     "' file (leave --examples out)");
  std::set<std::string> ids;
  for (const auto& r : reports)
    for (const auto& x : r.report.results) ids.insert(x.example);
  for (const auto& p : patterns) {
    if (std::any_of(ids.begin(), ids.end(), [&](const std::string& id) { return id_matches(p, id); })) continue;
    std::string names;
    for (const auto& n : nearest(p, {ids.begin(), ids.end()}, 3)) names += (names.empty() ? "" : ", ") + printable(n);
    throw UsageError("--examples '" + printable(p) + "' matches no result in the inputs" +
                     (names.empty() ? std::string("; they hold no results") : "; nearest: " + names));
  }
  for (auto& r : reports)
    std::erase_if(r.report.results, [&](const Result& x) {
      return std::none_of(patterns.begin(), patterns.end(), [&](const std::string& p) { return id_matches(p, x.example); });
    });
}

int cmd_report(const ReportArgs& a, std::ostream& out, std::ostream&) {
  // Outputs are checked before anything is read, and may not be one of the inputs.
  check_output(a.html, a.inputs);
  check_output(a.markdown, a.inputs);
  if (!a.html.empty() && a.html != "-" && a.html == a.markdown)
    throw UsageError("--html and --markdown name the same file '" + a.html + "'");
  auto reports = read_reports(a.inputs);
  filter_examples(reports, a.examples);
  if (!a.html.empty()) {
    std::ostringstream s;
    write_html(s, reports);
    emit(a.html, s.str(), out);
  }
  if (!a.markdown.empty()) {
    std::ostringstream s;
    write_report_markdown(s, reports, a.summary);
    emit(a.markdown, s.str(), out);
  }
  if (a.html.empty() && a.markdown.empty()) write_report_markdown(out, reports, true);
  for (const auto& r : reports) {
    if (a.html.empty() || a.html == "-") continue;
    if (r.generate) out << printable(r.source) << ": " << placed_runs(*r.generate) << " runs placed on the chart\n";
    else if (r.serve) out << printable(r.source) << ": " << placed_runs(*r.serve) << " runs placed on the charts\n";
    else out << printable(r.source) << ": " << placed_variants(r.report) << " variants placed on the charts\n";
  }
  return kOk;
}

CLI::App* add_report(CLI::App& app, Action& action) {
  auto* c = app.add_subcommand("report", "render results JSON as a self-contained HTML page and/or Markdown");
  auto a = std::make_shared<ReportArgs>();
  c->add_option("results", a->inputs, "results files written by 'aipe run --json', 'aipe bench generate --json' or 'aipe bench serve --json'")->required();
  c->add_option("--html", a->html, "write the HTML page (roofline, speedups, table) to FILE ('-' for stdout)");
  c->add_option("--markdown", a->markdown, "write Markdown to FILE ('-' for stdout)");
  c->add_option("--examples", a->examples, "only these examples: ids, chapter prefixes (ch07) or globs (repeatable)");
  c->add_flag("--summary", a->summary, "Markdown: one row per example only (what README's results block holds)");
  action = [a](std::ostream& out, std::ostream& err) { return cmd_report(*a, out, err); };
  return c;
}

AIPE_CLI_COMMAND(70, add_report);

}  // namespace
}  // namespace aipe::cli
