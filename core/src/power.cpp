#include "aipe/power.hpp"

#include <dlfcn.h>

#include <cmath>

#include "aipe/stats.hpp"

namespace aipe {

namespace {

// The NVML entry points the sampler uses, declared here (there is no nvml.h to build against).
// Signatures from NVML's public API; every function returns nvmlReturn_t (an int, 0 on success).
using nvmlDevice_t = struct nvmlDevice_st*;
constexpr int NVML_SUCCESS = 0;
constexpr unsigned NVML_CLOCK_SM = 1;

struct Nvml {
  std::string why;  // empty when usable
  int (*init)() = nullptr;
  int (*by_pci_bus_id)(const char*, nvmlDevice_t*) = nullptr;
  int (*by_uuid)(const char*, nvmlDevice_t*) = nullptr;
  int (*clock)(nvmlDevice_t, unsigned, unsigned*) = nullptr;
  int (*power)(nvmlDevice_t, unsigned*) = nullptr;             // milliwatts
  int (*reasons)(nvmlDevice_t, unsigned long long*) = nullptr;  // optional
};

template <class F>
bool sym(void* lib, const char* name, F& f) {
  f = reinterpret_cast<F>(dlsym(lib, name));
  return f != nullptr;
}

// Loaded and initialized once per process; NVML's own reference count makes sharing it with other
// users of libnvidia-ml in the process harmless.
const Nvml& nvml() {
  static const Nvml n = [] {
    Nvml m;
    void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* e = dlerror();
      m.why = std::string("NVML not loadable: ") + (e ? e : "dlopen(libnvidia-ml.so.1) failed");
      return m;
    }
    const bool ok = sym(lib, "nvmlInit_v2", m.init) && sym(lib, "nvmlDeviceGetClockInfo", m.clock) &&
                    sym(lib, "nvmlDeviceGetPowerUsage", m.power);
    sym(lib, "nvmlDeviceGetHandleByPciBusId_v2", m.by_pci_bus_id);
    sym(lib, "nvmlDeviceGetHandleByUUID", m.by_uuid);
    // Renamed in CUDA 12.2's NVML; older drivers only have the throttle name, same signature and bits.
    if (!sym(lib, "nvmlDeviceGetCurrentClocksEventReasons", m.reasons))
      sym(lib, "nvmlDeviceGetCurrentClocksThrottleReasons", m.reasons);
    if (!ok || (!m.by_pci_bus_id && !m.by_uuid)) {
      m.why = "NVML lacks nvmlInit_v2, nvmlDeviceGetClockInfo, nvmlDeviceGetPowerUsage or a device lookup";
      return m;
    }
    if (const int rc = m.init(); rc != NVML_SUCCESS) m.why = "nvmlInit_v2 failed (NVML error " + std::to_string(rc) + ")";
    return m;
  }();
  return n;
}

std::optional<PowerSample> read_sample(const Nvml& n, nvmlDevice_t h) {
  unsigned mhz = 0, mw = 0;
  if (n.clock(h, NVML_CLOCK_SM, &mhz) != NVML_SUCCESS || n.power(h, &mw) != NVML_SUCCESS) return std::nullopt;
  PowerSample s;
  s.sm_mhz = mhz;
  s.power_w = mw / 1000.0;
  unsigned long long bits = 0;
  if (n.reasons && n.reasons(h, &bits) == NVML_SUCCESS) {
    s.reasons = bits;
    s.reasons_known = true;
  }
  return s;
}

double round_to(double x, double step) { return std::round(x / step) * step; }

}  // namespace

std::optional<PowerSummary> summarize_power(const std::vector<PowerSample>& samples) {
  if (samples.size() < kMinPowerSamples) return std::nullopt;
  std::vector<double> mhz, watts;
  std::size_t known = 0, capped = 0, hot = 0;
  for (const PowerSample& s : samples) {
    mhz.push_back(s.sm_mhz);
    watts.push_back(s.power_w);
    if (!s.reasons_known) continue;
    ++known;
    if (s.reasons & clock_event::sw_power_cap) ++capped;
    if (s.reasons & clock_event::thermal) ++hot;
  }
  PowerSummary p;
  p.samples = samples.size();
  p.sm_mhz = summarize(std::move(mhz)).median;
  p.power_w = summarize(std::move(watts)).median;
  if (known > 0) {
    p.power_capped = double(capped) / double(known);
    p.thermal = double(hot) / double(known);
  }
  return p;
}

void add_power_metrics(const PowerSummary& s, std::map<std::string, double>& metrics) {
  metrics["sm_mhz"] = std::round(s.sm_mhz);
  metrics["power_w"] = round_to(s.power_w, 0.1);
  // Zero fractions are left out: most rungs are never capped, and the report line stays short.
  if (const double f = round_to(s.power_capped, 0.01); f > 0) metrics["power_capped"] = f;
  if (const double f = round_to(s.thermal, 0.01); f > 0) metrics["thermal"] = f;
}

PowerReader nvml_power_reader(const DeviceInfo& d, std::string* why) {
  auto fail = [&](std::string w) {
    if (why) *why = std::move(w);
    return PowerReader();
  };
  const Nvml& n = nvml();
  if (!n.why.empty()) return fail(n.why);
  // By PCI bus id first: power and clocks belong to the board, and under MIG the CUDA UUID names a
  // GPU instance, for which NVML does not report them.
  nvmlDevice_t h = nullptr;
  bool found = false;
  if (n.by_pci_bus_id && !d.pci_bus_id.empty()) found = n.by_pci_bus_id(d.pci_bus_id.c_str(), &h) == NVML_SUCCESS;
  if (!found && n.by_uuid && !d.uuid.empty()) found = n.by_uuid(d.uuid.c_str(), &h) == NVML_SUCCESS;
  if (!found) return fail("NVML has no device with PCI bus id '" + d.pci_bus_id + "' or UUID '" + d.uuid + "'");
  // One read now, so a device that does not report its clock or power is unavailable from the start
  // rather than a sampler that never collects anything.
  if (!read_sample(n, h)) return fail("NVML reports no SM clock or power draw for " + d.pci_bus_id);
  if (why) why->clear();
  return [&n, h] { return read_sample(n, h); };
}

PowerSampler::PowerSampler(PowerReader read, std::chrono::milliseconds interval)
    : read_(std::move(read)), interval_(interval) {}

PowerSampler::~PowerSampler() {
  std::lock_guard control(control_mu_);
  join();
}

void PowerSampler::join() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void PowerSampler::start() {
  std::lock_guard control(control_mu_);
  join();
  std::lock_guard lk(mu_);
  samples_.clear();
  if (!read_) return;
  stopping_ = false;
  thread_ = std::thread([this] { poll(); });
}

std::optional<PowerSummary> PowerSampler::stop() {
  std::lock_guard control(control_mu_);
  join();
  std::lock_guard lk(mu_);
  return summarize_power(samples_);
}

std::vector<PowerSample> PowerSampler::samples() const {
  std::lock_guard lk(mu_);
  return samples_;
}

void PowerSampler::poll() {
  std::unique_lock lk(mu_);
  while (!stopping_) {
    // The NVML calls (a few driver round trips) run unlocked, so samples() and stop() never wait on them.
    lk.unlock();
    std::optional<PowerSample> s = read_();
    lk.lock();
    if (s) samples_.push_back(*s);
    // Sleeps until the next poll; stop() wakes it at once.
    wake_.wait_for(lk, interval_, [this] { return stopping_; });
  }
}

}  // namespace aipe
