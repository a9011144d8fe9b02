#include "app.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "aipe/ceilings.hpp"
#include "aipe/check.hpp"
#include "aipe/device.hpp"
#include "aipe/output_file.hpp"
#include "aipe/printable.hpp"
#include "aipe/registry.hpp"
#include "aipe/report.hpp"
#include "aipe/runner.hpp"
#include "aipe/sysinfo.hpp"
#include "aipe/units.hpp"
#include "aipe/version.hpp"
#include "command.hpp"
#include "info_cmd.hpp"

namespace aipe::cli {

namespace {

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

std::vector<const RegistryEntry*> select(const std::vector<std::string>& patterns) {
  const Registry& reg = Registry::instance();
  if (patterns.empty()) {
    std::vector<const RegistryEntry*> all;
    for (const auto& e : reg.entries()) all.push_back(&e);
    return all;
  }
  std::vector<const RegistryEntry*> out;
  std::set<std::string> seen;
  for (const auto& p : patterns) {
    const auto m = reg.match(p);
    if (m.empty()) {
      const auto s = reg.suggest(p);
      throw UsageError("unknown example '" + p + "'" + (s.empty() ? "" : "; did you mean: " + join(s, ", ") + "?") +
                       " ('aipe list' shows all)");
    }
    for (const auto* e : m)
      if (seen.insert(e->info.id).second) out.push_back(e);
  }
  std::sort(out.begin(), out.end(), [](auto* a, auto* b) { return a->info.id < b->info.id; });
  return out;
}

int cmd_list(const std::vector<std::string>& patterns, bool variants, std::ostream& out) {
  const auto sel = select(patterns);
  for (const auto* e : sel) {
    char b[160];
    std::snprintf(b, sizeof b, "%-34s %s", e->info.id.c_str(), e->info.title.c_str());
    out << b << "\n";
    if (variants) {
      for (std::size_t i = 0; i < e->variant_names.size(); ++i) {
        std::snprintf(b, sizeof b, "    %2zu %-22s ", i + 1, e->variant_names[i].c_str());
        out << b << e->variant_summaries[i] << "\n";
      }
      std::string axes;
      for (const auto& a : e->info.axes) {
        axes += (axes.empty() ? "" : ", ") + a.name + "=";
        if (a.is_choice())
          axes += a.choices[static_cast<std::size_t>(a.def)] + " (" + a.help + "; one of " + a.choice_list() + ")";
        else
          axes += std::to_string(a.def) + " (" + a.help + ")";
      }
      if (!axes.empty()) out << "       sizes: " << axes << "\n";
    }
  }
  if (!variants) out << sel.size() << " examples ('aipe list -v' shows their variants)\n";
  return kOk;
}

int cmd_info(const std::string& json_path, std::ostream& out, std::ostream& err) {
  check_output(json_path);
  if (auto why = gpu_unavailable_reason()) {
    err << "aipe: " << *why << "\n";
    return kNoGpu;
  }
  int n = 0;
  AIPE_CUDA(cudaGetDeviceCount(&n));
  std::vector<DeviceInfo> devs;
  for (int i = 0; i < n; ++i) devs.push_back(query_device(i));
  const SystemInfo sys = query_system(devs);
  // One element per GPU: its properties, the spec peaks they imply, NVML/sysfs facts, its row of the
  // peer-access matrix and, when `aipe peak` ran, the measured peaks.
  nlohmann::json j = nlohmann::json::array();
  for (int i = 0; i < n; ++i) {
    const DeviceInfo& d = devs[i];
    const SpecPeaks p = derive_spec_peaks(d);
    if (i) out << "\n";
    print_device(out, d, p);
    print_gpu_system(out, sys.gpus[i]);
    std::optional<SpecPeaks> measured;
    std::string source, measured_why;
    try {
      measured = load_measured_peaks(d.uuid, &source);
      if (!measured) measured_why = "not measured yet: run 'aipe peak'";
    } catch (const std::exception& e) {
      measured_why = e.what();
    }
    print_measured(out, measured, source, measured_why);
    nlohmann::json e = {{"device", d}, {"spec", p}, {"system", sys.gpus[i]}, {"peer_access", sys.peer[i]}};
    if (sys.nvml_driver_version) e["nvml_driver_version"] = *sys.nvml_driver_version;
    else e["nvml_driver_version"] = nullptr, e["nvml_driver_version_na"] = sys.nvml_driver_version.why;
    if (measured) e["measured"] = *measured, e["measured_source"] = source;
    else e["measured"] = nullptr, e["measured_na"] = measured_why;
    j.push_back(std::move(e));
  }
  out << "\n";
  print_peer_matrix(out, sys);
  emit(json_path, j.dump(2) + "\n", out);
  return kOk;
}

// Variants and sizes of a selection, checked the way `aipe run` needs them (into `o`); `profile` and
// `trace` check the same before they look for their tools.
void check_run_selection(const std::vector<const RegistryEntry*>& sel, const std::vector<std::string>& variants,
                         const std::vector<std::string>& sizes, RunOptions& o) {
  // Variants: each name must exist in the selection.
  for (const auto& v : variants) {
    bool found = false;
    std::set<std::string> all;
    for (const auto* e : sel) {
      for (const auto& n : e->variant_names) all.insert(n);
      found = found || std::count(e->variant_names.begin(), e->variant_names.end(), v);
    }
    if (!found) {
      const auto names = nearest(v, {all.begin(), all.end()}, 6);
      throw UsageError("unknown variant '" + v + "' for the selected examples; nearest: " + join(names, ", "));
    }
  }
  o.variants = variants;

  // Sizes: NAME=VALUE, NAME an axis of at least one selected example, VALUE in its range or, for a
  // choice axis (mask=causal), one of its choices.
  for (const auto& s : sizes) {
    if (const auto eq = s.find('='); eq != std::string::npos && eq > 0) {
      const std::string name = s.substr(0, eq);
      bool choice = false;
      for (const auto* e : sel)
        for (const auto& ax : e->info.axes) choice = choice || (ax.name == name && ax.is_choice());
      if (choice) {
        o.choices[name] = s.substr(eq + 1);
        continue;
      }
    }
    std::string why;
    const auto kv = parse_size_assignment(s, &why);
    if (!kv) throw UsageError("bad --size: " + why);
    std::set<std::string> axes;
    for (const auto* e : sel)
      for (const auto& ax : e->info.axes) axes.insert(ax.name);
    if (!axes.count(kv->first))
      throw UsageError("no selected example has a size named '" + kv->first + "'; sizes: " +
                       join(std::vector<std::string>(axes.begin(), axes.end()), ", "));
    o.sizes[kv->first] = kv->second;
  }
  for (const auto* e : sel) {
    try {
      resolve_sizes(e->info, o);
      resolve_choices(e->info, o);
    } catch (const BadInput& ex) {
      throw UsageError(std::string("bad size: ") + ex.what());
    }
  }
}

struct RunArgs {
  std::vector<std::string> patterns, variants, sizes;
  std::string json, csv, markdown;
  bool quick = false, small = false, verify_only = false, no_progress = false;
  double min_time = -1, max_noise = -1, budget = -1;
  std::uint64_t seed = 0x5eed;
  int device = 0;
  int profile_launches = 0;  // hidden: what `aipe profile` runs under ncu (see RunOptions)
  std::string nvtx_range;
};

int cmd_run(const RunArgs& a, std::ostream& out, std::ostream& err) {
  if (a.quick && a.small) throw UsageError("--quick and --small are exclusive");
  const auto sel = select(a.patterns);

  RunOptions o;
  o.preset = a.small ? SizePreset::small : a.quick ? SizePreset::quick : SizePreset::def;
  o.stop = stop_criteria_for(o.preset);
  if (a.min_time >= 0) o.stop.min_time_s = a.min_time;
  if (a.max_noise >= 0) o.stop.max_noise = a.max_noise;
  if (a.budget >= 0) o.stop.budget_s = std::max(a.budget, o.stop.min_time_s);
  o.seed = a.seed;
  o.device = a.device;
  o.verify_only = a.verify_only;
  o.profile_launches = a.profile_launches;
  o.nvtx_range = a.nvtx_range;

  check_run_selection(sel, a.variants, a.sizes, o);
  for (const auto& p : {a.json, a.csv, a.markdown}) check_output(p);

  if (auto why = gpu_unavailable_reason()) {
    err << "aipe: " << *why << "\n"
        << "aipe run measures on a GPU; 'aipe list' works without one\n";
    return kNoGpu;
  }
  if (!a.no_progress) o.progress = [&err](const std::string& line) { err << line << "\n" << std::flush; };

  RunReport rep = run_examples(sel, o);
  rep.command = command_line();
  write_table(out, rep);
  auto text = [&rep](void (*w)(std::ostream&, const RunReport&)) {
    std::ostringstream s;
    w(s, rep);
    return s.str();
  };
  if (!a.json.empty()) emit(a.json, text(write_json), out);
  if (!a.csv.empty()) emit(a.csv, text(write_csv), out);
  if (!a.markdown.empty()) emit(a.markdown, text(write_markdown), out);
  if (rep.bad_input) return kUsage;
  return rep.failed() > 0 ? kFailed : kOk;
}

CLI::App* add_info(CLI::App& app, Action& action) {
  auto* c = app.add_subcommand("info", "describe the GPU(s) and the peaks their properties imply");
  auto path = std::make_shared<std::string>();
  c->add_option("--json", *path, "also write the report as JSON to FILE ('-' for stdout)");
  action = [path](std::ostream& out, std::ostream& err) { return cmd_info(*path, out, err); };
  return c;
}

CLI::App* add_list(CLI::App& app, Action& action) {
  auto* c = app.add_subcommand("list", "list examples (works without a GPU)");
  auto patterns = std::make_shared<std::vector<std::string>>();
  auto variants = std::make_shared<bool>(false);
  c->add_option("patterns", *patterns, "ids, chapter prefixes (ch07) or globs (*copy*)");
  c->add_flag("-v,--variants", *variants, "show each example's ladder and sizes");
  action = [=](std::ostream& out, std::ostream&) { return cmd_list(*patterns, *variants, out); };
  return c;
}

CLI::App* add_run(CLI::App& app, Action& action) {
  auto* runc = app.add_subcommand("run", "verify, then time, the variants of the selected examples");
  auto a = std::make_shared<RunArgs>();
  RunArgs& ra = *a;
  runc->add_option("patterns", ra.patterns, "ids, chapter prefixes (ch07) or globs; all when omitted");
  runc->add_option("--variant", ra.variants, "run only these variants (repeatable)");
  runc->add_option("--size", ra.sizes,
                   "override a size: NAME=VALUE, suffixes K/M/G = 2^10/2^20/2^30, or a choice axis's value "
                   "(mask=causal) (repeatable)");
  runc->add_option("--json", ra.json, "write results as JSON to FILE ('-' for stdout)");
  runc->add_option("--csv", ra.csv, "write results as CSV to FILE");
  runc->add_option("--markdown", ra.markdown, "write results as Markdown to FILE");
  runc->add_flag("--quick", ra.quick, "smaller sizes and shorter sampling");
  runc->add_flag("--small", ra.small, "the small, awkward test sizes (what the GPU tests use)");
  runc->add_flag("--verify-only", ra.verify_only, "verify every variant, time none");
  runc->add_option("--min-time", ra.min_time, "seconds of sampling before the noise test may stop")->check(non_negative_number());
  runc->add_option("--max-noise", ra.max_noise, "relative noise under which sampling stops (0.01 = 1%)")->check(non_negative_number());
  runc->add_option("--budget", ra.budget, "seconds of sampling per variant at most")->check(non_negative_number());
  runc->add_option("--seed", ra.seed, "seed of the random inputs")->check(non_negative_integer());
  runc->add_option("--device", ra.device, "GPU ordinal")->check(non_negative_integer(kMaxDevice));
  runc->add_flag("--no-progress", ra.no_progress, "no progress lines on stderr");
  // Hidden: used by `aipe profile` (under ncu) and `aipe trace`.
  runc->add_option("--profile-launches", ra.profile_launches, "launch each verified variant N times in NVTX ranges, time none")
      ->check(non_negative_integer(1000))
      ->group("");
  runc->add_option("--nvtx-range", ra.nvtx_range, "name of the NVTX range around profiled launches")->group("");
  action = [a](std::ostream& out, std::ostream& err) { return cmd_run(*a, out, err); };
  return runc;
}

AIPE_CLI_COMMAND(10, add_info);
AIPE_CLI_COMMAND(20, add_list);
AIPE_CLI_COMMAND(30, add_run);

std::string g_command_line = "aipe";

}  // namespace

void add_selection_options(CLI::App* c, Selection& s, const char* verb) {
  c->add_option("patterns", s.patterns, "ids, chapter prefixes (ch07) or globs")->required();
  c->add_option("--variant", s.variants, std::string(verb) + " only these variants (repeatable)");
  c->add_option("--size", s.sizes, "override a size: NAME=VALUE (repeatable)");
  c->add_flag("--quick", s.quick, "smaller sizes");
  c->add_flag("--small", s.small, "the small, awkward test sizes");
  c->add_option("--seed", s.seed, "seed of the random inputs")->check(non_negative_integer());
  c->add_option("--device", s.device, "GPU ordinal")->check(non_negative_integer(kMaxDevice));
  c->add_flag("--no-progress", s.no_progress, "no progress lines on stderr");
}

void check_selection(const Selection& s) {
  if (s.quick && s.small) throw UsageError("--quick and --small are exclusive");
  const auto sel = select(s.patterns);
  RunOptions o;
  o.preset = s.small ? SizePreset::small : s.quick ? SizePreset::quick : SizePreset::def;
  check_run_selection(sel, s.variants, s.sizes, o);
}

void check_output(const std::string& path, const std::vector<std::string>& inputs) {
  if (path.empty() || path == "-") return;
  check_output_path(path, inputs);
}

void emit(const std::string& path, const std::string& content, std::ostream& out) {
  if (path.empty()) return;
  if (path == "-") out << content;
  else write_file(path, content);
}

namespace {
std::string number_error(const std::string& s) {
  if (s.empty()) return "expected a number, got nothing";
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || *end != '\0' || std::isspace(static_cast<unsigned char>(s[0])))
    return "'" + printable(s) + "' is not a number";
  if (!std::isfinite(v)) return "'" + printable(s) + "' is not a finite number";
  if (v < 0) return "'" + printable(s) + "' is negative: expected a number >= 0";
  return "";
}

// One parse: the number it reads is the one compared with `max`.
std::string integer_error(const std::string& s, std::uint64_t max) {
  if (s.empty()) return "expected a number, got nothing";
  if (s[0] == '-') return "'" + printable(s) + "' is negative: expected an integer >= 0";
  std::uint64_t v = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (p != s.data() + s.size() || (ec != std::errc() && ec != std::errc::result_out_of_range))
    return "'" + printable(s) + "' is not an integer";
  if (ec == std::errc::result_out_of_range) return "'" + printable(s) + "' is too large (at most 18446744073709551615)";
  if (v > max) return "'" + s + "' is too large (at most " + std::to_string(max) + ")";
  return "";
}
}  // namespace

