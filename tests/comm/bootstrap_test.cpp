#include "aipe/comm/bootstrap.hpp"

#include <gtest/gtest.h>

#include <cstdlib>

using namespace aipe::comm;

namespace {
// The error message of detect_bootstrap(env), or "" when it did not throw.
std::string error_of(const Environment& env, const BootstrapDefaults& d = {}) {
  try {
    detect_bootstrap(env, d);
  } catch (const BootstrapError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Bootstrap, NoLauncherIsOneProcessDrivingAllGpus) {
  Bootstrap b = detect_bootstrap({{"PATH", "/bin"}});
  EXPECT_EQ(b.launcher, Launcher::single_process);
  EXPECT_EQ(b.rank, 0);
  EXPECT_EQ(b.world_size, 1);
  EXPECT_EQ(b.master_addr, "");
}

TEST(Bootstrap, OpenMpi) {
  Bootstrap b = detect_bootstrap({{"OMPI_COMM_WORLD_RANK", "5"}, {"OMPI_COMM_WORLD_SIZE", "16"},
                                  {"OMPI_COMM_WORLD_LOCAL_RANK", "5"}, {"MASTER_ADDR", "10.0.0.1"}});
  EXPECT_EQ(b.launcher, Launcher::open_mpi);
  EXPECT_EQ(b.rank, 5);
  EXPECT_EQ(b.world_size, 16);
  EXPECT_EQ(b.local_rank, 5);
  EXPECT_EQ(b.master_addr, "10.0.0.1");
  EXPECT_EQ(b.master_port, 29500);
  // Without MASTER_ADDR the caller's default is used; without either, a clear error.
  Environment env{{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}};
  EXPECT_EQ(detect_bootstrap(env, {.master_addr = "node0", .master_port = 1234}).master_addr, "node0");
  EXPECT_EQ(detect_bootstrap(env, {.master_addr = "node0", .master_port = 1234}).master_port, 1234);
  EXPECT_NE(error_of(env).find("MASTER_ADDR"), std::string::npos);
}

TEST(Bootstrap, OpenMpiWorldOfOneNeedsNoMaster) {
  Bootstrap b = detect_bootstrap(
      {{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "1"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "0"}});
  EXPECT_EQ(b.world_size, 1);
  EXPECT_EQ(b.master_addr, "");
}

TEST(Bootstrap, SlurmMasterFromLaunchNodeUnlessMasterAddrGiven) {
  Environment env{{"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "3"},
                  {"SLURM_LAUNCH_NODE_IPADDR", "192.168.1.7"}};
  Bootstrap b = detect_bootstrap(env);
  EXPECT_EQ(b.launcher, Launcher::slurm);
  EXPECT_EQ(b.rank, 3);
  EXPECT_EQ(b.world_size, 8);
  EXPECT_EQ(b.local_rank, 3);
  EXPECT_EQ(b.master_addr, "192.168.1.7");
  env["MASTER_ADDR"] = "head";
  env["MASTER_PORT"] = "40000";
  b = detect_bootstrap(env);
  EXPECT_EQ(b.master_addr, "head");
  EXPECT_EQ(b.master_port, 40000);
  env.erase("MASTER_ADDR");
  env.erase("SLURM_LAUNCH_NODE_IPADDR");
  EXPECT_EQ(detect_bootstrap(env, {.master_addr = "given"}).master_addr, "given");
  EXPECT_NE(error_of(env).find("MASTER_ADDR"), std::string::npos);
}

TEST(Bootstrap, Torchrun) {
  Environment env{{"RANK", "2"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "0"}, {"MASTER_ADDR", "127.0.0.1"},
                  {"MASTER_PORT", "29501"}};
  Bootstrap b = detect_bootstrap(env);
  EXPECT_EQ(b.launcher, Launcher::torchrun);
  EXPECT_EQ(b.rank, 2);
  EXPECT_EQ(b.world_size, 4);
  EXPECT_EQ(b.local_rank, 0);
  EXPECT_EQ(b.master_addr, "127.0.0.1");
  EXPECT_EQ(b.master_port, 29501);
}

TEST(Bootstrap, TheLauncherThatStartedTheProcessWins) {
  // srun started this process, which also carries torchrun-style variables from the job script.
  Environment env{{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"}, {"SLURM_LOCALID", "1"}, {"RANK", "0"},
                  {"WORLD_SIZE", "1"}, {"LOCAL_RANK", "0"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}};
  EXPECT_EQ(detect_bootstrap(env).launcher, Launcher::slurm);
  env["OMPI_COMM_WORLD_RANK"] = "0";
  env["OMPI_COMM_WORLD_SIZE"] = "2";
  env["OMPI_COMM_WORLD_LOCAL_RANK"] = "0";
  EXPECT_EQ(detect_bootstrap(env).launcher, Launcher::open_mpi);
}

TEST(Bootstrap, PartialSetsNameEveryMissingVariable) {
  std::string e = error_of({{"OMPI_COMM_WORLD_RANK", "0"}});
  EXPECT_NE(e.find("OMPI_COMM_WORLD_SIZE"), std::string::npos) << e;
  EXPECT_NE(e.find("OMPI_COMM_WORLD_LOCAL_RANK"), std::string::npos) << e;
  e = error_of({{"SLURM_NTASKS", "4"}});
  EXPECT_NE(e.find("SLURM_PROCID"), std::string::npos) << e;
  EXPECT_NE(e.find("SLURM_LOCALID"), std::string::npos) << e;
  e = error_of({{"MASTER_ADDR", "x"}});
  EXPECT_NE(e.find("RANK"), std::string::npos) << e;
  e = error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "0"}, {"MASTER_PORT", "1"}});
  EXPECT_NE(e.find("MASTER_ADDR not set"), std::string::npos) << e;
  e = error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "0"}, {"MASTER_ADDR", "h"}});
  EXPECT_NE(e.find("MASTER_PORT not set"), std::string::npos) << e;
}

