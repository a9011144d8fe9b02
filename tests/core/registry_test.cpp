#include "aipe/registry.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <set>

using namespace aipe;

TEST(Registry, ExamplesAreRegistered) {
  EXPECT_GE(Registry::instance().entries().size(), 3u);
  EXPECT_NE(Registry::instance().find("ch01/measurement_pitfalls"), nullptr);
}

TEST(Registry, EveryExampleIsWellFormed) {
  for (const auto& e : Registry::instance().entries()) {
    SCOPED_TRACE(e.info.id);
    EXPECT_TRUE(valid_example_id(e.info.id));
    EXPECT_FALSE(e.info.title.empty());
    EXPECT_GE(e.info.teaches.size(), 40u) << "the one-paragraph 'what this teaches' is missing";
    // The file lives in examples/chNN_topic/NAME.cu for id chNN/NAME.
    const std::filesystem::path p(e.source_file);
    const std::string chapter = e.info.id.substr(0, 4);
    EXPECT_EQ(p.stem().string(), e.info.id.substr(5));
    EXPECT_EQ(p.parent_path().filename().string().substr(0, 5), chapter + "_");
    EXPECT_FALSE(e.variant_names.empty());
    for (std::size_t i = 0; i < e.variant_names.size(); ++i) {
      EXPECT_TRUE(std::regex_match(e.variant_names[i], std::regex("[a-z0-9_]+"))) << e.variant_names[i];
      EXPECT_FALSE(e.variant_summaries[i].empty()) << e.variant_names[i];
    }
    for (const auto& a : e.info.axes) {
      SCOPED_TRACE(a.name);
      EXPECT_TRUE(a.def >= a.min && a.def <= a.max);
      EXPECT_TRUE(a.quick >= a.min && a.quick <= a.max);
      EXPECT_TRUE(a.small >= a.min && a.small <= a.max);
      if (!a.is_choice()) EXPECT_LE(a.small, a.def) << "the test size should not exceed the default";
      EXPECT_FALSE(a.help.empty());
    }
    // A library rung is never the baseline: a ladder starts from its own naive version.
    if (e.variant_names.size() > 1) EXPECT_FALSE(is_library_variant(e.variant_names.front()));
  }
}

TEST(Registry, MatchByIdPrefixAndGlob) {
  const Registry& r = Registry::instance();
  EXPECT_EQ(r.match("ch01/batched_gemm").size(), 1u);
  const auto ch01 = r.match("ch01");
  EXPECT_GE(ch01.size(), 3u);
  EXPECT_EQ(r.match("ch01/").size(), ch01.size());
  EXPECT_TRUE(r.match("ch0").empty()) << "a prefix must end at a '/' boundary";
  EXPECT_TRUE(r.match("ch01/batched").empty());
  EXPECT_EQ(r.match("*batched*").size(), 1u);
  EXPECT_EQ(r.match("ch0?/launch_overhead").size(), 1u);
  EXPECT_EQ(r.match("all").size(), r.entries().size());
}

TEST(Registry, SuggestsNearestIds) {
  const auto s = Registry::instance().suggest("ch01/batched_gem");
  ASSERT_FALSE(s.empty());
  EXPECT_EQ(s.front(), "ch01/batched_gemm");
  const auto t = Registry::instance().suggest("launch_overhed");
  ASSERT_FALSE(t.empty());
  EXPECT_EQ(t.front(), "ch01/launch_overhead");
  EXPECT_TRUE(Registry::instance().suggest("zzzzzzzzzzzzzzzzzzzzzz").empty());
}

TEST(Registry, IdMatchesIsTheMatchRule) {
  EXPECT_TRUE(id_matches("ch07", "ch07/copy"));
  EXPECT_TRUE(id_matches("ch07/", "ch07/copy"));
  EXPECT_FALSE(id_matches("ch0", "ch07/copy"));
  EXPECT_FALSE(id_matches("ch07/co", "ch07/copy"));
  EXPECT_TRUE(id_matches("*copy", "ch07/copy"));
  EXPECT_TRUE(id_matches("all", "ch07/copy"));
  EXPECT_TRUE(id_matches("ch07/copy", "ch07/copy"));
}

TEST(Registry, GlobMatcher) {
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("a*c", "abbbc"));
  EXPECT_FALSE(glob_match("a*c", "abbb"));
  EXPECT_TRUE(glob_match("a?c", "abc"));
  EXPECT_FALSE(glob_match("a?c", "ac"));
  EXPECT_TRUE(glob_match("*a*b*", "xxaxxbxx"));
}

TEST(Registry, EditDistance) {
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("same", "same"), 0u);
}

TEST(Registry, NearestByDistanceThenName) {
  const std::vector<std::string> names = {"trace", "run", "report", "peak", "profile"};
  EXPECT_EQ(nearest("rnu", names, 2), (std::vector<std::string>{"run", "peak"}));
  EXPECT_EQ(nearest("reprot", names, 1, 3), (std::vector<std::string>{"report"}));
  EXPECT_TRUE(nearest("zzzzzzzzzz", names, 1, 3).empty());
  EXPECT_TRUE(nearest("run", {}, 3).empty());
}

namespace {
struct Dup final : Example {
  std::string id;
  std::vector<std::string> names;
  ExampleInfo info() const override { return {id, "t", "teaches", {}, {}}; }
  std::vector<Variant> variants() override {
    std::vector<Variant> v;
    for (const auto& n : names) v.push_back({n, "s", [](cudaStream_t) {}});
    return v;
  }
  void setup(Context&) override {}
  Work work() const override { return {}; }
  VerifyResult verify(Context&) override { return {}; }
};
}  // namespace

TEST(Registry, RejectsMalformedRegistrations) {
  Registry r;  // a private registry, not the global one
  auto make = [](std::string id, std::vector<std::string> names) {
    return [=] {
      auto d = std::make_unique<Dup>();
      d->id = id;
      d->names = names;
      return std::unique_ptr<Example>(std::move(d));
    };
  };
  EXPECT_THROW(r.add(make("Ch1/x", {"a"}), "f"), std::logic_error);
  EXPECT_THROW(r.add(make("ch01/x", {"a", "a"}), "f"), std::logic_error);
  EXPECT_THROW(r.add(make("ch01/x", {}), "f"), std::logic_error);
  r.add(make("ch01/x", {"a", "b"}), "f");
  EXPECT_THROW(r.add(make("ch01/x", {"a"}), "f"), std::logic_error);
  EXPECT_EQ(r.entries().size(), 1u);
}