CLI::Validator non_negative_number() {
  return CLI::Validator([](std::string& s) { return number_error(s); }, "NUMBER >= 0");
}

CLI::Validator non_negative_integer(std::uint64_t max) {
  return CLI::Validator([max](std::string& s) { return integer_error(s, max); }, "INTEGER >= 0");
}

std::vector<std::string> run_args(const Selection& s) {
  std::vector<std::string> args = {"run"};
  args.insert(args.end(), s.patterns.begin(), s.patterns.end());
  for (const auto& v : s.variants) args.insert(args.end(), {"--variant", v});
  for (const auto& z : s.sizes) args.insert(args.end(), {"--size", z});
  if (s.quick) args.push_back("--quick");
  if (s.small) args.push_back("--small");
  if (s.no_progress) args.push_back("--no-progress");
  args.insert(args.end(), {"--seed", std::to_string(s.seed), "--device", std::to_string(s.device)});
  return args;
}

std::vector<CommandSpec>& commands() {
  static std::vector<CommandSpec> c;
  return c;
}

const std::string& command_line() { return g_command_line; }

int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  CLI::App app{"aipe: measure what a GPU really delivers, and ladders of kernels from naive to the hardware limit"};
  app.name("aipe");
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("aipe ") + version() + " (" + git_revision() + ", CUDA archs " +
                                        cuda_architectures() + ")");
  auto specs = commands();
  std::sort(specs.begin(), specs.end(), [](const CommandSpec& a, const CommandSpec& b) { return a.order < b.order; });
  std::vector<std::pair<CLI::App*, Action>> subs;
  for (const auto& spec : specs) {
    Action action;
    CLI::App* sub = spec.add(app, action);
    subs.emplace_back(sub, std::move(action));
  }

  // A first word that is no command: name it and the nearest (CLI11 would only say one is required).
  if (!args.empty() && !args[0].empty() && args[0][0] != '-') {
    std::vector<std::string> names;
    for (const auto& [sub, action] : subs) names.push_back(sub->get_name());
    if (std::find(names.begin(), names.end(), args[0]) == names.end()) {
      err << "aipe: unknown command '" << printable(args[0]) << "'";
      if (const auto near = nearest(args[0], names, 1, 3); !near.empty()) err << "; did you mean '" << near[0] << "'?";
      err << " (commands: " << join(names, ", ") << ")\n";
      return kUsage;
    }
  }

  std::vector<std::string> rev(args.rbegin(), args.rend());
  try {
    app.parse(rev);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e, out, err);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e, out, err);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e, out, err);
  } catch (const CLI::ParseError& e) {
    err << "aipe: " << e.what() << "\n(see 'aipe --help' or 'aipe SUBCOMMAND --help')\n";
    return kUsage;
  }

  g_command_line = "aipe";
  for (const auto& a : args) g_command_line += " " + a;
  try {
    for (auto& [sub, action] : subs)
      if (sub->parsed()) {
        const int rc = action(out, err);
        // What went to stdout must have arrived (`aipe list > /dev/full` is a failure, not a success).
        out.flush();
        if (!out) {
          err << "aipe: cannot write the output (standard output: " << std::strerror(errno ? errno : EIO) << ")\n";
          return rc == kOk ? kFailed : rc;
        }
        return rc;
      }
  } catch (const UsageError& e) {
    err << "aipe: " << e.what() << "\n";
    return kUsage;
  } catch (const BadInput& e) {
    err << "aipe: " << e.what() << "\n";
    return kUsage;
  } catch (const CudaError& e) {
    err << "aipe: CUDA error: " << e.what() << "\n";
    return kFailed;
  } catch (const WriteError& e) {
    err << "aipe: " << e.what() << "\n";
    return kFailed;
  } catch (const std::exception& e) {
    err << "aipe: " << e.what() << "\n";
    return kFailed;
  }
  return kUsage;
}

}  // namespace aipe::cli
