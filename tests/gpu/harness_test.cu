// The harness measured against itself: a kernel of known duration, a variant that is wrong on
// purpose, an example that runs out of memory.
#include <gtest/gtest.h>

#include "aipe/buffer.hpp"
#include "aipe/measure.hpp"
#include "aipe/random.hpp"
#include "aipe/runner.hpp"

using namespace aipe;

namespace {

__global__ void spin_for(unsigned long long ns) {
  unsigned long long t0, t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
  do {
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  } while (t - t0 < ns);
}

__global__ void write_prefix(float* out, const float* in, std::size_t n, std::size_t written) {
  const std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;
  if (i < written && i < n) out[i] = in[i];
}

#define SKIP_WITHOUT_GPU() \
  if (auto why = gpu_unavailable_reason()) GTEST_SKIP() << *why

// An example with a correct copy and two broken ones: one skips the tail, one writes nothing.
struct CopyUnderTest final : Example {
  std::size_t n = 0;
  DeviceBuffer<float> in, out;
  std::vector<float> ref;
  ExampleInfo info() const override {
    return {"ch00/copy_under_test", "test", "a copy with broken rungs", {{"n", 100003, 100003, 100003, "elements"}}, {}};
  }
  std::vector<Variant> variants() override {
    auto launch = [this](std::size_t written) {
      return [this, written](cudaStream_t s) {
        write_prefix<<<unsigned((n + 255) / 256), 256, 0, s>>>(out.get(), in.get(), n, written);
      };
    };
    return {{"good", "copies everything", launch(SIZE_MAX)},
            {"misses_tail", "forgets the last element", [this, launch](cudaStream_t s) { launch(n - 1)(s); }},
            {"writes_nothing", "writes nothing", launch(0)}};
  }
  void setup(Context& ctx) override {
    n = static_cast<std::size_t>(ctx.size("n"));
    in = DeviceBuffer<float>(n);
    out = DeviceBuffer<float>(n);
    fill_uniform(in.get(), n, ctx.seed(), -1, 1, ctx.stream());
    ref.resize(n);
    for (std::size_t i = 0; i < n; ++i) ref[i] = uniform_at(ctx.seed(), i, -1, 1);
    ctx.output(out.get(), out.bytes());
  }
  Work work() const override { return {8.0 * n, 0, ComputeUnit::none}; }
  VerifyResult verify(Context& ctx) override {
    std::vector<float> h(n);
    AIPE_CUDA(cudaMemcpyAsync(h.data(), out.get(), out.bytes(), cudaMemcpyDeviceToHost, ctx.stream()));
    AIPE_CUDA(cudaStreamSynchronize(ctx.stream()));
    return compare(std::span<const float>(h), std::span<const float>(ref), tolerance_for(DType::exact));
  }
};

struct Huge final : Example {
  DeviceBuffer<float> buf;
  ExampleInfo info() const override { return {"ch00/huge", "test", "asks for too much memory", {}, {}}; }
  std::vector<Variant> variants() override { return {{"only", "never runs", [](cudaStream_t) {}}}; }
  void setup(Context&) override { buf = DeviceBuffer<float>(std::size_t(1) << 46); }  // 256 TiB
  Work work() const override { return {}; }
  VerifyResult verify(Context&) override { return {}; }
};

// A launch that consumes state: it records whether the counter was reset to 0 before it (a KV cache
// or a queue head that prepare() resets), then advances the counter. `stale` counts launches that
// found it not reset; `seen` is the counter value the last launch found.
__global__ void consume_counter(int* counter, int* stale, int* seen) {
  const int c = *counter;
  if (c != 0) atomicAdd(stale, 1);
  *seen = c;
  *counter = c + 1;
}

// Two rungs of one stateful launch: one resets the state in prepare(), one does not. setup() leaves
// the counter at 7, so only a reset before the verification run gives seen == 0.
struct StatefulUnderTest final : Example {
  DeviceBuffer<int> counter{1}, stale{1}, seen{1};
  int prepares = 0;
  ExampleInfo info() const override {
    return {.id = "ch00/stateful_under_test",
            .title = "test",
            .teaches = "a rung whose state prepare() resets",
            .axes = {Axis::choice("mode", {"plain", "fancy"}, "plain", "a choice the setup records")}};
  }
  std::string mode;
  std::vector<Variant> variants() override {
    auto launch = [this](cudaStream_t s) { consume_counter<<<1, 1, 0, s>>>(counter.get(), stale.get(), seen.get()); };
    return {{.name = "prepared",
             .summary = "resets the counter before every launch",
             .launch = launch,
             .prepare =
                 [this](cudaStream_t s) {
                   ++prepares;
                   AIPE_CUDA(cudaMemsetAsync(counter.get(), 0, sizeof(int), s));
                 },
             .metrics = [this](double, std::map<std::string, double>& out) { out["prepares"] = prepares; }},
            {.name = "unprepared", .summary = "never resets it", .launch = launch}};
  }
  void setup(Context& ctx) override {
    mode = ctx.choice("mode");
    const int seven = 7;
    AIPE_CUDA(cudaMemcpyAsync(counter.get(), &seven, sizeof seven, cudaMemcpyHostToDevice, ctx.stream()));
    AIPE_CUDA(cudaMemsetAsync(stale.get(), 0, sizeof(int), ctx.stream()));
    ctx.output(seen.get(), seen.bytes());
  }
  Work work() const override { return {4.0, 0, ComputeUnit::none}; }
  VerifyResult verify(Context& ctx) override {
    int got = -1;
    AIPE_CUDA(cudaMemcpyAsync(&got, seen.get(), sizeof got, cudaMemcpyDeviceToHost, ctx.stream()));
    AIPE_CUDA(cudaStreamSynchronize(ctx.stream()));
    return compare_scalar(got, 0, tolerance_for(DType::exact));
  }
};

int read_int(const DeviceBuffer<int>& b) {
  int v = 0;
  AIPE_CUDA(cudaMemcpy(&v, b.get(), sizeof v, cudaMemcpyDeviceToHost));
  return v;
}

RegistryEntry entry_for(std::function<std::unique_ptr<Example>()> make) {
  RegistryEntry e;
  auto ex = make();
  e.info = ex->info();
  for (const auto& v : ex->variants()) e.variant_names.push_back(v.name);
  e.make = std::move(make);
  return e;
}

}  // namespace