TEST(Bootstrap, InconsistentOrMalformedValuesAreNamed) {
  auto torch = [](const char* rank, const char* world, const char* local, const char* port) {
    return Environment{{"RANK", rank}, {"WORLD_SIZE", world}, {"LOCAL_RANK", local}, {"MASTER_ADDR", "h"},
                       {"MASTER_PORT", port}};
  };
  EXPECT_NE(error_of(torch("4", "4", "0", "1")).find("RANK=4 is not below WORLD_SIZE=4"), std::string::npos);
  EXPECT_NE(error_of(torch("x", "4", "0", "1")).find("RANK='x' is not an integer"), std::string::npos);
  EXPECT_NE(error_of(torch("1", "4 ", "0", "1")).find("WORLD_SIZE='4 ' is not an integer"), std::string::npos);
  EXPECT_NE(error_of(torch("", "4", "0", "1")).find("RANK='' is not an integer"), std::string::npos);
  EXPECT_NE(error_of(torch("-1", "4", "0", "1")).find("RANK=-1 is negative"), std::string::npos);
  EXPECT_NE(error_of(torch("0", "0", "0", "1")).find("WORLD_SIZE=0"), std::string::npos);
  EXPECT_NE(error_of(torch("1", "4", "4", "1")).find("LOCAL_RANK=4 is not below WORLD_SIZE=4"), std::string::npos);
  EXPECT_EQ(error_of(torch("1", "4", "2", "1")), "");  // a rankfile may put rank 1 third on its host
  EXPECT_NE(error_of(torch("0", "2", "0", "0")).find("MASTER_PORT=0 is not a TCP port"), std::string::npos);
  EXPECT_NE(error_of(torch("0", "2", "0", "70000")).find("MASTER_PORT=70000"), std::string::npos);
  EXPECT_NE(error_of(torch("0", "2", "0", "99999999999")).find("MASTER_PORT"), std::string::npos);
  EXPECT_EQ(error_of(torch("3", "4", "3", "65535")), "");
}

TEST(Bootstrap, ProcessEnvironmentIsRead) {
  setenv("AIPE_COMM_TEST_VAR", "a=b", 1);
  Environment env = process_environment();
  EXPECT_EQ(env.at("AIPE_COMM_TEST_VAR"), "a=b");
  unsetenv("AIPE_COMM_TEST_VAR");
}

TEST(Bootstrap, DisableNvlsAlwaysWritesZero) {
  setenv("NCCL_NVLS_ENABLE", "1", 1);
  disable_nvls();
  ASSERT_NE(std::getenv("NCCL_NVLS_ENABLE"), nullptr);
  EXPECT_STREQ(std::getenv("NCCL_NVLS_ENABLE"), "0");
  unsetenv("NCCL_NVLS_ENABLE");
  disable_nvls();
  ASSERT_NE(std::getenv("NCCL_NVLS_ENABLE"), nullptr);
  EXPECT_STREQ(std::getenv("NCCL_NVLS_ENABLE"), "0");
}
