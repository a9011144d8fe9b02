// SM clock, power draw and clock-event (throttle) reasons of the GPU while a variant is measured,
// sampled through NVML. NVML is loaded at run time (dlopen), so aipe builds without it and runs where
// it is absent: sampling is then simply unavailable, never an error.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "aipe/device.hpp"

namespace aipe {

// NVML's clock-event reason bits (nvmlClocksEventReason*, formerly nvmlClocksThrottleReason*).
namespace clock_event {
constexpr std::uint64_t sw_power_cap = 0x4;     // the driver lowers clocks to stay under the power limit
constexpr std::uint64_t hw_slowdown = 0x8;
constexpr std::uint64_t sw_thermal = 0x20;
constexpr std::uint64_t hw_thermal = 0x40;
constexpr std::uint64_t hw_power_brake = 0x80;  // an external power-brake signal (e.g. the PSU)
constexpr std::uint64_t thermal = sw_thermal | hw_thermal;
}  // namespace clock_event

struct PowerSample {
  double sm_mhz = 0;
  double power_w = 0;
  std::uint64_t reasons = 0;   // clock_event bits
  bool reasons_known = false;  // false: this NVML cannot say why clocks are low
};

struct PowerSummary {
  std::size_t samples = 0;
  double sm_mhz = 0;        // median
  double power_w = 0;       // median
  double power_capped = 0;  // fraction of the samples with known reasons that have sw_power_cap set
  double thermal = 0;       // fraction of the samples with known reasons that have a thermal bit set
};

// Fewer samples than this say nothing about a run (the first may predate the variant's first launch).
constexpr std::size_t kMinPowerSamples = 3;

// Medians and fractions of the samples; nullopt with fewer than kMinPowerSamples.
std::optional<PowerSummary> summarize_power(const std::vector<PowerSample>& samples);

// Adds `sm_mhz` (integer), `power_w` (one decimal) and, only when nonzero, `power_capped` and
// `thermal` (two decimals) to a result's metrics, replacing entries of the same names.
void add_power_metrics(const PowerSummary& s, std::map<std::string, double>& metrics);

// Reads one sample; nullopt when this read failed.
using PowerReader = std::function<std::optional<PowerSample>()>;

// A reader of device `d`'s counters through NVML, found by PCI bus id (or UUID); empty, with the
// reason in *why, when NVML, one of its entry points or the device is missing.
PowerReader nvml_power_reader(const DeviceInfo& d, std::string* why = nullptr);

// Polls a reader on a background thread from start() to stop(), sleeping between polls; safe to call
// from any thread. A sampler without a reader is unavailable: start() and stop() do nothing and there are no samples.
class PowerSampler {
 public:
  explicit PowerSampler(PowerReader read, std::chrono::milliseconds interval = std::chrono::milliseconds(5));
  ~PowerSampler();
  PowerSampler(const PowerSampler&) = delete;
  PowerSampler& operator=(const PowerSampler&) = delete;

  bool available() const { return static_cast<bool>(read_); }
  // Starts a fresh series (previous samples are dropped); stops a running one first.
  void start();
  // Joins the thread and summarizes the series; again after stopping, the same summary.
  std::optional<PowerSummary> stop();
  std::vector<PowerSample> samples() const;

 private:
  void poll();
  void join();  // with control_mu_ held

  PowerReader read_;
  std::chrono::milliseconds interval_;
  std::mutex control_mu_;  // serializes start() and stop()
  mutable std::mutex mu_;  // guards stopping_ and samples_
  std::condition_variable wake_;
  bool stopping_ = false;
  std::vector<PowerSample> samples_;
  std::thread thread_;
};

}  // namespace aipe
