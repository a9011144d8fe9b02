// aipe trace PATTERN: a timeline of the selected variants (each verified, then launched a few times
// inside an NVTX range named after it), recorded in-process with CUPTI's activity API and written as
// Chrome trace-event JSON for Perfetto or chrome://tracing. Needs no Nsight Systems.
#include <memory>
#include <set>
#include <sstream>

#include "aipe/device.hpp"
#include "aipe/report.hpp"
#include "aipe/profile/cupti_tracer.hpp"
#include "aipe/profile/trace.hpp"
#include "app.hpp"
#include "command.hpp"

namespace aipe::cli {
namespace {

using namespace aipe::profile;

struct TraceArgs : Selection {
  std::string output = "trace.json";
  int launches = 3;
};

int cmd_trace(const TraceArgs& a, std::ostream& out, std::ostream& err) {
  check_selection(a);
  check_output(a.output);
  if (auto no = gpu_unavailable_reason()) {
    err << "aipe: " << *no << "\n";
    return kNoGpu;
  }
  std::string why;
  if (!CuptiTracer::locate(&why)) {
    err << "aipe trace: " << why << "\n";
    return kToolMissing;
  }
  CuptiTracer tracer;  // before the first CUDA or NVTX call of the run
  std::vector<std::string> args = run_args(a);
  args.insert(args.end(), {"--profile-launches", std::to_string(a.launches)});
  tracer.start();
  std::ostringstream table;
  const int rc = run(args, table, err);
  const auto acts = tracer.stop();
  if (rc == kUsage || rc == kNoGpu) return rc;
  out << table.str();

  TraceMeta meta;
  meta.command = "aipe trace";
  for (const auto& p : a.patterns) meta.command += " " + p;
  meta.dropped_records = tracer.dropped();
  if (!gpu_unavailable_reason()) meta.device_name = query_device(a.device).name;
  std::ostringstream f;
  write_chrome_trace(f, acts, meta);
  emit(a.output, f.str(), out);
  std::size_t kernels = 0, copies = 0, ranges = 0;
  std::set<std::uint32_t> streams;
  for (const auto& x : acts) {
    kernels += x.kind == Activity::Kind::kernel;
    copies += x.kind == Activity::Kind::memcpy || x.kind == Activity::Kind::memset;
    ranges += x.kind == Activity::Kind::range;
    if (x.kind != Activity::Kind::range) streams.insert(x.stream);
  }
  const auto overlap = max_cross_stream_kernel_overlap_ns(acts);
  out << "trace: " << kernels << " kernels, " << copies << " memcpy/memset, " << ranges << " NVTX ranges on "
      << streams.size() << " stream(s)";
  if (overlap > 0) out << "; kernels on different streams overlapped for up to " << format_time_ms(overlap / 1e6);
  out << "\nwrote " << a.output << " (open it in https://ui.perfetto.dev or chrome://tracing)\n";
  if (meta.dropped_records) err << "aipe trace: CUPTI dropped " << meta.dropped_records << " records\n";
  return rc;
}

CLI::App* add_trace(CLI::App& app, Action& action) {
  auto* c = app.add_subcommand("trace", "timeline of kernels, copies and NVTX ranges (CUPTI) as Chrome trace JSON");
  auto a = std::make_shared<TraceArgs>();
  add_selection_options(c, *a, "trace");
  c->add_option("-o,--output", a->output, "trace file to write (default trace.json)");
  c->add_option("--launches", a->launches, "launches of each variant after its verification (default 3)")
      ->check(CLI::Range(1, 1000));
  action = [a](std::ostream& out, std::ostream& err) { return cmd_trace(*a, out, err); };
  return c;
}

AIPE_CLI_COMMAND(60, add_trace);

}  // namespace
}  // namespace aipe::cli
