// What `aipe info` adds to the device properties: clocks, power, PCIe and NVLink state and MIG mode
// through NVML (loaded at run time with dlopen, so aipe needs no NVML at build time and runs where it
// is missing), the NUMA node and CPUs closest to each GPU (sysfs), and the peer-access matrix.
// Everything optional degrades to "n/a (reason)".
#pragma once
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "aipe/device.hpp"

namespace aipe {

// A value that may be unavailable, with the reason when it is.
template <class T>
struct Maybe {
  std::optional<T> value;
  std::string why;  // set when !value
  explicit operator bool() const { return value.has_value(); }
  const T& operator*() const { return *value; }
  const T* operator->() const { return &*value; }
  static Maybe na(std::string reason) { return {std::nullopt, std::move(reason)}; }
  static Maybe of(T v) { return {std::move(v), {}}; }
};

struct NvLinkState {
  int links_total = 0;   // links NVML reports (active or not)
  int links_active = 0;
  int version = 0;       // of the first active link
};

struct GpuSystemInfo {
  int ordinal = 0;
  Maybe<unsigned> sm_clock_mhz, sm_clock_max_mhz, mem_clock_mhz, mem_clock_max_mhz;
  Maybe<int> pcie_gen, pcie_width, pcie_gen_max, pcie_width_max;
  Maybe<NvLinkState> nvlink;
  Maybe<std::string> mig_mode;    // "disabled", "enabled" (pending state in parentheses when different)
  Maybe<double> power_w, power_limit_w;
  Maybe<unsigned> temperature_c;
  Maybe<int> numa_node;
  Maybe<std::string> local_cpulist;
  Maybe<double> pcie_gbps_per_direction;  // from the max link generation and width (current if unknown)
};

struct SystemInfo {
  Maybe<std::string> nvml_driver_version;
  std::vector<GpuSystemInfo> gpus;
  // peer[i][j]: cudaDeviceCanAccessPeer(i, j); the diagonal is true.
  std::vector<std::vector<bool>> peer;
};

// Loads NVML once (dlopen("libnvidia-ml.so.1")); empty when usable, otherwise why not.
std::optional<std::string> nvml_unavailable_reason();

// NUMA node and CPU list of a PCI device from `sysfs_root`/bus/pci/devices/<bus id>/ (testable with
// a fake tree). A node of -1 (no affinity) is reported as n/a.
Maybe<int> read_numa_node(const std::string& sysfs_root, const std::string& pci_bus_id);
Maybe<std::string> read_local_cpulist(const std::string& sysfs_root, const std::string& pci_bus_id);

GpuSystemInfo query_gpu_system(const DeviceInfo& d, const std::string& sysfs_root = "/sys");
SystemInfo query_system(const std::vector<DeviceInfo>& devices);

template <class T>
std::string to_text(const Maybe<T>& m, const std::string& suffix = "");

void to_json(nlohmann::json& j, const GpuSystemInfo& g);
void to_json(nlohmann::json& j, const SystemInfo& s);

// Human-readable lines, appended to the device report of `aipe info`.
void print_gpu_system(std::ostream& os, const GpuSystemInfo& g);
void print_peer_matrix(std::ostream& os, const SystemInfo& s);

}  // namespace aipe
