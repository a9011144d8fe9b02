// A timeline of GPU activity (kernels, memcpys, memsets) and host NVTX ranges, written as Chrome
// trace-event JSON (opens in Perfetto and chrome://tracing). The model and the writer are host-only
// and tested on synthetic activity; CuptiTracer (cupti_tracer.hpp) fills it on a GPU.
#pragma once
#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace aipe::profile {

struct Activity {
  enum class Kind { kernel, memcpy, memset, range };
  Kind kind = Kind::kernel;
  std::string name;
  std::uint64_t start_ns = 0, end_ns = 0;  // CUPTI timestamps (one clock for host and device records)
  std::uint32_t device = 0;
  std::uint32_t stream = 0;     // GPU records
  std::uint32_t thread = 0;     // range records: host thread id
  std::uint32_t correlation = 0;
  std::uint64_t bytes = 0;      // memcpy / memset
  std::map<std::string, std::string> args;  // shown in the viewer's detail pane
};
const char* to_string(Activity::Kind k);

struct TraceMeta {
  std::string command;
  std::string device_name;
  std::uint64_t dropped_records = 0;
};

// Chrome trace-event format: complete ("X") events, microsecond timestamps relative to the first
// record; one process per GPU with one thread (track) per stream, and a "host" process whose tracks
// are the threads that pushed NVTX ranges; metadata ("M") events name them.
nlohmann::json chrome_trace(const std::vector<Activity>& acts, const TraceMeta& meta = {});
void write_chrome_trace(std::ostream& os, const std::vector<Activity>& acts, const TraceMeta& meta = {});

// Checks a JSON document against the trace-event format (object form): a "traceEvents" array whose
// events have a string "ph" and, per phase, the fields the viewers need ("X": name, ts, dur >= 0,
// pid, tid; "M": name, pid, args). Returns "" or the first problem found.
std::string validate_chrome_trace(const nlohmann::json& j);

// Longest time (ns) during which kernels on two different streams of one device ran at once.
std::uint64_t max_cross_stream_kernel_overlap_ns(const std::vector<Activity>& acts);

}  // namespace aipe::profile
