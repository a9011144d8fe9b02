#include "app.hpp"

#include <gtest/gtest.h>

#include <sstream>

#include "aipe/device.hpp"
#include "aipe/registry.hpp"

namespace {

struct Out {
  int code;
  std::string out, err;
};

Out run(std::vector<std::string> args) {
  std::ostringstream o, e;
  const int c = aipe::cli::run(args, o, e);
  return {c, o.str(), e.str()};
}

bool have_gpu() { return !aipe::gpu_unavailable_reason().has_value(); }

}  // namespace

TEST(Cli, NoSubcommandIsUsageError) {
  const Out r = run({});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--help"), std::string::npos);
}

TEST(Cli, UnknownSubcommandOrFlag) {
  EXPECT_EQ(run({"frobnicate"}).code, 2);
  const Out r = run({"run", "--frobnicate"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("frobnicate"), std::string::npos);
}

TEST(Cli, HelpAndVersionExitZero) {
  EXPECT_EQ(run({"--help"}).code, 0);
  const Out v = run({"--version"});
  EXPECT_EQ(v.code, 0);
  EXPECT_NE((v.out + v.err).find("aipe "), std::string::npos);
}

TEST(Cli, ListWorksWithoutGpu) {
  const Out r = run({"list"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("ch01/measurement_pitfalls"), std::string::npos);
  EXPECT_NE(r.out.find("ch01/batched_gemm"), std::string::npos);
  const Out v = run({"list", "-v", "ch01/batched_gemm"});
  EXPECT_EQ(v.code, 0);
  EXPECT_NE(v.out.find("strided_batched"), std::string::npos);
  EXPECT_EQ(v.out.find("measurement_pitfalls"), std::string::npos);
}

TEST(Cli, UnknownExampleSuggests) {
  for (const char* cmd : {"list", "run"}) {
    const Out r = run({cmd, "ch01/batched_gem"});
    EXPECT_EQ(r.code, 2) << cmd;
    EXPECT_NE(r.err.find("unknown example 'ch01/batched_gem'"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("did you mean: ch01/batched_gemm"), std::string::npos) << r.err;
  }
}

TEST(Cli, BadSizesAreUsageErrors) {
  Out r = run({"run", "ch01/measurement_pitfalls", "--size", "n=abc"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("bad --size"), std::string::npos) << r.err;
  r = run({"run", "ch01/measurement_pitfalls", "--size", "bogus=4"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("sizes: n"), std::string::npos) << r.err;
  r = run({"run", "ch01/measurement_pitfalls", "--size", "n=0"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("out of range"), std::string::npos) << r.err;
  r = run({"run", "ch01/measurement_pitfalls", "--size", "n"});
  EXPECT_EQ(r.code, 2);
}

TEST(Cli, ProfileAndTraceReportAnUnknownExampleBeforeAnyMissingTool) {
  for (const char* cmd : {"profile", "trace"}) {
    const Out r = run({cmd, "ch01/batched_gem"});
    EXPECT_EQ(r.code, 2) << cmd << ": " << r.err;
    EXPECT_NE(r.err.find("did you mean: ch01/batched_gemm"), std::string::npos) << r.err;
  }
}

TEST(Cli, UnknownVariantNamesTheNearest) {
  const Out r = run({"run", "ch01/batched_gemm", "--variant", "strided_batch"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("nearest: strided_batched"), std::string::npos) << r.err;
}

TEST(Cli, ConflictingPresetsAndBadNumbers) {
  EXPECT_EQ(run({"run", "ch01", "--quick", "--small"}).code, 2);
  EXPECT_EQ(run({"run", "ch01", "--min-time", "-1"}).code, 2);
  EXPECT_EQ(run({"run", "ch01", "--seed", "x"}).code, 2);
}

TEST(Cli, UnwritableOutputFailsBeforeRunning) {
  const Out r = run({"run", "ch01", "--json", "/nonexistent-dir/x.json"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("cannot write"), std::string::npos);
}

TEST(Cli, RunWithoutGpuExits3) {
  if (have_gpu()) GTEST_SKIP() << "a GPU is present: the no-GPU path cannot be exercised here";
  const Out r = run({"run", "ch01"});
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.err.find("no usable CUDA GPU"), std::string::npos) << r.err;
  EXPECT_EQ(run({"info"}).code, 3);
}

namespace {

// An example with a choice axis, registered for one test and removed after it.
struct ChoiceUnderTest final : aipe::Example {
  aipe::ExampleInfo info() const override {
    return {.id = "ch00/choice_under_test",
            .title = "a choice axis",
            .teaches = "choice axes on the command line",
            .axes = {{.name = "n", .def = 64, .quick = 32, .small = 7, .help = "elements"},
                     aipe::Axis::choice("mask", {"none", "causal"}, "causal", "attention mask", "none")}};
  }
  std::vector<aipe::Variant> variants() override { return {{"only", "s", [](cudaStream_t) {}}}; }
  void setup(aipe::Context&) override {}
  aipe::Work work() const override { return {}; }
  aipe::VerifyResult verify(aipe::Context&) override { return {}; }
};

struct TemporaryExample {
  TemporaryExample() {
    aipe::Registry::instance().add([] { return std::unique_ptr<aipe::Example>(new ChoiceUnderTest()); },
                                   "examples/ch00_test/choice_under_test.cu");
  }
  ~TemporaryExample() { aipe::Registry::instance().remove("ch00/choice_under_test"); }
};

}  // namespace

TEST(Cli, ListShowsTheChoicesOfAChoiceAxis) {
  const TemporaryExample t;
  const Out r = run({"list", "-v", "ch00/choice_under_test"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("n=64 (elements)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("mask=causal (attention mask; one of none, causal)"), std::string::npos) << r.out;
}

TEST(Cli, ABadChoiceIsAUsageErrorNamingTheValidOnes) {
  const TemporaryExample t;
  Out r = run({"run", "ch00/choice_under_test", "--size", "mask=diagonal"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("mask=diagonal is not a valid choice; mask is one of: none, causal"), std::string::npos) << r.err;
  r = run({"run", "ch00/choice_under_test", "--size", "mask="});
  EXPECT_EQ(r.code, 2) << "an empty choice is not a choice";
  r = run({"run", "ch00/choice_under_test", "--size", "n=causal"});
  EXPECT_EQ(r.code, 2) << "an integer axis still wants a number";
  EXPECT_NE(r.err.find("bad --size"), std::string::npos) << r.err;
  if (!have_gpu()) {
    // A valid choice passes validation and reaches the GPU check (exit 3 without one).
    r = run({"run", "ch00/choice_under_test", "--size", "mask=none", "--size", "n=9"});
    EXPECT_EQ(r.code, 3) << r.err;
  }
}
