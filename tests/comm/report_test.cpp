#include "aipe/comm/report.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

using namespace aipe::comm;

namespace {

BenchRow timed(Collective c, std::int64_t size, double us, double algbw, double busbw) {
  BenchRow r;
  r.collective = c;
  r.size_bytes = size;
  r.count = size / 4;
  r.wrong = 0;
  r.timed = true;
  r.time_us = us, r.min_us = us * 0.9, r.max_us = us * 1.1;
  r.algbw_gbs = algbw, r.busbw_gbs = busbw;
  return r;
}

std::vector<BenchRow> sample_rows() {
  std::vector<BenchRow> rows{timed(Collective::all_reduce, 1024, 10.5, 0.1, 0.175),
                             timed(Collective::all_reduce, 1 << 20, 20.25, 51.8, 90.65)};
  BenchRow bad;
  bad.collective = Collective::all_reduce;
  bad.size_bytes = 4 << 20;
  bad.count = 1 << 20;
  bad.wrong = 17;
  bad.first_wrong = 4099;
  rows.push_back(bad);
  BenchRow skip;
  skip.collective = Collective::all_gather;
  skip.size_bytes = 8;
  skip.skipped = "smaller than one element per rank";
  rows.push_back(skip);
  return rows;
}

}  // namespace

TEST(CommReport, TableHasNcclTestsColumnsAndNoTimeForAWrongRow) {
  BenchOptions o;
  o.dtype = DataType::bfloat16;
  const std::string t = format_table(sample_rows(), o, 8);
  for (const char* col : {"collective", "size(B)", "count", "type", "redop", "root", "time(us)", "algbw", "busbw", "#wrong"})
    EXPECT_NE(t.find(col), std::string::npos) << col << "\n" << t;
  EXPECT_NE(t.find("10.50"), std::string::npos) << t;
  EXPECT_NE(t.find("90.65"), std::string::npos) << t;
  EXPECT_NE(t.find("bfloat16"), std::string::npos) << t;
  // The failed row: its #wrong and first index, dashes for every time.
  const auto line_of = [&](const std::string& key) {
    const auto at = t.find(key);
    const auto begin = t.rfind('\n', at) + 1;
    return t.substr(begin, t.find('\n', at) - begin);
  };
  const std::string failed = line_of("FAILED");
  EXPECT_NE(failed.find(" 17 "), std::string::npos) << failed;
  EXPECT_NE(failed.find("first at 4099"), std::string::npos) << failed;
  EXPECT_EQ(failed.find('.'), std::string::npos) << "a wrong row printed a time: " << failed;
  EXPECT_NE(line_of("skipped:").find("smaller than one element per rank"), std::string::npos);
  // Per-collective average busbw over the timed rows only (0.175 and 90.65), with the factor on 8 ranks.
  EXPECT_NE(t.find("all_reduce: average bus bandwidth 45.41 GB/s over 2 sizes (busbw = algbw x 1.75 on 8 ranks)"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("all_gather: average bus bandwidth n/a"), std::string::npos) << t;
  EXPECT_EQ(t.find("one rank"), std::string::npos) << t;
  EXPECT_NE(format_table(sample_rows(), o, 1).find("# one rank: nothing crosses a link"), std::string::npos);
  EXPECT_EQ(exit_code(sample_rows()), 1);
  const auto all = sample_rows();
  std::vector<BenchRow> good(all.begin(), all.begin() + 2);
  EXPECT_EQ(exit_code(good), 0);
}

TEST(CommReport, JsonCarriesEveryRowAndTheHeader) {
  ReportHeader h;
  h.command = "aipe comm all";
  h.nccl_version = "2.28.3";
  h.world_size = 8;
  h.ranks = {{0, 0, "node0", "0000:18:00.0", "NVIDIA H200"}};
  h.env = {{"NCCL_NVLS_ENABLE", "0"}};
  BenchOptions o;
  o.op = ReduceOp::max;
  const auto j = report_json(h, o, sample_rows());
  EXPECT_EQ(j["header"]["nccl_version"], "2.28.3");
  EXPECT_EQ(j["header"]["world_size"], 8);
  EXPECT_EQ(j["header"]["ranks"][0]["pci_bus_id"], "0000:18:00.0");
  EXPECT_EQ(j["header"]["env"]["NCCL_NVLS_ENABLE"], "0");
  EXPECT_EQ(j["options"]["op"], "max");
  ASSERT_EQ(j["results"].size(), 4u);
  EXPECT_EQ(j["results"][0]["status"], "ok");
  EXPECT_EQ(j["results"][0]["op"], "max");
  EXPECT_DOUBLE_EQ(j["results"][1]["busbw_gbs"].get<double>(), 90.65);
  EXPECT_DOUBLE_EQ(j["results"][1]["time_us"]["avg"].get<double>(), 20.25);
  EXPECT_EQ(j["results"][2]["status"], "failed");
  EXPECT_EQ(j["results"][2]["wrong"], 17);
  EXPECT_FALSE(j["results"][2].contains("time_us"));
  EXPECT_EQ(j["results"][3]["status"], "skipped");
  EXPECT_EQ(j["results"][3]["reason"], "smaller than one element per rank");
  EXPECT_FALSE(j["results"][3].contains("op"));  // all_gather does not reduce
}

TEST(CommReport, HeaderAndEnvironment) {
  Environment env{{"NCCL_DEBUG", "INFO"}, {"NCCL_NVLS_ENABLE", "0"}, {"CUDA_VISIBLE_DEVICES", "0,1"},
                  {"PATH", "/usr/bin"}, {"MY_NCCL_X", "1"}};
  const auto picked = nccl_environment(env);
  EXPECT_EQ(picked.size(), 3u);
  EXPECT_EQ(picked.count("PATH"), 0u);
  EXPECT_EQ(picked.count("MY_NCCL_X"), 0u);
  ReportHeader h;
  h.nccl_version = "2.28.3";
  h.nccl_library = "/usr/lib/libnccl.so.2";
  h.world_size = 2;
  h.launcher = "torchrun";
  h.ranks = {{0, 0, "a", "0000:18:00.0", "NVIDIA H200"}, {1, 1, "a", "0000:2a:00.0", "NVIDIA H200"}};
  h.env = picked;
  h.notes = {"NCCL_NVLS_ENABLE=1 ignored"};
  const std::string s = format_header(h);
  EXPECT_NE(s.find("# NCCL 2.28.3 (/usr/lib/libnccl.so.2)"), std::string::npos) << s;
  EXPECT_NE(s.find("rank 1: host a, GPU 1 NVIDIA H200 (PCI 0000:2a:00.0)"), std::string::npos) << s;
  EXPECT_NE(s.find("NCCL_DEBUG=INFO"), std::string::npos) << s;
  EXPECT_NE(s.find("# note: NCCL_NVLS_ENABLE=1 ignored"), std::string::npos) << s;
}

TEST(CommBench, OptionsAreValidated) {
  BenchOptions o;
  EXPECT_THROW(validate(o), std::invalid_argument);  // no collective
  o.collectives = {Collective::all_reduce};
  EXPECT_THROW(validate(o), std::invalid_argument);  // no size
  o.sizes = {8};
  EXPECT_NO_THROW(validate(o));
  o.iters = 0;
  try {
    validate(o);
    ADD_FAILURE() << "iters 0 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("iters"), std::string::npos) << e.what();
  }
  o.iters = 1;
  o.warmup = -1;
  EXPECT_THROW(validate(o), std::invalid_argument);
  o.warmup = 0;
  o.sizes = {8, 0};
  EXPECT_THROW(validate(o), std::invalid_argument);
}
