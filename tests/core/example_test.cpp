// The example-facing API on the CPU: axes (integer and choice) built with designated initializers and
// Axis::choice, variants and requirements by field name, how a run resolves sizes and choices, the
// registry's checks on choice axes, and the owning buffer template's ownership rules.
#include <gtest/gtest.h>

#include <regex>
#include <type_traits>

#include "aipe/buffer.hpp"
#include "aipe/example.hpp"
#include "aipe/registry.hpp"
#include "aipe/runner.hpp"
#include "aipe/version.hpp"
#include "fixtures/devices.hpp"

using namespace aipe;

namespace {

const Axis kN{.name = "n", .def = 4096, .quick = 1024, .small = 37, .help = "elements", .max = 1 << 20};
const Axis kMask = Axis::choice("mask", {"none", "causal", "sliding"}, "causal", "attention mask", "none", "sliding");

ExampleInfo info_with(std::vector<Axis> axes) {
  return {.id = "ch00/axes_under_test", .title = "t", .teaches = "axes", .axes = std::move(axes)};
}

}  // namespace

TEST(Axis, DesignatedInitializersNameEveryField) {
  EXPECT_EQ(kN.name, "n");
  EXPECT_EQ(kN.def, 4096);
  EXPECT_EQ(kN.quick, 1024);
  EXPECT_EQ(kN.small, 37);
  EXPECT_EQ(kN.min, 1) << "an unnamed field keeps its default";
  EXPECT_EQ(kN.max, 1 << 20);
  EXPECT_FALSE(kN.is_choice());
  // The positional spelling still compiles and means the same.
  const Axis old{"n", 4096, 1024, 37, "elements", 1, 1 << 20};
  EXPECT_EQ(old.max, kN.max);
  EXPECT_EQ(old.preset(SizePreset::small), 37);
}

TEST(Axis, ChoiceAxisHoldsItsPresetsAsIndices) {
  EXPECT_TRUE(kMask.is_choice());
  EXPECT_EQ(kMask.choice_list(), "none, causal, sliding");
  EXPECT_EQ(kMask.choices[kMask.preset(SizePreset::def)], "causal");
  EXPECT_EQ(kMask.choices[kMask.preset(SizePreset::quick)], "none");
  EXPECT_EQ(kMask.choices[kMask.preset(SizePreset::small)], "sliding");
  EXPECT_EQ(kMask.min, 0);
  EXPECT_EQ(kMask.max, 2);
  const Axis same = Axis::choice("layout", {"row", "col"}, "col", "layout");
  EXPECT_EQ(same.quick, same.def) << "quick and small default to def";
  EXPECT_EQ(same.small, same.def);
  EXPECT_THROW(Axis::choice("mask", {"none", "causal"}, "full", "m"), std::logic_error);
  EXPECT_THROW(Axis::choice("mask", {"none", "causal"}, "none", "m", "bogus"), std::logic_error);
}

TEST(Variant, DesignatedInitializersAndThePositionalSpelling) {
  int prepared = 0;
  const Variant v{.name = "queued",
                  .summary = "s",
                  .launch = [](cudaStream_t) {},
                  .blocking = false,
                  .budget_s = 0.5,
                  .requires_ = {.min_cc = 90, .sm90a = true},
                  .prepare = [&](cudaStream_t) { ++prepared; },
                  .metrics = [](double ms, std::map<std::string, double>& out) { out["twice"] = 2 * ms; }};
  EXPECT_EQ(v.timing, Timing::standard);
  EXPECT_FALSE(v.blocking);
  EXPECT_TRUE(v.flush_l2);
  EXPECT_EQ(v.requires_.min_cc, 90);
  EXPECT_TRUE(v.requires_.sm90a);
  EXPECT_EQ(v.requires_.min_gpus, 1);
  v.prepare(nullptr);
  EXPECT_EQ(prepared, 1);
  std::map<std::string, double> m;
  v.metrics(1.5, m);
  EXPECT_EQ(m.at("twice"), 3.0);
  const Variant old{"plain", "s", [](cudaStream_t) {}};
  EXPECT_FALSE(old.prepare);
  EXPECT_FALSE(old.metrics);
  EXPECT_TRUE(old.blocking);
}

TEST(Requirements, ByName) {
  const Requirements r{.min_gpus = 2};
  EXPECT_EQ(r.min_cc, 0);
  EXPECT_FALSE(r.sm90a);
  EXPECT_EQ(r.min_gpus, 2);
  EXPECT_EQ(r.min_free_bytes, 0u);
}

TEST(ResolveSizes, ChoiceAxesResolveApartFromIntegerOnes) {
  const ExampleInfo info = info_with({kN, kMask});
  RunOptions o;
  EXPECT_EQ(resolve_sizes(info, o), (std::map<std::string, std::int64_t>{{"n", 4096}}));
  EXPECT_EQ(resolve_choices(info, o), (std::map<std::string, std::string>{{"mask", "causal"}}));
  o.preset = SizePreset::small;
  EXPECT_EQ(resolve_choices(info, o).at("mask"), "sliding");
  o.choices["mask"] = "none";
  EXPECT_EQ(resolve_choices(info, o).at("mask"), "none");
  o.choices["other"] = "x";  // another example's axis: ignored here
  EXPECT_EQ(resolve_choices(info, o).size(), 1u);
}

