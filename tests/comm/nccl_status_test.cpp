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
