// aipe compare OLD.json NEW.json: a noise-aware performance gate (exit 1 on a regression).
#include <fstream>
#include <memory>

#include "aipe/profile/compare.hpp"
#include "aipe/report.hpp"
#include "app.hpp"
#include "command.hpp"

namespace aipe::cli {
namespace {

using namespace aipe::profile;

struct CompareArgs {
  std::string old_path, new_path;
  CompareOptions opts;
};

RunReport read_one(const std::string& p) {
  std::ifstream f(p);
  if (!f) throw UsageError("cannot read '" + p + "'");
  try {
    return read_json(f);
  } catch (const std::exception& e) {  // every reader error is bad input: exit 2, with the file named
    throw UsageError(p + ": " + e.what());
  }
}

int cmd_compare(const CompareArgs& a, std::ostream& out, std::ostream& err) {
  const RunReport o = read_one(a.old_path), n = read_one(a.new_path);
  const Comparison c = compare(o, n, a.opts);
  write_comparison(out, c, a.opts);
  if (c.regressions() > 0) {
    err << "aipe compare: " << c.regressions() << " regression(s)\n";
    return kFailed;
  }
  return kOk;
}

CLI::App* add_compare(CLI::App& app, Action& action) {
  auto* c = app.add_subcommand("compare", "compare two results files; exit 1 on a regression (a CI gate)");
  auto a = std::make_shared<CompareArgs>();
  c->add_option("old", a->old_path, "baseline results (aipe run --json)")->required();
  c->add_option("new", a->new_path, "new results")->required();
  c->add_option("--threshold", a->opts.threshold_pct, "smallest change that counts, percent (default 5)")
      ->check(non_negative_number());
  c->add_option("--noise-factor", a->opts.noise_factor,
                "a change must also exceed this many combined noise standard deviations (default 2)")
      ->check(non_negative_number());
  action = [a](std::ostream& out, std::ostream& err) { return cmd_compare(*a, out, err); };
  return c;
}

AIPE_CLI_COMMAND(80, add_compare);

}  // namespace
}  // namespace aipe::cli
