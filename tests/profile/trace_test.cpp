// The trace model and its Chrome trace-event writer, on a synthetic activity list and on a trace recorded
// on the H100.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "aipe/profile/trace.hpp"

using namespace aipe::profile;

namespace {

Activity act(Activity::Kind k, const char* name, std::uint64_t s, std::uint64_t e, std::uint32_t stream,
             std::uint32_t thread = 0) {
  Activity a;
  a.kind = k;
  a.name = name;
  a.start_ns = s;
  a.end_ns = e;
  a.stream = stream;
  a.thread = thread;
  return a;
}

std::vector<Activity> two_streams() {
  auto r = act(Activity::Kind::range, "ch11/producer_consumer/ring", 1000, 2000, 0, 4242);
  auto c = act(Activity::Kind::memcpy, "memcpy HtoD", 1500, 3500, 7);
  c.bytes = 4000;
  return {r,
          act(Activity::Kind::kernel, "producer", 2000, 6000, 13),
          act(Activity::Kind::kernel, "consumer", 5000, 9000, 14),  // overlaps producer by 1000 ns
          act(Activity::Kind::kernel, "producer", 9500, 9700, 13),
          c,
          act(Activity::Kind::memset, "memset", 9800, 9900, 13)};
}

}  // namespace

TEST(Trace, WritesValidTraceEventJson) {
  std::ostringstream s;
  write_chrome_trace(s, two_streams(), {"aipe trace ch11", "NVIDIA H100 80GB HBM3", 0});
  const auto j = nlohmann::json::parse(s.str());
  EXPECT_EQ(validate_chrome_trace(j), "");
  int complete = 0, meta = 0;
  std::set<int> gpu_tids;
  for (const auto& e : j["traceEvents"]) {
    if (e["ph"] == "X") {
      ++complete;
      EXPECT_GE(e["ts"].get<double>(), 0.0);
      if (e["cat"] == "kernel") gpu_tids.insert(e["tid"].get<int>());
    }
    if (e["ph"] == "M") ++meta;
  }
  EXPECT_EQ(complete, 6);
  EXPECT_EQ(gpu_tids, (std::set<int>{13, 14}));  // one track per stream
  // host process + its thread, GPU process + 3 streams (7, 13, 14)
  EXPECT_EQ(meta, 6);
}

TEST(Trace, TimesAreMicrosecondsFromTheFirstRecord) {
  const auto j = chrome_trace(two_streams());
  for (const auto& e : j["traceEvents"]) {
    if (e["ph"] != "X" || e["name"] != "consumer") continue;
    EXPECT_DOUBLE_EQ(e["ts"].get<double>(), 4.0);   // (5000 - 1000) ns
    EXPECT_DOUBLE_EQ(e["dur"].get<double>(), 4.0);  // 4000 ns
  }
  for (const auto& e : j["traceEvents"])
    if (e["ph"] == "X" && e["cat"] == "memcpy") EXPECT_EQ(e["args"]["bytes"], 4000);
}

TEST(Trace, OverlapAcrossStreams) {
  auto acts = two_streams();
  EXPECT_EQ(max_cross_stream_kernel_overlap_ns(acts), 1000u);
  acts[2].start_ns = 6000;  // consumer now starts when the producer ends
  EXPECT_EQ(max_cross_stream_kernel_overlap_ns(acts), 0u);
  acts[2].stream = 13;  // same stream: never counted
  acts[2].start_ns = 3000;
  EXPECT_EQ(max_cross_stream_kernel_overlap_ns(acts), 0u);
}

TEST(Trace, ValidatorRejectsBrokenDocuments) {
  using nlohmann::json;
  EXPECT_NE(validate_chrome_trace(json::array()), "");
  EXPECT_NE(validate_chrome_trace(json{{"events", json::array()}}), "");
  EXPECT_NE(validate_chrome_trace(json{{"traceEvents", {{{"name", "k"}, {"ts", 0}, {"dur", 1}, {"pid", 1}, {"tid", 1}}}}}), "");
  EXPECT_NE(validate_chrome_trace(json{{"traceEvents", {{{"ph", "X"}, {"name", "k"}, {"ts", 0}, {"dur", -1}, {"pid", 1}, {"tid", 1}}}}}), "");
  EXPECT_NE(validate_chrome_trace(json{{"traceEvents", {{{"ph", "X"}, {"name", "k"}, {"ts", "0"}, {"dur", 1}, {"pid", 1}, {"tid", 1}}}}}), "");
  EXPECT_NE(validate_chrome_trace(json{{"traceEvents", {{{"ph", "M"}, {"name", "process_name"}, {"pid", 1}}}}}), "");
  EXPECT_NE(validate_chrome_trace(json{{"traceEvents", {{{"ph", "Q"}, {"ts", 0}}}}}), "");
  EXPECT_EQ(validate_chrome_trace(json{{"traceEvents", json::array()}}), "");
}

// A real trace recorded on the H100 (an excerpt of `aipe trace ch11/producer_consumer`, the ring rung):
// valid trace-event JSON in which the producer and consumer kernels, on two streams, overlap.
TEST(Trace, RecordedTwoStreamTraceShowsOverlap) {
  std::ifstream f(std::string(AIPE_FIXTURE_DIR) + "/trace_h100_ch11_producer_consumer_ring.json");
  ASSERT_TRUE(f) << "missing fixture";
  const auto j = nlohmann::json::parse(f);
  EXPECT_EQ(validate_chrome_trace(j), "");
  std::vector<Activity> acts;
  int ranges = 0;
  for (const auto& e : j["traceEvents"]) {
    if (e["ph"] != "X") continue;
    if (e["cat"] == "nvtx") {
      ++ranges;
      EXPECT_EQ(e["name"], "ch11/producer_consumer/ring");
      continue;
    }
    if (e["cat"] != "kernel") continue;
    Activity a;
    a.name = e["name"];
    a.stream = e["tid"].get<std::uint32_t>();
    a.start_ns = static_cast<std::uint64_t>(e["ts"].get<double>() * 1e3);
    a.end_ns = a.start_ns + static_cast<std::uint64_t>(e["dur"].get<double>() * 1e3);
    acts.push_back(a);
  }
  EXPECT_EQ(ranges, 1);
  std::set<std::uint32_t> streams;
  for (const auto& a : acts) streams.insert(a.stream);
  EXPECT_EQ(streams.size(), 2u);
  EXPECT_GT(max_cross_stream_kernel_overlap_ns(acts), 100'000u);  // P(k+1) beside Q(k): > 100 us
}
