// `aipe peak`: measure the ceilings, print them with their methods, cache them per GPU UUID so that
// `aipe run` reports "% of measured peak" beside "% of spec".
#include <cuda_runtime_api.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "aipe/ceilings.hpp"
#include "aipe/check.hpp"
#include "aipe/peak.hpp"
#include "app.hpp"
#include "command.hpp"

namespace aipe::cli {

namespace {

struct PeakArgs {
  bool quick = false, no_cache = false, no_progress = false;
  std::string json;
  int device = 0;
  std::vector<std::string> groups;
};

int cmd_peak(const PeakArgs& a, std::ostream& out, std::ostream& err) {
  for (const auto& g : a.groups)
    if (!peak::valid_group(g)) {
      std::string all;
      for (const auto& x : peak::groups()) all += (all.empty() ? "" : ", ") + x;
      throw UsageError("unknown group '" + g + "'; groups: " + all);
    }
  check_output(a.json);
  if (auto why = gpu_unavailable_reason()) {
    err << "aipe: " << *why << "\n";
    return kNoGpu;
  }
  int n = 0;
  AIPE_CUDA(cudaGetDeviceCount(&n));
  if (a.device >= n) throw UsageError("--device " + std::to_string(a.device) + ": only " + std::to_string(n) + " GPU(s)");

  peak::Options o;
  o.quick = a.quick;
  o.device = a.device;
  o.groups = a.groups;
  if (!a.no_progress) o.progress = [&err](const std::string& s) { err << s << "\n" << std::flush; };
  peak::Report rep = peak::run_peak(o);
  rep.command = command_line();
  peak::print_report(out, rep);

  if (!a.no_cache) {
    std::optional<SpecPeaks> prev;
    try {
      prev = load_measured_peaks(rep.device.uuid);
    } catch (const std::exception&) {
      prev.reset();  // a malformed cache is replaced
    }
    const SpecPeaks m = peak::measured_peaks(rep, prev ? &*prev : nullptr);
    save_measured_peaks(rep.device.uuid, m, rep.command + " at " + rep.timestamp);
    out << "Cached in " << peak_cache_path(rep.device.uuid) << " (aipe run reports % of these).\n";
  }
  const nlohmann::json j = rep;
  emit(a.json, j.dump(2) + "\n", out);
  out << "aipe peak took " << static_cast<int>(rep.seconds + 0.5) << " s\n";
  return kOk;
}

CLI::App* add_peak(CLI::App& app, Action& action) {
  auto* c = app.add_subcommand("peak", "measure the GPU's ceilings (DRAM, caches, latency, compute, tensor cores, links)");
  auto a = std::make_shared<PeakArgs>();
  c->add_flag("--quick", a->quick, "smaller buffers, fewer configurations and shapes (under a minute)");
  c->add_option("--json", a->json, "also write the results as JSON to FILE ('-' for stdout)");
  c->add_option("--device", a->device, "GPU ordinal")->check(non_negative_integer(kMaxDevice));
  c->add_option("--only", a->groups, "only these groups: dram, cache, latency, compute, tensor, host, p2p, sweep (repeatable)");
  c->add_flag("--no-cache", a->no_cache, "do not update the cached measured peaks");
  c->add_flag("--no-progress", a->no_progress, "no progress lines on stderr");
  action = [a](std::ostream& out, std::ostream& err) { return cmd_peak(*a, out, err); };
  return c;
}

AIPE_CLI_COMMAND(40, add_peak);

}  // namespace

}  // namespace aipe::cli
