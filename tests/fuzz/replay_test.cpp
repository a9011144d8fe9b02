// Every input that once broke a fuzz target (tests/fuzz/regressions/TARGET/*) is replayed through
// that target, each in a child process with a deadline: a crash, an abort or a hang fails the test.
// The seed corpus (docs/results, tests/golden) is replayed too, so the targets run in every CPU test run.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "child_process.hpp"
#include "targets.hpp"

namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

void replay(const std::string& target, const fs::path& file) {
  const std::string in = slurp(file);
  const auto r = aipe::test::run_in_child(
      [&] { return aipe::fuzz::run_target(target, reinterpret_cast<const std::uint8_t*>(in.data()), in.size()); }, 30);
  EXPECT_FALSE(r.timed_out) << target << " hung on " << file;
  EXPECT_FALSE(r.signaled) << target << " crashed or aborted on " << file;
  EXPECT_EQ(r.exit_code, 0) << target << " on " << file;
}

std::vector<fs::path> files_in(const fs::path& dir) {
  std::vector<fs::path> v;
  if (fs::is_directory(dir))
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_regular_file()) v.push_back(e.path());
  std::sort(v.begin(), v.end());
  return v;
}

TEST(FuzzRegressions, EveryKeptFailureReplaysCleanly) {
  const fs::path root = fs::path(AIPE_SOURCE_DIR) / "tests/fuzz/regressions";
  std::size_t n = 0;
  for (const auto& t : aipe::fuzz::target_names())
    for (const auto& f : files_in(root / t)) {
      replay(t, f);
      ++n;
    }
  // Every target has kept inputs: the folders are the record of what broke each one.
  for (const auto& t : aipe::fuzz::target_names()) EXPECT_FALSE(files_in(root / t).empty()) << "no regressions for " << t;
  EXPECT_GT(n, 0u);
}

TEST(FuzzRegressions, SeedCorpusReplaysCleanly) {
  std::vector<fs::path> seeds = files_in(fs::path(AIPE_SOURCE_DIR) / "docs/results");
  for (const auto& f : files_in(fs::path(AIPE_SOURCE_DIR) / "tests/golden")) seeds.push_back(f);
  ASSERT_GT(seeds.size(), 10u);
  for (const auto& t : aipe::fuzz::target_names())
    for (const auto& f : seeds) replay(t, f);
}

TEST(FuzzRegressions, UnknownTargetIsAnError) {
  EXPECT_THROW(aipe::fuzz::run_target("nope", nullptr, 0), std::invalid_argument);
}

}  // namespace
