#include "aipe/power.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

using namespace aipe;

namespace {

PowerSample sample(double mhz, double w, std::uint64_t reasons, bool known = true) {
  PowerSample s;
  s.sm_mhz = mhz;
  s.power_w = w;
  s.reasons = reasons;
  s.reasons_known = known;
  return s;
}

// Waits (without a fixed deadline that could be too short on a loaded machine) until pred holds.
template <class P>
bool eventually(P pred) {
  for (int i = 0; i < 20000; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

}  // namespace

TEST(PowerSummary, MediansAndFractions) {
  // An H100 at its power limit: the clock falls from 1980 MHz while the SW power cap is active.
  const auto s = summarize_power({
      sample(1980, 420.0, 0),
      sample(1500, 689.0, clock_event::sw_power_cap),
      sample(1515, 690.5, clock_event::sw_power_cap | clock_event::sw_thermal),
      sample(1485, 688.0, clock_event::sw_power_cap),
  });
  ASSERT_TRUE(s);
  EXPECT_EQ(s->samples, 4u);
  EXPECT_DOUBLE_EQ(s->sm_mhz, 1507.5);  // median of 1485, 1500, 1515, 1980
  EXPECT_DOUBLE_EQ(s->power_w, 688.5);  // median of 420, 688, 689, 690.5
  EXPECT_DOUBLE_EQ(s->power_capped, 0.75);
  EXPECT_DOUBLE_EQ(s->thermal, 0.25);
}

TEST(PowerSummary, EveryThermalBitCountsAndOthersDoNot) {
  const auto s = summarize_power({
      sample(1000, 300, clock_event::hw_thermal),
      sample(1000, 300, clock_event::sw_thermal),
      sample(1000, 300, clock_event::hw_slowdown | clock_event::hw_power_brake),
      sample(1000, 300, 0x1),  // GPU idle
  });
  ASSERT_TRUE(s);
  EXPECT_DOUBLE_EQ(s->thermal, 0.5);
  EXPECT_DOUBLE_EQ(s->power_capped, 0);
}

TEST(PowerSummary, FractionsCountOnlySamplesWithKnownReasons) {
  const auto s = summarize_power({
      sample(1500, 690, clock_event::sw_power_cap),
      sample(1500, 690, 0, false),
      sample(1500, 690, 0, false),
      sample(1980, 400, 0),
  });
  ASSERT_TRUE(s);
  EXPECT_EQ(s->samples, 4u);
  EXPECT_DOUBLE_EQ(s->power_capped, 0.5);

  const auto none = summarize_power({sample(1, 1, 0, false), sample(1, 1, 0, false), sample(1, 1, 0, false)});
  ASSERT_TRUE(none);
  EXPECT_DOUBLE_EQ(none->power_capped, 0);
  EXPECT_DOUBLE_EQ(none->thermal, 0);
}

TEST(PowerSummary, TooFewSamplesGiveNoSummary) {
  EXPECT_FALSE(summarize_power({}));
  EXPECT_FALSE(summarize_power({sample(1980, 500, 0), sample(1980, 500, 0)}));
  EXPECT_TRUE(summarize_power({sample(1980, 500, 0), sample(1980, 500, 0), sample(1980, 500, 0)}));
}

TEST(PowerMetrics, RoundedAndZeroFractionsLeftOut) {
  PowerSummary s;
  s.samples = 10;
  s.sm_mhz = 1507.5;
  s.power_w = 689.46;
  s.power_capped = 2.0 / 3.0;
  s.thermal = 0;
  std::map<std::string, double> m{{"ctas", 132}};
  add_power_metrics(s, m);
  EXPECT_DOUBLE_EQ(m.at("ctas"), 132);  // the example's own metrics stay
  EXPECT_DOUBLE_EQ(m.at("sm_mhz"), 1508);
  EXPECT_NEAR(m.at("power_w"), 689.5, 1e-9);
  EXPECT_NEAR(m.at("power_capped"), 0.67, 1e-9);
  EXPECT_EQ(m.count("thermal"), 0u);

  s.power_capped = 0.001;  // rounds to 0.00: left out too
  s.thermal = 0.25;
  std::map<std::string, double> m2;
  add_power_metrics(s, m2);
  EXPECT_EQ(m2.count("power_capped"), 0u);
  EXPECT_DOUBLE_EQ(m2.at("thermal"), 0.25);
  EXPECT_EQ(m2.size(), 3u);
}

TEST(PowerSampler, UnknownDeviceIsUnavailable) {
  // No GPU has this PCI bus id or UUID, so this holds with or without NVML on the machine.
  DeviceInfo d;
  d.pci_bus_id = "ffff:ff:1f.0";
  d.uuid = "GPU-00000000-0000-0000-0000-000000000000";
  std::string why;
  const PowerReader r = nvml_power_reader(d, &why);
  EXPECT_FALSE(r);
  EXPECT_FALSE(why.empty());

  PowerSampler s(r);
  EXPECT_FALSE(s.available());
  s.start();
  EXPECT_FALSE(s.stop());
  EXPECT_TRUE(s.samples().empty());
  EXPECT_FALSE(s.stop());  // idempotent
}

TEST(PowerSampler, EmptyDeviceIdentifiersAreUnavailable) {
  std::string why;
  EXPECT_FALSE(nvml_power_reader(DeviceInfo{}, &why));
  EXPECT_FALSE(why.empty());
}

TEST(PowerSampler, PollsUntilStopped) {
  std::atomic<int> reads{0};
  PowerSampler s([&]() -> std::optional<PowerSample> {
    const int i = reads++;
    return sample(1000 + i, 500, i % 2 ? clock_event::sw_power_cap : 0);
  }, std::chrono::milliseconds(1));
  EXPECT_TRUE(s.available());
  s.start();
  ASSERT_TRUE(eventually([&] { return reads.load() >= 5; }));
  const auto sum = s.stop();
  const int after_stop = reads.load();
  ASSERT_TRUE(sum);
  // Every read became a sample, in order, and nothing is read once stop() has returned.
  EXPECT_EQ(sum->samples, std::size_t(after_stop));
  const auto v = s.samples();
  ASSERT_EQ(v.size(), std::size_t(after_stop));
  for (std::size_t i = 0; i < v.size(); ++i) EXPECT_DOUBLE_EQ(v[i].sm_mhz, 1000.0 + double(i));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(reads.load(), after_stop);

  // Stopping again gives the same summary and reads nothing.
  const auto again = s.stop();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->samples, sum->samples);
  EXPECT_DOUBLE_EQ(again->sm_mhz, sum->sm_mhz);
  EXPECT_EQ(reads.load(), after_stop);
}

TEST(PowerSampler, FailedReadsAreNotSamplesAndStartBeginsAFreshSeries) {
  std::atomic<int> reads{0};
  PowerSampler s([&]() -> std::optional<PowerSample> {
    const int i = reads++;
    if (i % 2) return std::nullopt;
    return sample(1500, 690, 0);
  }, std::chrono::milliseconds(1));
  s.start();
  ASSERT_TRUE(eventually([&] { return reads.load() >= 8; }));
  s.stop();
  const int n = reads.load();
  EXPECT_EQ(s.samples().size(), std::size_t((n + 1) / 2));

  s.start();
  s.start();  // restarting a running sampler stops it first
  ASSERT_TRUE(eventually([&] { return reads.load() >= n + 1; }));
  s.stop();
  EXPECT_LE(s.samples().size(), std::size_t(reads.load() - n));
}

TEST(PowerSampler, SleepsBetweenPolls) {
  // With a long interval the thread reads once and then waits: stop() must wake it rather than wait
  // out the interval, and it must not have polled in a loop meanwhile.
  std::atomic<int> reads{0};
  PowerSampler s([&]() -> std::optional<PowerSample> {
    ++reads;
    return sample(1, 1, 0);
  }, std::chrono::hours(1));
  s.start();
  ASSERT_TRUE(eventually([&] { return reads.load() >= 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(s.stop());  // one sample: too few for a summary
  EXPECT_EQ(reads.load(), 1);
}

TEST(PowerSampler, DestructorStopsARunningSampler) {
  std::atomic<int> reads{0};
  {
    PowerSampler s([&]() -> std::optional<PowerSample> {
      ++reads;
      return sample(1, 1, 0);
    }, std::chrono::milliseconds(1));
    s.start();
    ASSERT_TRUE(eventually([&] { return reads.load() >= 2; }));
  }
  const int n = reads.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(reads.load(), n);
}
