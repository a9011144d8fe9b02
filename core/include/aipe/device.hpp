// What the GPU is, read off the device, and the peaks its data sheet implies.
// Nothing else in aipe hard-codes an SM count, an L2 size or a bandwidth: it asks this header.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace aipe {

struct DeviceInfo {
  int ordinal = 0;
  std::string name;
  std::string uuid;           // "GPU-xxxxxxxx-..." as nvidia-smi prints it
  std::string pci_bus_id;     // "0000:19:00.0"
  int cc_major = 0, cc_minor = 0;
  int sm_count = 0;
  int max_sm_clock_khz = 0;   // peak SM clock the driver reports
  int mem_clock_khz = 0;      // peak memory clock
  int bus_width_bits = 0;
  std::uint64_t global_mem_bytes = 0;
  std::uint64_t l2_bytes = 0;
  std::uint64_t persisting_l2_max_bytes = 0;
  std::uint64_t smem_per_sm_bytes = 0;
  std::uint64_t smem_per_block_bytes = 0;        // without opt-in (48 KiB)
  std::uint64_t smem_per_block_optin_bytes = 0;  // after cudaFuncSetAttribute
  int regs_per_sm = 0;
  int max_threads_per_sm = 0;
  int max_blocks_per_sm = 0;
  int warp_size = 32;
  int async_engines = 0;
  bool ecc = false;
  bool managed_memory = false;
  bool concurrent_managed_access = false;
  int driver_version = 0;   // e.g. 13000
  int runtime_version = 0;

  std::string arch_name() const;  // "Hopper", "Ampere", ...
  int cc() const { return cc_major * 10 + cc_minor; }
};

// Peaks implied by the device's properties and a small per-architecture table of operations per
// SM per clock. Decimal units: GB/s = 1e9 bytes/s, TFLOP/s = 1e12 FLOP/s. Dense (no sparsity).
struct SpecPeaks {
  double dram_gbps = 0;   // 2 (DDR) x memory clock x bus width / 8
  double fp32_tflops = 0; // FP32 lanes x 2 (FMA) x SMs x max SM clock
  double fp64_tflops = 0;
  double tf32_tflops = 0; // tensor cores, dense
  double bf16_tflops = 0;
  double fp16_tflops = 0;
  double fp8_tflops = 0;
  double int8_tops = 0;
  bool known_arch = false;  // false: tensor/FP peaks are 0 because the architecture is not in the table
};

// Compute units a work model can be judged against.
enum class ComputeUnit { none, fp32, fp64, tf32, bf16, fp16, fp8, int8 };
const char* to_string(ComputeUnit u);
double peak_tflops(const SpecPeaks& p, ComputeUnit u);

SpecPeaks derive_spec_peaks(const DeviceInfo& d);

// Empty when a GPU can be used; otherwise why not (no driver, no device, ...).
std::optional<std::string> gpu_unavailable_reason();

DeviceInfo query_device(int ordinal = 0);

void to_json(nlohmann::json& j, const DeviceInfo& d);
void from_json(const nlohmann::json& j, DeviceInfo& d);
void to_json(nlohmann::json& j, const SpecPeaks& p);
void from_json(const nlohmann::json& j, SpecPeaks& p);
// The readers behind from_json, every field checked (type, range); `where` names the object in
// errors ("device", "ceilings.spec"). Throw std::runtime_error.
void device_from_json(const nlohmann::json& j, DeviceInfo& d, const std::string& where);
void spec_peaks_from_json(const nlohmann::json& j, SpecPeaks& p, const std::string& where);

}  // namespace aipe
