// aipe profile PATTERN: the harness's own timing, then each passed variant re-run once under Nsight
// Compute (clocks left alone, only the kernels inside the variant's NVTX range), its raw metrics
// reduced to a few numbers and shown beside the harness's.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "aipe/output_file.hpp"
#include "aipe/profile/ncu.hpp"
#include "aipe/profile/process.hpp"
#include "aipe/report.hpp"
#include "app.hpp"
#include "command.hpp"

namespace aipe::cli {
namespace {

namespace fs = std::filesystem;
using namespace aipe::profile;

constexpr const char* kRange = "aipe_profile";

struct ProfileArgs : Selection {
  std::string metrics = "default", json, raw_dir;
};

std::string cell(const char* fmt, double v) {
  if (!std::isfinite(v)) return "-";
  char b[64];
  std::snprintf(b, sizeof b, fmt, v);
  return b;
}

std::string tail_of(const std::string& path, std::size_t lines) {
  std::ifstream f(path);
  std::vector<std::string> all;
  for (std::string l; std::getline(f, l);) all.push_back(l);
  std::string s;
  for (std::size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i) s += "    " + all[i] + "\n";
  return s;
}

void print_table(std::ostream& os, const RunReport& rep, const std::vector<std::pair<const Result*, NcuSummary>>& rows,
                 const std::map<const Result*, std::string>& notes) {
  const std::vector<std::string> head = {"variant", "median", "GB/s", "ncu time", "DRAM GB/s", "ncu/harness", "DRAM %",
                                         "SM %", "occupancy", "tensor %", "L1 hit", "L2 hit", "L2 GB", "top stalls (cycles/issue)"};
  std::vector<std::vector<std::string>> body;
  std::string last_example;
  for (const auto& [r, s] : rows) {
    if (r->example != last_example) {
      body.push_back({"#" + r->example});
      last_example = r->example;
    }
    std::string stalls;
    for (const auto& [k, v] : s.stalls) stalls += (stalls.empty() ? "" : ", ") + k + " " + cell("%.1f", v);
    if (auto n = notes.find(r); n != notes.end()) stalls = n->second;
    const double ratio = r->gbps > 0 ? s.dram_gbps / r->gbps : NAN;
    body.push_back({r->variant, r->timed ? format_time_ms(r->median_ms) : "-", r->bytes > 0 ? format_rate(r->gbps) : "-",
                    std::isfinite(s.duration_ns) ? format_time_ms(s.duration_ns / 1e6) : "-", cell("%.1f", s.dram_gbps),
                    cell("%.3f", ratio), cell("%.1f", s.dram_pct), cell("%.1f", s.sm_pct), cell("%.1f%%", s.occupancy_pct),
                    cell("%.1f", s.tensor_pct), cell("%.1f%%", s.l1_hit_pct), cell("%.1f%%", s.l2_hit_pct), cell("%.2f", s.l2_bytes / 1e9), stalls});
  }
  std::vector<std::size_t> w(head.size());
  for (std::size_t c = 0; c < head.size(); ++c) w[c] = head[c].size();
  auto width = [](const std::string& s) {
    std::size_t n = 0;
    for (unsigned char ch : s) n += (ch & 0xC0) != 0x80;
    return n;
  };
  for (const auto& row : body)
    if (row.size() == head.size())
      for (std::size_t c = 0; c + 1 < row.size(); ++c) w[c] = std::max(w[c], width(row[c]));
  auto line = [&](const std::vector<std::string>& row) {
    std::string s = "  ";
    for (std::size_t c = 0; c < row.size(); ++c) {
      const std::size_t pad = c + 1 < row.size() ? w[c] - std::min(w[c], width(row[c])) : 0;
      s += c == 0 ? row[c] + std::string(pad, ' ') : std::string(pad, ' ') + row[c];
      if (c + 1 < row.size()) s += "  ";
    }
    os << s << "\n";
  };
  if (rep.device) os << rep.device->name << ": harness timing (median, work-model GB/s) beside one ncu-profiled launch\n";
  for (const auto& row : body) {
    if (row.size() == 1) {
      os << "\n" << row[0].substr(1) << "\n";
      line(head);
    } else {
      line(row);
    }
  }
  os << "\nncu/harness: ncu's measured DRAM GB/s (bytes read + written / kernel time) over the harness's work-model GB/s."
        "\nL2 GB: bytes through L2 (the part that crossed between L2 partitions is ncu_l2_fabric_bytes in the JSON).\n";
}

int cmd_profile(const ProfileArgs& a, std::ostream& out, std::ostream& err) {
  if (a.metrics != "default" && a.metrics != "full")
    throw UsageError("--metrics must be 'default' or 'full', not '" + a.metrics + "'");
  check_selection(a);
  check_output(a.json);
  if (!a.raw_dir.empty() && fs::exists(a.raw_dir) && !fs::is_directory(a.raw_dir))
    throw UsageError("--raw-dir '" + a.raw_dir + "' exists and is not a folder");
  std::string searched;
  const auto ncu = find_ncu(&searched);
  if (!ncu) {
    err << "aipe profile: Nsight Compute (ncu) not found; looked in " << searched
        << ".\nInstall Nsight Compute (it ships with the CUDA toolkit) or put ncu on PATH; 'aipe trace' needs only CUPTI.\n";
    return kToolMissing;
  }
  char tmpl[] = "/tmp/aipe-profile-XXXXXX";
  if (!::mkdtemp(tmpl)) throw std::runtime_error("cannot create a temporary directory");
  const fs::path tmp = tmpl;
  if (!a.raw_dir.empty()) {
    std::error_code ec;
    fs::create_directories(a.raw_dir, ec);
    if (ec) throw UsageError("--raw-dir '" + a.raw_dir + "' cannot be created: " + ec.message());
  }

  // 1. The harness: verified and timed as `aipe run` would.
  std::vector<std::string> args = run_args(a);
  const std::string harness_json = (tmp / "harness.json").string();
  args.insert(args.end(), {"--json", harness_json});
  std::ostringstream harness_table;
  const int hrc = run(args, harness_table, err);
  if (hrc == kUsage || hrc == kNoGpu) return hrc;
  std::ifstream hj(harness_json);
  if (!hj) throw std::runtime_error("the harness run wrote no results (" + harness_json + ")");
  RunReport rep = read_json(hj);
  std::string cmd = "aipe profile";
  for (const auto& p : a.patterns) cmd += " " + p;
  rep.command = cmd;

  // 2. Each passed variant once under ncu, in a process of its own (so every kernel ncu reports
  //    belongs to that variant), at exactly the harness's sizes and seed.
  std::vector<std::pair<const Result*, NcuSummary>> rows;
  std::map<const Result*, std::string> notes;
  std::size_t n = 0, i = 0;
  for (const auto& r : rep.results) n += r.status == Status::passed;
  bool ncu_failed = false;
  // A100 and H100 split their L2 in two partitions joined by a fabric: count what crosses it.
  const bool fabric = rep.device && rep.device->cc_minor == 0 && (rep.device->cc_major == 8 || rep.device->cc_major == 9);
  for (Result& r : rep.results) {
    if (r.status != Status::passed) continue;
    ++i;
    if (!a.no_progress) err << "[" << i << "/" << n << "] ncu " << r.example << " " << r.variant << "\n" << std::flush;
    std::string stem = r.example + "__" + r.variant;
    for (char& c : stem)
      if (c == '/') c = '_';
    const std::string csv = (tmp / (stem + ".csv")).string(), log = (tmp / (stem + ".log")).string();
    std::vector<std::string> argv = {*ncu};
    for (auto& x : ncu_args(a.metrics, kRange, csv, fabric)) argv.push_back(x);
    argv.insert(argv.end(), {self_exe(), "run", r.example, "--variant", r.variant, "--seed", std::to_string(a.seed),
                             "--device", std::to_string(a.device), "--profile-launches", "1", "--nvtx-range", kRange,
                             "--no-progress"});
    for (const auto& [k, v] : r.sizes) argv.insert(argv.end(), {"--size", k + "=" + std::to_string(v)});
    for (const auto& [k, v] : r.choices) argv.insert(argv.end(), {"--size", k + "=" + v});
    std::string why;
    const int rc = run_process(argv, log, &why);
    NcuSummary s;
    if (rc != 0) {
      ncu_failed = true;
      notes[&r] = "ncu failed (exit " + std::to_string(rc) + ")";
      err << "aipe profile: ncu on " << r.example << " " << r.variant << " exited with " << rc << (why.empty() ? "" : ": " + why)
          << "; its last lines:\n" << tail_of(log, 8) << tail_of(csv, 4);
    } else {
      try {
        s = summarize(parse_ncu_csv_file(csv));
        add_metrics(s, r.metrics);
        if (r.bytes > 0 && std::isfinite(s.dram_bytes)) r.metrics["ncu_dram_bytes_vs_model"] = s.dram_bytes / r.bytes;
        if (s.kernels == 0) notes[&r] = "no kernel in the range (copy engine or host work)";
      } catch (const NcuParseError& e) {
        ncu_failed = true;
        notes[&r] = "ncu output unreadable";
        err << "aipe profile: " << e.what() << "\n";
      }
    }
    if (!a.raw_dir.empty() && fs::exists(csv)) {
      std::ifstream in(csv, std::ios::binary);
      // An unopened stream reads as empty: without this check --raw-dir would keep an empty CSV.
      if (!in) throw std::runtime_error("cannot read ncu's CSV '" + csv + "' to keep it in --raw-dir");
      std::ostringstream content;
      content << in.rdbuf();
      write_file((fs::path(a.raw_dir) / (stem + ".csv")).string(), content.str());
    }
    rows.emplace_back(&r, s);
  }
  print_table(out, rep, rows, notes);
  std::ostringstream js;
  write_json(js, rep);
  emit(a.json, js.str(), out);
  std::error_code ec;
  fs::remove_all(tmp, ec);
  return hrc != kOk || ncu_failed ? kFailed : kOk;
}

CLI::App* add_profile(CLI::App& app, Action& action) {
  auto* c = app.add_subcommand("profile", "time, then re-run each variant once under Nsight Compute (ncu)");
  auto a = std::make_shared<ProfileArgs>();
  add_selection_options(c, *a, "profile");
  c->add_option("--metrics", a->metrics, "default (a few sections, fast) or full (ncu --set full)");
  c->add_option("--json", a->json, "write the results, with the ncu numbers as ncu_* metrics, as JSON to FILE");
  c->add_option("--raw-dir", a->raw_dir, "keep ncu's raw CSV of each variant in DIR");
  action = [a](std::ostream& out, std::ostream& err) { return cmd_profile(*a, out, err); };
  return c;
}

AIPE_CLI_COMMAND(50, add_profile);

}  // namespace
}  // namespace aipe::cli
