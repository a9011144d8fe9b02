// What `aipe comm` prints and writes: a header (NCCL, ranks and their GPUs, topology, environment) and the
// nccl-tests table, one row per collective x size, `#wrong` beside every row; the same as JSON. Host only.
#pragma once
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "aipe/comm/bench.hpp"
#include "aipe/comm/bootstrap.hpp"

namespace aipe::comm {

struct ReportHeader {
  std::string command, aipe_version, timestamp;
  std::string nccl_version, nccl_library;
  std::string launcher;
  int world_size = 1;
  std::vector<RankInfo> ranks;
  std::vector<std::string> topology;          // lines: NVLink per GPU, the peer-access matrix (rank 0's host)
  std::map<std::string, std::string> env;     // NCCL_* and CUDA_VISIBLE_DEVICES as rank 0 saw them
  std::vector<std::string> notes;             // e.g. a user's NCCL_NVLS_ENABLE=1 overridden
};

// The variables that change what NCCL does: every NCCL_*, and CUDA_VISIBLE_DEVICES.
std::map<std::string, std::string> nccl_environment(const Environment& env);

std::string format_header(const ReportHeader& h);
// The table of `rows` (nccl-tests' columns), a blank line between collectives, and each collective's average
// bus bandwidth over its timed rows. A failed row shows its #wrong and no time.
std::string format_table(const std::vector<BenchRow>& rows, const BenchOptions& o, int world_size);

// {"header": ..., "options": ..., "results": [...]}: every row with its time (avg, min, max over ranks),
// algbw, busbw and #wrong; a skipped row with its reason.
nlohmann::json report_json(const ReportHeader& h, const BenchOptions& o, const std::vector<BenchRow>& rows);

// 0 when every checked row had no wrong element, else 1.
int exit_code(const std::vector<BenchRow>& rows);

}  // namespace aipe::comm