TEST(ResolveSizes, ABadChoiceNamesTheValidOnes) {
  RunOptions o;
  o.choices["mask"] = "diagonal";
  try {
    resolve_choices(info_with({kMask}), o);
    FAIL() << "an invalid choice was accepted";
  } catch (const BadInput& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("ch00/axes_under_test: mask=diagonal is not a valid choice"), std::string::npos) << m;
    EXPECT_NE(m.find("one of: none, causal, sliding"), std::string::npos) << m;
  }
}

TEST(Context, ReadsChoicesAndRefusesTheWrongKindOfAxis) {
  const DeviceInfo dev = fixtures::h100_sxm();
  const Context ctx(dev, {{"n", 8}}, 1, nullptr, {{"mask", "causal"}});
  EXPECT_EQ(ctx.size("n"), 8);
  EXPECT_EQ(ctx.choice("mask"), "causal");
  EXPECT_THROW(ctx.size("mask"), std::logic_error);
  EXPECT_THROW(ctx.choice("n"), std::logic_error);
  EXPECT_THROW(ctx.choice("layout"), std::logic_error);
}

namespace {

struct AxesUnderTest final : Example {
  std::vector<Axis> axes;
  explicit AxesUnderTest(std::vector<Axis> a) : axes(std::move(a)) {}
  ExampleInfo info() const override { return info_with(axes); }
  std::vector<Variant> variants() override { return {{"only", "s", [](cudaStream_t) {}}}; }
  void setup(Context&) override {}
  Work work() const override { return {}; }
  VerifyResult verify(Context&) override { return {}; }
};

void add_to(Registry& r, std::vector<Axis> axes) {
  r.add([axes] { return std::unique_ptr<Example>(new AxesUnderTest(axes)); }, "examples/ch00_test/axes_under_test.cu");
}

}  // namespace

TEST(Registry, ChecksChoiceAxes) {
  {
    Registry r;
    add_to(r, {kN, kMask});
    ASSERT_NE(r.find("ch00/axes_under_test"), nullptr);
    EXPECT_TRUE(r.remove("ch00/axes_under_test"));
    EXPECT_EQ(r.find("ch00/axes_under_test"), nullptr);
    EXPECT_FALSE(r.remove("ch00/axes_under_test"));
  }
  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{"a", "a"}, {"a", ""}, {"a=b", "c"}, {"a,b", "c"}, {"a b", "c"}}) {
    SCOPED_TRACE(bad[0] + "|" + bad[1]);
    Axis a = Axis::choice("mode", bad, bad[0], "m");
    Registry r;
    EXPECT_THROW(add_to(r, {a}), std::logic_error);
  }
  Axis out_of_range = kMask;
  out_of_range.small = 3;
  Registry r;
  EXPECT_THROW(add_to(r, {out_of_range}), std::logic_error);
}

namespace {

// A memory policy that counts, so the owning template's rules are checked without a GPU.
struct CountingMemory {
  static inline int live = 0;
  static inline unsigned last_flags = 0;
  static void* allocate(std::size_t bytes, unsigned flags = 0) {
    ++live;
    last_flags = flags;
    return ::operator new(bytes);
  }
  static void release(void* p) {
    --live;
    ::operator delete(p);
  }
  static constexpr bool host_accessible = true;
};

template <class B>
concept HostIndexable = requires(B b) { b[0]; };

}  // namespace

TEST(OwningBuffer, OwnsMovesAndFreesOnce) {
  using Buf = OwningBuffer<int, CountingMemory>;
  static_assert(!std::is_copy_constructible_v<Buf> && std::is_nothrow_move_constructible_v<Buf>);
  {
    Buf a(10, 7u);
    EXPECT_EQ(CountingMemory::live, 1);
    EXPECT_EQ(CountingMemory::last_flags, 7u) << "extra arguments reach the allocator";
    EXPECT_EQ(a.size(), 10u);
    EXPECT_EQ(a.bytes(), 40u);
    a[9] = 3;
    Buf b(std::move(a));
    EXPECT_EQ(a.get(), nullptr);
    EXPECT_EQ(a.size(), 0u);
    EXPECT_EQ(b[9], 3);
    Buf c(5);
    EXPECT_EQ(CountingMemory::live, 2);
    c = std::move(b);  // c's own allocation is released
    EXPECT_EQ(CountingMemory::live, 1);
    EXPECT_EQ(c.size(), 10u);
    c.reset();
    EXPECT_EQ(CountingMemory::live, 0);
    c.reset();  // twice is harmless
  }
  EXPECT_EQ(CountingMemory::live, 0);
  Buf empty(0);
  EXPECT_EQ(CountingMemory::live, 0) << "a zero-length buffer allocates nothing";
  // Device memory is not indexable from the host; pinned memory is.
  static_assert(!HostIndexable<DeviceBuffer<int>>);
  static_assert(HostIndexable<PinnedBuffer<int>>);
  const DeviceBuffer<float> none(0);  // no CUDA call for an empty buffer: fine without a GPU
  EXPECT_EQ(none.get(), nullptr);
}

TEST(Version, TimestampIsIso8601Utc) {
  EXPECT_TRUE(std::regex_match(now_iso8601(), std::regex(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z)"))) << now_iso8601();
}
