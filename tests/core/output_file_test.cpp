#include "aipe/output_file.hpp"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "aipe/check.hpp"
#include "child_process.hpp"

namespace {

namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::path(::testing::TempDir()) / ("aipe-out-" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

std::size_t entries(const fs::path& d) {
  return static_cast<std::size_t>(std::distance(fs::directory_iterator(d), fs::directory_iterator()));
}

TEST(OutputFile, ReplacesTheTargetWholeAndLeavesNoTemporary) {
  const fs::path d = fresh_dir("replace");
  const fs::path f = d / "r.json";
  aipe::write_file(f.string(), "first\n");
  EXPECT_EQ(slurp(f), "first\n");
  const std::string big(3 << 20, 'x');
  aipe::write_file(f.string(), big);
  EXPECT_EQ(slurp(f), big);
  EXPECT_EQ(entries(d), 1u);
}

TEST(OutputFile, KeepsTheTargetsPermissionsAndNewFilesFollowTheUmask) {
  const fs::path d = fresh_dir("perm");
  const fs::path f = d / "r.json";
  aipe::write_file(f.string(), "a");
  const mode_t mask = ::umask(0);
  ::umask(mask);
  EXPECT_EQ(static_cast<mode_t>(fs::status(f).permissions()) & 0777, 0666 & ~mask);
  fs::permissions(f, fs::perms(0640));
  aipe::write_file(f.string(), "b");
  EXPECT_EQ(static_cast<int>(fs::status(f).permissions()) & 0777, 0640);
}

TEST(OutputFile, ASymlinkKeepsPointingAtItsTarget) {
  const fs::path d = fresh_dir("link");
  aipe::write_file((d / "real.json").string(), "old");
  fs::create_symlink(d / "real.json", d / "link.json");
  aipe::write_file((d / "link.json").string(), "new");
  EXPECT_TRUE(fs::is_symlink(d / "link.json"));
  EXPECT_EQ(slurp(d / "real.json"), "new");
}

// A link whose target does not exist yet: the write creates the target, as opening the link would.
TEST(OutputFile, ADanglingSymlinkGetsItsTargetCreated) {
  const fs::path d = fresh_dir("dangling");
  fs::create_directories(d / "sub");
  fs::create_symlink("sub/real.json", d / "link.json");
  aipe::write_file((d / "link.json").string(), "new");
  EXPECT_TRUE(fs::is_symlink(d / "link.json"));
  EXPECT_EQ(slurp(d / "sub" / "real.json"), "new");
  EXPECT_EQ(entries(d), 2u);
  EXPECT_EQ(entries(d / "sub"), 1u);
}

TEST(OutputFile, AFullDeviceIsAWriteErrorNamingThePath) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  try {
    aipe::write_file("/dev/full", std::string(1 << 16, 'x'));
    FAIL() << "no error writing to /dev/full";
  } catch (const aipe::WriteError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("cannot write '/dev/full': write: No space left on device", 0), 0u) << e.what();
  }
  EXPECT_TRUE(fs::is_character_file("/dev/full"));  // written in place, never renamed over
}

TEST(OutputFile, AFailedWriteLeavesTheOldFile) {
  const fs::path d = fresh_dir("fail");
  const fs::path f = d / "r.json";
  aipe::write_file(f.string(), "yesterday");
  // A disk that fills mid-write, as the file-size limit makes it (root included): in a child, so the
  // limit stays there.
  const auto r = aipe::test::run_in_child(
      [&] {
        ::signal(SIGXFSZ, SIG_IGN);
        const rlimit lim{4096, 4096};
        ::setrlimit(RLIMIT_FSIZE, &lim);
        try {
          aipe::write_file(f.string(), std::string(1 << 20, 'x'));
        } catch (const aipe::WriteError& e) {
          return std::string(e.what()).rfind("cannot write '" + f.string() + "': write: ", 0) == 0 ? 0 : 2;
        }
        return 1;
      },
      30);
  EXPECT_EQ(r.exit_code, 0) << "1: no error; 2: the message does not name the file";
  EXPECT_EQ(slurp(f), "yesterday");
  EXPECT_EQ(entries(d), 1u) << "a temporary file was left behind";
}

TEST(OutputFile, CheckRejectsFoldersMissingFoldersAndInputs) {
  const fs::path d = fresh_dir("check");
  const fs::path in = d / "in.json";
  std::ofstream(in) << "x";
  EXPECT_THROW(aipe::check_output_path(d.string()), aipe::BadInput);
  EXPECT_THROW(aipe::check_output_path((d / "nope" / "x.json").string()), aipe::BadInput);
  EXPECT_THROW(aipe::check_output_path(""), aipe::BadInput);
  EXPECT_THROW(aipe::check_output_path(in.string(), {in.string()}), aipe::BadInput);
  // The same file under another name is still the input.
  fs::create_hard_link(in, d / "alias.json");
  EXPECT_THROW(aipe::check_output_path((d / "alias.json").string(), {in.string()}), aipe::BadInput);
  EXPECT_THROW(aipe::check_output_path((d / "." / "in.json").string(), {in.string()}), aipe::BadInput);
  EXPECT_NO_THROW(aipe::check_output_path((d / "out.json").string(), {in.string()}));
  EXPECT_FALSE(fs::exists(d / "out.json"));  // a check creates nothing
}

}  // namespace
