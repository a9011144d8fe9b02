// The nccl-tests measurement on NCCL: for each collective and message size, fill every rank's inputs, run the
// collective once and check every output element exactly (#wrong), then warm up and time `iters` runs with
// CUDA events (the median per rank; across ranks min / max / avg, the avg giving algbw and busbw as in
// nccl-tests). A size whose check fails gets no time. Graph mode captures the `iters` runs into one CUDA graph
// per rank and times its launches; registered mode puts the buffers in ncclMemAlloc memory registered with
// every communicator (ncclCommRegister), which lets NCCL skip its internal staging copies.
//
// A Bench drives the communicators of this process: one per local GPU (single process, ncclCommInitAll) or
// the one of this rank (one process per GPU); every rank of the world must call run() with the same options.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "aipe/comm/collectives.hpp"
#include "aipe/comm/communicator.hpp"
#include "aipe/comm/data_type.hpp"

namespace aipe::comm {

struct BenchOptions {
  std::vector<Collective> collectives;  // in this order
  std::vector<std::int64_t> sizes;      // message sizes S in bytes (see collectives.hpp)
  DataType dtype = DataType::float32;
  ReduceOp op = ReduceOp::sum;  // for the collectives that reduce
  bool inplace = false;         // nccl-tests' in-place layout (the output overwrites the input)
  bool graph = false;           // time CUDA-graph launches of `iters` captured runs
  bool registered = false;      // ncclMemAlloc + ncclCommRegister buffers
  bool check = true;            // the exact check before timing
  int warmup = 5, iters = 20;
  int graph_launches = 5;       // graph mode: the median over this many launches of the captured runs
  std::chrono::milliseconds timeout{std::chrono::seconds(300)};  // any wait on the GPU; past it: abort, error
};

// Throws std::invalid_argument naming the field: no collective, no size, iters < 1, warmup < 0, ...
void validate(const BenchOptions& o);

struct BenchRow {
  Collective collective = Collective::all_reduce;
  std::int64_t size_bytes = 0;  // the requested size
  std::int64_t count = 0;       // elements (of the message, nccl-tests' "count")
  std::string skipped;          // why this row did not run ("" when it ran)
  std::int64_t wrong = -1;      // mismatches over every rank's outputs; -1: not checked
  std::int64_t first_wrong = -1;  // the smallest wrong index on the lowest rank that had one
  bool timed = false;           // false when skipped or the check failed
  double time_us = 0, min_us = 0, max_us = 0;  // avg, min, max over ranks of each rank's median
  double algbw_gbs = 0, busbw_gbs = 0;         // from time_us
};

struct RankInfo {
  int rank = 0;
  int device = 0;
  std::string host;
  std::string pci_bus_id;
  std::string gpu_name;
};

class Bench {
 public:
  // Takes the communicators of this process (communicators_for()); gathers every rank's RankInfo.
  explicit Bench(std::vector<Communicator> comms, std::chrono::milliseconds timeout = std::chrono::seconds(300));
  ~Bench();
  Bench(const Bench&) = delete;
  Bench& operator=(const Bench&) = delete;

  int world_size() const;
  // True in the process holding rank 0: the one that prints and writes files.
  bool is_root() const;
  const std::vector<RankInfo>& ranks() const;  // every rank of the world, by rank

  // One row per collective x size, in that order (validate()s the options first).
  std::vector<BenchRow> run(const BenchOptions& o);

  // For tests: fill, run `c` once at `size_bytes` and compare local rank `local`'s whole receive buffer on the
  // host with expected_value(); "" when all match, else the first mismatches (index, expected, actual).
  std::string host_check(const BenchOptions& o, Collective c, std::int64_t size_bytes, int local = 0);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace aipe::comm
