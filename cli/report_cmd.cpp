// aipe report RESULTS.json...: an HTML page (roofline, speedup bars, table) and/or Markdown.
#include <algorithm>
#include <fstream>
#include <memory>

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
      v.push_back({p, read_json(f)});
    } catch (const std::runtime_error& e) {
      throw UsageError(p + ": " + e.what());
    }
  }
  return v;
}

int cmd_report(const ReportArgs& a, std::ostream& out, std::ostream&) {
  auto reports = read_reports(a.inputs);
  if (!a.examples.empty()) {
    for (auto& r : reports)
      std::erase_if(r.report.results, [&](const Result& x) {
        return std::none_of(a.examples.begin(), a.examples.end(), [&](const std::string& p) { return id_matches(p, x.example); });
      });
  }
  auto open = [](const std::string& p) {
    auto f = std::make_unique<std::ofstream>(p);
    if (!*f) throw UsageError("cannot write '" + p + "'");
    return f;
  };
  if (!a.html.empty()) {
    if (a.html == "-") write_html(out, reports);
    else write_html(*open(a.html), reports);
  }
  if (!a.markdown.empty()) {
    if (a.markdown == "-") write_report_markdown(out, reports, a.summary);
    else write_report_markdown(*open(a.markdown), reports, a.summary);
  }
  if (a.html.empty() && a.markdown.empty()) write_report_markdown(out, reports, true);
  for (const auto& r : reports)
    if (a.html.size() && a.html != "-")
      out << r.source << ": " << placed_variants(r.report) << " variants placed on the charts\n";
  return kOk;
}

CLI::App* add_report(CLI::App& app, Action& action) {
  auto* c = app.add_subcommand("report", "render results JSON as a self-contained HTML page and/or Markdown");
  auto a = std::make_shared<ReportArgs>();
  c->add_option("results", a->inputs, "results files written by 'aipe run --json'")->required();
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
