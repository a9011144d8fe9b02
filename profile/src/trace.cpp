#include "aipe/profile/trace.hpp"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

namespace aipe::profile {

const char* to_string(Activity::Kind k) {
  switch (k) {
    case Activity::Kind::kernel: return "kernel";
    case Activity::Kind::memcpy: return "memcpy";
    case Activity::Kind::memset: return "memset";
    case Activity::Kind::range: return "nvtx";
  }
  return "?";
}

namespace {
constexpr int kHostPid = 1;
int gpu_pid(std::uint32_t device) { return 100 + int(device); }
}  // namespace

nlohmann::json chrome_trace(const std::vector<Activity>& acts, const TraceMeta& meta) {
  using nlohmann::json;
  std::uint64_t t0 = std::numeric_limits<std::uint64_t>::max();
  for (const auto& a : acts) t0 = std::min(t0, a.start_ns);
  json ev = json::array();
  std::set<std::uint32_t> devices, threads;
  std::set<std::pair<std::uint32_t, std::uint32_t>> streams;
  for (const auto& a : acts) {
    const bool host = a.kind == Activity::Kind::range;
    const std::uint64_t end = std::max(a.end_ns, a.start_ns);
    json e = {{"name", a.name},
              {"cat", to_string(a.kind)},
              {"ph", "X"},
              {"ts", double(a.start_ns - t0) / 1e3},
              {"dur", double(end - a.start_ns) / 1e3},
              {"pid", host ? kHostPid : gpu_pid(a.device)},
              {"tid", host ? a.thread : a.stream}};
    json args = json::object();
    for (const auto& [k, v] : a.args) args[k] = v;
    if (!host) {
      args["stream"] = a.stream;
      if (a.correlation) args["correlation"] = a.correlation;
    }
    if (a.bytes) {
      args["bytes"] = a.bytes;
      if (end > a.start_ns) args["GB/s"] = double(a.bytes) / double(end - a.start_ns);
    }
    e["args"] = args;
    ev.push_back(std::move(e));
    if (host) threads.insert(a.thread);
    else {
      devices.insert(a.device);
      streams.insert({a.device, a.stream});
    }
  }
  auto meta_ev = [&](const char* what, int pid, std::uint32_t tid, const std::string& name) {
    json m = {{"name", what}, {"ph", "M"}, {"pid", pid}, {"args", {{"name", name}}}};
    if (std::string(what) == "thread_name") m["tid"] = tid;
    ev.push_back(m);
  };
  if (!threads.empty()) meta_ev("process_name", kHostPid, 0, "host (NVTX ranges)");
  for (auto t : threads) meta_ev("thread_name", kHostPid, t, "thread " + std::to_string(t));
  for (auto d : devices)
    meta_ev("process_name", gpu_pid(d), 0, "GPU " + std::to_string(d) + (meta.device_name.empty() ? "" : ": " + meta.device_name));
  for (auto [d, s] : streams) meta_ev("thread_name", gpu_pid(d), s, "stream " + std::to_string(s));
  json j = {{"traceEvents", ev}, {"displayTimeUnit", "ns"}};
  j["otherData"] = {{"generator", "aipe trace"}, {"command", meta.command}, {"dropped_records", meta.dropped_records}};
  return j;
}

void write_chrome_trace(std::ostream& os, const std::vector<Activity>& acts, const TraceMeta& meta) {
  os << chrome_trace(acts, meta).dump(1) << "\n";
}

std::string validate_chrome_trace(const nlohmann::json& j) {
  if (!j.is_object()) return "the document is not a JSON object";
  if (!j.contains("traceEvents") || !j["traceEvents"].is_array()) return "no \"traceEvents\" array";
  std::size_t i = 0;
  for (const auto& e : j["traceEvents"]) {
    const std::string at = "traceEvents[" + std::to_string(i++) + "]";
    if (!e.is_object()) return at + " is not an object";
    if (!e.contains("ph") || !e["ph"].is_string()) return at + " has no string \"ph\"";
    const std::string ph = e["ph"];
    auto num = [&](const char* k) { return e.contains(k) && e[k].is_number(); };
    auto idlike = [&](const char* k) { return e.contains(k) && (e[k].is_number_integer() || e[k].is_string()); };
    if (ph == "X") {
      if (!e.contains("name") || !e["name"].is_string()) return at + " (X) has no string \"name\"";
      if (!num("ts")) return at + " (X) has no numeric \"ts\"";
      if (!num("dur") || e["dur"].get<double>() < 0) return at + " (X) has no non-negative \"dur\"";
      if (!idlike("pid") || !idlike("tid")) return at + " (X) needs \"pid\" and \"tid\"";
      if (e.contains("args") && !e["args"].is_object()) return at + " \"args\" is not an object";
    } else if (ph == "M") {
      if (!e.contains("name") || !e["name"].is_string()) return at + " (M) has no \"name\"";
      if (!idlike("pid")) return at + " (M) has no \"pid\"";
      if (!e.contains("args") || !e["args"].is_object()) return at + " (M) has no \"args\" object";
    } else if (ph == "B" || ph == "E" || ph == "i" || ph == "I" || ph == "C") {
      if (!num("ts")) return at + " has no numeric \"ts\"";
    } else {
      return at + " has an unsupported phase \"" + ph + "\"";
    }
  }
  return "";
}

std::uint64_t max_cross_stream_kernel_overlap_ns(const std::vector<Activity>& acts) {
  std::vector<const Activity*> k;
  for (const auto& a : acts)
    if (a.kind == Activity::Kind::kernel) k.push_back(&a);
  std::uint64_t best = 0;
  for (std::size_t i = 0; i < k.size(); ++i)
    for (std::size_t j = i + 1; j < k.size(); ++j) {
      if (k[i]->device != k[j]->device || k[i]->stream == k[j]->stream) continue;
      const std::uint64_t s = std::max(k[i]->start_ns, k[j]->start_ns), e = std::min(k[i]->end_ns, k[j]->end_ns);
      if (e > s) best = std::max(best, e - s);
    }
  return best;
}

}  // namespace aipe::profile
