// `aipe comm`'s command line: every bad value is exit 2 with a message naming it, checked before a GPU or
// NCCL is looked for; a launcher environment that is incomplete is a usage error too. Without a GPU the
// command exits 3 (on a GPU machine the GPU tests run it for real).
#include <gtest/gtest.h>

#include <cstdlib>

#include "aipe/device.hpp"
#include "run_cli.hpp"

namespace {

using aipe::test::run_cli;

struct Case {
  std::vector<std::string> args;
  std::string starts;  // after "aipe: "
};

TEST(CliComm, BadArgumentsExit2WithTheReason) {
  const std::vector<Case> cases = {
      {{"comm", "allreduce"}, "unknown collective 'allreduce'; collectives: all_reduce, all_gather"},
      {{"comm", "all_reduce", "bogus"}, "unknown collective 'bogus'"},
      {{"comm", "-b", "0"}, "-b 0: the smallest size must be at least 1 byte"},
      {{"comm", "-b", "x"}, "-b 'x'"},
      {{"comm", "-e", "8Q"}, "-e '8Q'"},
      {{"comm", "-b", "1M", "-e", "1K"}, "-e 1K is below -b 1M"},
      {{"comm", "-f", "1"}, "-f 1: the factor must be at least 2"},
      {{"comm", "-f", "2", "-i", "1M"}, "-f and -i both given"},
      {{"comm", "-i", "0"}, "-i 0: the increment must be positive"},
      {{"comm", "--dtype", "fp8"}, "--dtype 'fp8' is not a type; types: int8, uint8"},
      {{"comm", "-d", "Float"}, "--dtype 'Float'"},
      {{"comm", "--op", "mean"}, "--op 'mean' is not a reduction; reductions: sum, prod, max, min, avg"},
      {{"comm", "-n", "0"}, "--iters: Value 0 not in range"},
      {{"comm", "-w", "-1"}, "--warmup"},
      {{"comm", "-c", "2"}, "--check: Value 2 not in range"},
      {{"comm", "--timeout", "0"}, "--timeout: must be at least 0.001 s"},
      {{"comm", "--timeout", "nan"}, "--timeout"},
      {{"comm", "--json", "/nonexistent-aipe-dir/x.json"}, "cannot write '/nonexistent-aipe-dir/x.json'"},
  };
  for (const auto& c : cases) {
    std::string line;
    for (const auto& a : c.args) line += " " + a;
    const auto r = run_cli(c.args);
    EXPECT_EQ(r.code, 2) << "aipe" << line << "\n" << r.err;
    const std::string want = "aipe: " + c.starts;
    EXPECT_EQ(r.err.substr(0, want.size()), want) << "aipe" << line;
    EXPECT_LT(r.err.size(), 400u) << "aipe" << line << "\n" << r.err;
    EXPECT_EQ(r.out, "") << "aipe" << line;
  }
}

// An environment variable set for one scope.
struct ScopedEnv {
  std::string name;
  ScopedEnv(const char* n, const char* v) : name(n) { setenv(n, v, 1); }
  ~ScopedEnv() { unsetenv(name.c_str()); }
};

TEST(CliComm, AnIncompleteLaunchEnvironmentIsAUsageError) {
  {
    ScopedEnv rank("RANK", "1");
    const auto r = run_cli({"comm", "all_reduce"});
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_NE(r.err.find("launch environment: torchrun-style environment is incomplete: WORLD_SIZE, LOCAL_RANK"),
              std::string::npos)
        << r.err;
  }
  {
    ScopedEnv rank("SLURM_PROCID", "0"), size("SLURM_NTASKS", "2"), local("SLURM_LOCALID", "0"),
        addr("SLURM_LAUNCH_NODE_IPADDR", "127.0.0.1");
    const auto r = run_cli({"comm", "-g", "2"});
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_NE(r.err.find("-g/--ngpus is for one process driving several GPUs"), std::string::npos) << r.err;
  }
}

TEST(CliComm, WithoutAGpuExits3) {
  if (!aipe::gpu_unavailable_reason()) GTEST_SKIP() << "a GPU is present: the GPU tier runs aipe comm";
  const auto r = run_cli({"comm", "all_reduce", "-b", "8", "-e", "8"});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("no usable CUDA GPU"), std::string::npos) << r.err;
}

}  // namespace