TEST(Harness, TimesAKernelOfKnownDuration) {
  SKIP_WITHOUT_GPU();
  const DeviceInfo d = query_device(0);
  Stream s;
  Timer t(d, s);
  StopCriteria c;
  c.min_samples = 10;
  c.budget_s = 1;
  for (double us : {50.0, 500.0}) {
    const Measurement m =
        t.measure([us](cudaStream_t st) { spin_for<<<1, 1, 0, st>>>(static_cast<unsigned long long>(us * 1e3)); },
                  Timing::standard, true, c);
    // The kernel spins for `us` of device time; the events must see that much, plus at most the
    // launch's own few microseconds.
    EXPECT_GE(m.time_ms.median * 1e3, us) << "events report less than the kernel provably ran";
    EXPECT_LE(m.time_ms.median * 1e3, us + 15.0) << "events include more than the kernel";
    EXPECT_TRUE(m.warning.empty()) << m.warning;
    EXPECT_GE(m.time_ms.n, 10u);
  }
}

TEST(Harness, HostClockWithoutSyncUnderstatesALongKernel) {
  SKIP_WITHOUT_GPU();
  const DeviceInfo d = query_device(0);
  Stream s;
  Timer t(d, s);
  StopCriteria c;
  c.min_samples = 5;
  c.budget_s = 0.5;
  const Measurement m = t.measure([](cudaStream_t st) { spin_for<<<1, 1, 0, st>>>(2000000); },  // 2 ms
                                  Timing::host_clock_no_sync, true, c);
  EXPECT_LT(m.time_ms.median, 1.0) << "the enqueue of a 2 ms kernel should take far less than 1 ms";
}

TEST(Harness, WrongVariantsFailWithoutTimingAndTheGoodOnePasses) {
  SKIP_WITHOUT_GPU();
  const RegistryEntry e = entry_for([] { return std::unique_ptr<Example>(new CopyUnderTest()); });
  RunOptions o;
  o.stop = stop_criteria_for(SizePreset::small);
  const RunReport r = run_examples({&e}, o);
  ASSERT_EQ(r.results.size(), 3u);
  EXPECT_EQ(r.results[0].status, Status::passed) << r.results[0].reason;
  EXPECT_TRUE(r.results[0].timed);
  EXPECT_GT(r.results[0].gbps, 0);
  for (int i : {1, 2}) {
    SCOPED_TRACE(r.results[i].variant);
    EXPECT_EQ(r.results[i].status, Status::failed);
    EXPECT_FALSE(r.results[i].timed);
    EXPECT_EQ(r.results[i].median_ms, 0);
    EXPECT_NE(r.results[i].reason.find("nan"), std::string::npos) << "poisoned outputs read back as NaN: " << r.results[i].reason;
  }
  EXPECT_NE(r.results[1].reason.find("1 of 100003"), std::string::npos) << r.results[1].reason;
  EXPECT_NE(r.results[1].reason.find("[100002]"), std::string::npos) << r.results[1].reason;
}

TEST(Harness, OutOfMemoryIsAClearFailureAndTheNextExampleStillRuns) {
  SKIP_WITHOUT_GPU();
  const RegistryEntry huge = entry_for([] { return std::unique_ptr<Example>(new Huge()); });
  const RegistryEntry copy = entry_for([] { return std::unique_ptr<Example>(new CopyUnderTest()); });
  RunOptions o;
  o.verify_only = true;
  const RunReport r = run_examples({&huge, &copy}, o);
  ASSERT_EQ(r.results.size(), 4u);
  EXPECT_EQ(r.results[0].status, Status::failed);
  EXPECT_NE(r.results[0].reason.find("out of device memory"), std::string::npos) << r.results[0].reason;
  EXPECT_EQ(r.results[1].status, Status::passed) << r.results[1].reason;
}

