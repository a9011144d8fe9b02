#include "aipe/comm/report.hpp"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

namespace aipe::comm {
namespace {

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

const char* root_text(Collective c) { return c == Collective::broadcast || c == Collective::reduce ? "0" : "-"; }

}  // namespace

std::map<std::string, std::string> nccl_environment(const Environment& env) {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : env)
    if (k.rfind("NCCL_", 0) == 0 || k == "CUDA_VISIBLE_DEVICES") out[k] = v;
  return out;
}

std::string format_header(const ReportHeader& h) {
  std::ostringstream os;
  os << "# aipe comm " << h.aipe_version << "  " << h.timestamp << "\n";
  os << "# " << h.command << "\n";
  os << "# NCCL " << h.nccl_version << " (" << h.nccl_library << ")\n";
  os << "# world size " << h.world_size << ", launcher " << h.launcher << "\n";
  for (const auto& r : h.ranks)
    os << "#   rank " << r.rank << ": host " << r.host << ", GPU " << r.device << " " << r.gpu_name << " (PCI "
       << r.pci_bus_id << ")\n";
  for (const auto& t : h.topology) os << "# " << t << "\n";
  if (h.env.empty()) {
    os << "# environment: no NCCL_* variables\n";
  } else {
    os << "# environment:";
    for (const auto& [k, v] : h.env) os << " " << k << "=" << v;
    os << "\n";
  }
  for (const auto& n : h.notes) os << "# note: " << n << "\n";
  return os.str();
}

std::string format_table(const std::vector<BenchRow>& rows, const BenchOptions& o, int world_size) {
  std::ostringstream os;
  char line[256];
  std::snprintf(line, sizeof line, "#%15s %13s %12s %9s %6s %4s %11s %11s %11s %9s %9s %7s\n", "collective", "size(B)",
                "count", "type", "redop", "root", "time(us)", "min(us)", "max(us)", "algbw", "busbw", "#wrong");
  os << line;
  std::snprintf(line, sizeof line, "#%15s %13s %12s %9s %6s %4s %11s %11s %11s %9s %9s %7s\n", "", "", "(elements)",
                "", "", "", "avg ranks", "", "", "(GB/s)", "(GB/s)", "");
  os << line;
  if (world_size == 1)
    os << "# one rank: nothing crosses a link, so busbw is 0 where the factor has (n-1) in it; algbw is the rate of\n"
          "# NCCL's local copy or reduction\n";
  const std::string type(info(o.dtype).name);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const BenchRow& r = rows[i];
    if (i > 0 && rows[i - 1].collective != r.collective) os << "\n";
    const char* op = info(r.collective).reduces ? reduce_op_name(o.op) : "none";
    const std::string wrong = r.wrong < 0 ? "N/A" : std::to_string(r.wrong);
    if (!r.skipped.empty()) {
      std::snprintf(line, sizeof line, " %15s %13lld %12lld %9s %6s %4s  skipped: %s\n",
                    std::string(info(r.collective).name).c_str(), static_cast<long long>(r.size_bytes),
                    static_cast<long long>(r.count), type.c_str(), op, root_text(r.collective), r.skipped.c_str());
    } else if (!r.timed) {
      std::snprintf(line, sizeof line, " %15s %13lld %12lld %9s %6s %4s %11s %11s %11s %9s %9s %7s  FAILED (first at %lld)\n",
                    std::string(info(r.collective).name).c_str(), static_cast<long long>(r.size_bytes),
                    static_cast<long long>(r.count), type.c_str(), op, root_text(r.collective), "-", "-", "-", "-", "-",
                    wrong.c_str(), static_cast<long long>(r.first_wrong));
    } else {
      std::snprintf(line, sizeof line, " %15s %13lld %12lld %9s %6s %4s %11.2f %11.2f %11.2f %9.2f %9.2f %7s\n",
                    std::string(info(r.collective).name).c_str(), static_cast<long long>(r.size_bytes),
                    static_cast<long long>(r.count), type.c_str(), op, root_text(r.collective), r.time_us, r.min_us,
                    r.max_us, r.algbw_gbs, r.busbw_gbs, wrong.c_str());
    }
    os << line;
    const bool last_of_collective = i + 1 == rows.size() || rows[i + 1].collective != r.collective;
    if (last_of_collective) {
      double sum = 0;
      int n = 0;
      for (const auto& x : rows)
        if (x.collective == r.collective && x.timed) sum += x.busbw_gbs, ++n;
      os << "# " << info(r.collective).name << ": average bus bandwidth "
         << (n ? fmt("%.2f", sum / n) + " GB/s over " + std::to_string(n) + " sizes" : std::string("n/a (no timed size)"))
         << " (busbw = algbw x " << fmt("%.4g", info(r.collective).bus_factor(world_size)) << " on " << world_size
         << " ranks)\n";
    }
  }
  return os.str();
}

nlohmann::json report_json(const ReportHeader& h, const BenchOptions& o, const std::vector<BenchRow>& rows) {
  nlohmann::json j;
  j["header"] = {{"command", h.command},      {"aipe_version", h.aipe_version}, {"timestamp", h.timestamp},
                 {"nccl_version", h.nccl_version}, {"nccl_library", h.nccl_library}, {"launcher", h.launcher},
                 {"world_size", h.world_size}, {"topology", h.topology},       {"env", h.env},
                 {"notes", h.notes}};
  auto& ranks = j["header"]["ranks"] = nlohmann::json::array();
  for (const auto& r : h.ranks)
    ranks.push_back({{"rank", r.rank}, {"host", r.host}, {"device", r.device}, {"gpu", r.gpu_name},
                     {"pci_bus_id", r.pci_bus_id}});
  j["options"] = {{"dtype", info(o.dtype).name}, {"op", reduce_op_name(o.op)}, {"inplace", o.inplace},
                  {"graph", o.graph},             {"registered", o.registered}, {"check", o.check},
                  {"warmup", o.warmup},           {"iters", o.iters},           {"graph_launches", o.graph_launches}};
  auto& res = j["results"] = nlohmann::json::array();
  for (const auto& r : rows) {
    nlohmann::json x = {{"collective", info(r.collective).name},
                        {"size_bytes", r.size_bytes},
                        {"count", r.count},
                        {"status", !r.skipped.empty() ? "skipped" : r.timed ? "ok" : "failed"}};
    if (info(r.collective).reduces) x["op"] = reduce_op_name(o.op);
    if (r.collective == Collective::broadcast || r.collective == Collective::reduce) x["root"] = 0;
    if (!r.skipped.empty()) x["reason"] = r.skipped;
    if (r.wrong >= 0) x["wrong"] = r.wrong;
    if (r.first_wrong >= 0) x["first_wrong"] = r.first_wrong;
    if (r.timed) {
      x["time_us"] = {{"avg", r.time_us}, {"min", r.min_us}, {"max", r.max_us}};
      x["algbw_gbs"] = r.algbw_gbs;
      x["busbw_gbs"] = r.busbw_gbs;
    }
    res.push_back(std::move(x));
  }
  return j;
}

int exit_code(const std::vector<BenchRow>& rows) {
  for (const auto& r : rows)
    if (r.wrong > 0) return 1;
  return 0;
}

}  // namespace aipe::comm
