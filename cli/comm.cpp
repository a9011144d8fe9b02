// `aipe comm [COLLECTIVE...|all]`: the nccl-tests measurement on NCCL (comm/include/aipe/comm/bench.hpp): per
// collective and size, the exact check (#wrong), then the median time, algbw and busbw. One process driving
// every local GPU, or one process per GPU under mpirun, srun or torchrun-style variables (the launcher's
// environment decides; docs/comm.md). Only rank 0 prints and writes; every rank's times are gathered.
#include <cuda_runtime_api.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "aipe/check.hpp"
#include "aipe/comm/bench.hpp"
#include "aipe/comm/bootstrap.hpp"
#include "aipe/comm/communicator.hpp"
#include "aipe/comm/nccl_status.hpp"
#include "aipe/comm/rendezvous.hpp"
#include "aipe/comm/report.hpp"
#include "aipe/device.hpp"
#include "aipe/sysinfo.hpp"
#include "aipe/version.hpp"
#include "app.hpp"
#include "command.hpp"

namespace aipe::cli {
namespace {

using namespace aipe::comm;

struct CommArgs {
  std::vector<std::string> collectives{"all"};
  std::string min = "8", max = "128M";
  std::string factor, increment;
  std::string dtype = "float", op = "sum";
  bool inplace = false, graph = false, registered = false;
  int iters = 20, warmup = 5, check = 1, ngpus = 0;
  double timeout_s = 300;
  std::string json;
};

// Every flag's value checked before a GPU or NCCL is looked for: a typo is exit 2 with the valid choices.
BenchOptions parse_options(const CommArgs& a) {
  BenchOptions o;
  for (const auto& name : a.collectives) {
    if (name == "all") {
      for (const auto& c : collectives()) o.collectives.push_back(c.id);
      continue;
    }
    auto c = parse_collective(name);
    if (!c) {
      std::string all;
      for (const auto& x : collectives()) all += std::string(x.name) + ", ";
      throw UsageError("unknown collective '" + name + "'; collectives: " + all + "all");
    }
    o.collectives.push_back(*c);
  }
  std::string why;
  auto sweep = parse_sweep(a.min, a.max, a.factor.empty() ? std::nullopt : std::optional(a.factor),
                           a.increment.empty() ? std::nullopt : std::optional(a.increment), &why);
  if (!sweep) throw UsageError(why);
  o.sizes = sweep->sizes();
  auto t = parse_data_type(a.dtype);
  if (!t) {
    std::string all;
    for (const auto& x : data_types()) all += (all.empty() ? "" : ", ") + std::string(x.name);
    throw UsageError("--dtype '" + a.dtype + "' is not a type; types: " + all);
  }
  o.dtype = *t;
  auto op = parse_reduce_op(a.op);
  if (!op) throw UsageError("--op '" + a.op + "' is not a reduction; reductions: sum, prod, max, min, avg");
  o.op = *op;
  o.inplace = a.inplace, o.graph = a.graph, o.registered = a.registered;
  o.iters = a.iters, o.warmup = a.warmup, o.check = a.check != 0;
  o.timeout = std::chrono::milliseconds(static_cast<long long>(a.timeout_s * 1000));
  if (o.timeout.count() < 1) throw UsageError("--timeout: must be at least 0.001 s");
  return o;
}

std::vector<std::string> topology_lines(const std::vector<RankInfo>& ranks, const std::string& host) {
  std::vector<DeviceInfo> devices;
  for (const auto& r : ranks)
    if (r.host == host) devices.push_back(query_device(r.device));
  const SystemInfo sys = query_system(devices);
  std::vector<std::string> lines;
  for (const auto& g : sys.gpus) {
    std::string s = "GPU " + std::to_string(g.ordinal) + " NVLink: ";
    if (g.nvlink)
      s += std::to_string(g.nvlink->links_active) + " of " + std::to_string(g.nvlink->links_total) +
           " links active" + (g.nvlink->version ? ", NVLink " + std::to_string(g.nvlink->version) : "");
    else
      s += "n/a (" + g.nvlink.why + ")";
    lines.push_back(s);
  }
  std::ostringstream peer;
  print_peer_matrix(peer, sys);
  std::istringstream text(peer.str());
  for (std::string line; std::getline(text, line);) lines.push_back(line);
  return lines;
}

int cmd_comm(const CommArgs& a, std::ostream& out, std::ostream& err) {
  const BenchOptions o = parse_options(a);
  Bootstrap boot;
  try {
    boot = detect_bootstrap(process_environment(), {.master_addr = "", .master_port = 29500});
  } catch (const BootstrapError& e) {
    throw UsageError(std::string("launch environment: ") + e.what());
  }
  if (boot.launcher != Launcher::single_process && a.ngpus > 0)
    throw UsageError("-g/--ngpus is for one process driving several GPUs; under " +
                     std::string(launcher_name(boot.launcher)) + " each process drives GPU local_rank");
  const bool root = boot.rank == 0;
  if (root) check_output(a.json);
  const std::string tag = boot.world_size > 1 ? "aipe comm (rank " + std::to_string(boot.rank) + "): " : "aipe comm: ";
  if (auto no = gpu_unavailable_reason()) {
    err << "aipe: " << *no << "\n";
    return kNoGpu;
  }
  const NcclStatus nccl = nccl_status();
  if (!nccl.available) {
    err << tag << nccl.reason << "\n";
    return kToolMissing;
  }
  std::vector<std::string> notes;
  if (auto note = force_nvls_off(); !note.empty()) notes.push_back(note);
  if (root)
    for (const auto& n : notes) err << tag << n << "\n";

  std::vector<int> devices;
  if (a.ngpus > 0) {
    int visible = 0;
    AIPE_CUDA(cudaGetDeviceCount(&visible));
    if (a.ngpus > visible)
      throw UsageError("-g " + std::to_string(a.ngpus) + ": only " + std::to_string(visible) + " GPU(s) visible");
    for (int d = 0; d < a.ngpus; ++d) devices.push_back(d);
  }
  std::vector<BenchRow> rows;
  ReportHeader h;
  try {
    Bench bench(communicators_for(boot, devices, o.timeout), o.timeout);
    for (Collective c : o.collectives)
      if (auto why = inexact_reason(o.dtype, c, o.op, bench.world_size()); why && root) {
        err << tag << "warning: " << *why << "\n";
        notes.push_back(*why);
      }
    h.command = command_line();
    h.aipe_version = std::string(version()) + " (" + git_revision() + ")";
    h.timestamp = now_iso8601();
    h.nccl_version = nccl.version;
    h.nccl_library = nccl.library;
    h.launcher = launcher_name(boot.launcher);
    h.world_size = bench.world_size();
    h.ranks = bench.ranks();
    if (root) {
      h.topology = topology_lines(h.ranks, h.ranks.at(0).host);
      h.env = nccl_environment(process_environment());
      h.notes = notes;
      out << format_header(h) << std::flush;
    }
    rows = bench.run(o);
  } catch (const NcclUnavailable& e) {
    err << tag << e.what() << "\n";
    return kToolMissing;
  } catch (const NcclError& e) {
    err << tag << e.what() << "\n";
    return kFailed;
  } catch (const RendezvousError& e) {
    err << tag << e.what() << "\n";
    return kFailed;
  }
  if (!root) return exit_code(rows);
  out << format_table(rows, o, h.world_size);
  const int rc = exit_code(rows);
  if (rc != 0) out << "# FAILED: some outputs differ from their exact expected values (#wrong); those sizes have no time\n";
  if (!a.json.empty()) emit(a.json, report_json(h, o, rows).dump(2) + "\n", out);
  return rc;
}

CLI::App* add_comm(CLI::App& app, Action& action) {
  auto* c = app.add_subcommand("comm", "NCCL collectives benchmark (nccl-tests' measurement): time, algbw, busbw, #wrong");
  auto a = std::make_shared<CommArgs>();
  c->add_option("collective", a->collectives,
                "all_reduce, all_gather, reduce_scatter, all_to_all, broadcast, reduce, sendrecv, or all (default)");
  c->add_option("-b,--minbytes", a->min, "smallest message size (default 8; K, M, G = 2^10, 2^20, 2^30)");
  c->add_option("-e,--maxbytes", a->max, "largest message size (default 128M)");
  c->add_option("-f,--stepfactor", a->factor, "multiply the size by this between steps (default 2)");
  c->add_option("-i,--stepbytes", a->increment, "add this to the size between steps (instead of -f)");
  c->add_option("-d,--dtype", a->dtype, "element type: int8 uint8 int32 uint32 int64 uint64 half float double bfloat16");
  c->add_option("-o,--op", a->op, "reduction: sum, prod, max, min, avg (default sum)");
  c->add_flag("--inplace", a->inplace, "the output overwrites the input (nccl-tests' in-place layout)");
  c->add_flag("--graph", a->graph, "capture the timed runs in a CUDA graph and time its launches");
  c->add_flag("--registered", a->registered, "buffers from ncclMemAlloc, registered with ncclCommRegister");
  c->add_option("-n,--iters", a->iters, "timed runs per size (default 20; the median is reported)")
      ->check(CLI::Range(1, 100000));
  c->add_option("-w,--warmup", a->warmup, "untimed runs before (default 5)")->check(CLI::Range(0, 100000));
  c->add_option("-c,--check", a->check, "1: check every output element exactly before timing (default); 0: skip")
      ->check(CLI::Range(0, 1));
  c->add_option("-g,--ngpus", a->ngpus, "one process: drive the first N GPUs (default every visible GPU)")
      ->check(CLI::Range(1, 1024));
  c->add_option("--timeout", a->timeout_s, "seconds any wait (rendezvous, a collective) may take (default 300)")
      ->check(non_negative_number());
  c->add_option("--json", a->json, "also write the results as JSON to FILE ('-' for stdout)");
  action = [a](std::ostream& out, std::ostream& err) { return cmd_comm(*a, out, err); };
  return c;
}

AIPE_CLI_COMMAND(90, add_comm);

}  // namespace
}  // namespace aipe::cli
