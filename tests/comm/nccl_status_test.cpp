#include "aipe/comm/nccl_status.hpp"

#include <gtest/gtest.h>

#include <regex>

TEST(NcclStatus, SaysWhichNcclOrWhyNone) {
  auto s = aipe::comm::nccl_status();
#if AIPE_HAVE_NCCL
  EXPECT_TRUE(s.available);
  EXPECT_TRUE(std::regex_match(s.version, std::regex("[0-9]+\\.[0-9]+\\.[0-9]+"))) << s.version;
  EXPECT_EQ(s.reason, "");
  EXPECT_NE(s.library.find("libnccl"), std::string::npos) << s.library;  // the file dlopen found
#else
  EXPECT_FALSE(s.available);
  EXPECT_NE(s.reason.find("AIPE_NCCL_ROOT"), std::string::npos) << s.reason;
#endif
}

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

// AIPE_NCCL_LIBRARY names the one library to load: a path that does not load makes NCCL unavailable, with the
// path in the reason, rather than a silent fallback. The library is loaded once per process, so the check runs
// in a fresh one: this binary again, running only the probe below with the variable set.
TEST(NcclStatus, ProbeOfAnExplicitLibrary) {
  if (!std::getenv("AIPE_NCCL_STATUS_PROBE")) GTEST_SKIP() << "runs as the child of AnExplicitLibrary...";
  const auto s = aipe::comm::nccl_status();
  EXPECT_FALSE(s.available) << s.library;
  EXPECT_NE(s.reason.find("/nonexistent/libnccl.so.2"), std::string::npos) << s.reason;
  EXPECT_NE(s.reason.find("AIPE_NCCL_LIBRARY"), std::string::npos) << s.reason;
}

TEST(NcclStatus, AnExplicitLibraryThatDoesNotLoadIsTheReason) {
#if AIPE_HAVE_NCCL
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    setenv("AIPE_NCCL_STATUS_PROBE", "1", 1);
    setenv("AIPE_NCCL_LIBRARY", "/nonexistent/libnccl.so.2", 1);
    execl("/proc/self/exe", "aipe_comm_tests", "--gtest_filter=NcclStatus.ProbeOfAnExplicitLibrary", "--gtest_brief=1",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the probe failed (its output is above)";
#else
  GTEST_SKIP() << "built without NCCL";
#endif
}