TEST(Harness, L2FlushEvictsAWorkingSetThatFitsInL2) {
  SKIP_WITHOUT_GPU();
  const DeviceInfo d = query_device(0);
  // A working set of a quarter of the L2: hot, it is served from L2; flushed, from DRAM.
  const std::size_t n = d.l2_bytes / 4 / sizeof(float);
  DeviceBuffer<float> a(n), b(n);
  fill_uniform(a.get(), n, 1, -1, 1, nullptr);
  AIPE_CUDA(cudaDeviceSynchronize());
  Stream s;
  Timer t(d, s);
  StopCriteria c;
  c.min_samples = 20;
  c.budget_s = 1;
  auto copy = [&](cudaStream_t st) {
    AIPE_CUDA(cudaMemcpyAsync(b.get(), a.get(), n * sizeof(float), cudaMemcpyDeviceToDevice, st));
  };
  const double hot = t.measure(copy, Timing::hot_l2, true, c).time_ms.median;
  const double cold = t.measure(copy, Timing::standard, true, c).time_ms.median;
  EXPECT_GT(cold, hot) << "flushing the L2 did not make an L2-resident copy slower";
}

TEST(Harness, PrepareRunsBeforeEveryLaunchOutsideTheTimedRegion) {
  SKIP_WITHOUT_GPU();
  const DeviceInfo d = query_device(0);
  Stream s;
  Timer t(d, s);
  StopCriteria c;
  c.min_samples = 10;
  c.budget_s = 1;
  DeviceBuffer<int> counter(1), stale(1), seen(1);
  AIPE_CUDA(cudaMemset(stale.get(), 0, sizeof(int)));
  int prepares = 0, launches = 0;
  auto launch = [&](cudaStream_t st) {
    ++launches;
    consume_counter<<<1, 1, 0, st>>>(counter.get(), stale.get(), seen.get());
  };
  // Each prepare also spins for 2 ms: none of that may reach a sample.
  auto prepare = [&](cudaStream_t st) {
    ++prepares;
    AIPE_CUDA(cudaMemsetAsync(counter.get(), 0, sizeof(int), st));
    spin_for<<<1, 1, 0, st>>>(2000000);
  };
  for (const Timing timing : {Timing::standard, Timing::hot_l2, Timing::host_clock_no_sync}) {
    for (const bool blocking : {true, false}) {
      SCOPED_TRACE(std::string(to_string(timing)) + (blocking ? " blocking" : " not blocking"));
      prepares = launches = 0;
      AIPE_CUDA(cudaMemset(counter.get(), 0, sizeof(int)));
      const Measurement m = t.measure(launch, timing, blocking, c, true, prepare);
      EXPECT_EQ(read_int(stale), 0) << "a launch found the state of the previous one: prepare did not run before it";
      EXPECT_EQ(prepares, launches);
      EXPECT_EQ(static_cast<std::size_t>(launches), m.warmup_launches + m.time_ms.n);
      EXPECT_LT(m.time_ms.median, 1.0) << "prepare's 2 ms were timed";
      EXPECT_TRUE(m.warning.empty()) << m.warning;
    }
  }
  // The control: without prepare the same launches do see each other's state, so the check above can fail.
  AIPE_CUDA(cudaMemset(counter.get(), 0, sizeof(int)));
  t.measure(launch, Timing::standard, true, c);
  EXPECT_GT(read_int(stale), 0);
}

TEST(Harness, RunnerPreparesBeforeVerificationAndUsesTheRungsMetrics) {
  SKIP_WITHOUT_GPU();
  const RegistryEntry e = entry_for([] { return std::unique_ptr<Example>(new StatefulUnderTest()); });
  RunOptions o;
  o.stop = stop_criteria_for(SizePreset::small);
  o.choices["mode"] = "fancy";
  const RunReport r = run_examples({&e}, o);
  ASSERT_EQ(r.results.size(), 2u);
  const Result& prepared = r.results[0];
  EXPECT_EQ(prepared.status, Status::passed) << prepared.reason;
  EXPECT_TRUE(prepared.timed);
  // One prepare for the verification run, then one per warm-up launch and per sample.
  ASSERT_TRUE(prepared.metrics.count("prepares"));
  EXPECT_GE(prepared.metrics.at("prepares"), 1.0 + 1 + static_cast<double>(prepared.samples));
  EXPECT_EQ(prepared.choices, (std::map<std::string, std::string>{{"mode", "fancy"}}));
  EXPECT_TRUE(prepared.sizes.empty());
  const Result& unprepared = r.results[1];
  EXPECT_EQ(unprepared.status, Status::failed) << "without prepare the verification run sees the stale counter";
  EXPECT_FALSE(unprepared.timed);
}

