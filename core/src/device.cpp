#include "aipe/device.hpp"

#include <cuda_runtime_api.h>

#include <charconv>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "aipe/check.hpp"
#include "aipe/json_fields.hpp"
#include "aipe/printable.hpp"

namespace aipe {

namespace {

// Operations per SM per clock, dense, by compute capability. Sources: NVIDIA architecture
// whitepapers (V100, T4, A100, GA102, AD102/L40S, H100, B200). FP32/FP64 count an FMA as 2.
struct ArchRates {
  int cc;
  const char* name;
  double fp32, fp64, tf32, bf16, fp16, fp8, int8;
};
constexpr ArchRates kArchTable[] = {
    {70, "Volta", 128, 64, 0, 0, 1024, 0, 0},
    {75, "Turing", 128, 4, 0, 0, 1024, 0, 2048},
    {80, "Ampere", 128, 64, 1024, 2048, 2048, 0, 4096},
    {86, "Ampere", 256, 4, 256, 512, 512, 0, 1024},
    {87, "Ampere", 256, 4, 256, 512, 512, 0, 1024},
    {89, "Ada Lovelace", 256, 4, 512, 1024, 1024, 2048, 2048},
    {90, "Hopper", 256, 128, 2048, 4096, 4096, 8192, 8192},
    {100, "Blackwell", 256, 128, 4096, 8192, 8192, 16384, 16384},
    {103, "Blackwell", 256, 128, 4096, 8192, 8192, 16384, 16384},
};

const ArchRates* find_arch(int cc) {
  for (const auto& a : kArchTable)
    if (a.cc == cc) return &a;
  return nullptr;
}

std::string format_uuid(const cudaUUID_t& u) {
  const auto* b = reinterpret_cast<const unsigned char*>(u.bytes);
  char s[64];
  std::snprintf(s, sizeof s, "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return s;
}

int attr(cudaDeviceAttr a, int dev) {
  int v = 0;
  AIPE_CUDA(cudaDeviceGetAttribute(&v, a, dev));
  return v;
}

}  // namespace

std::string DeviceInfo::arch_name() const {
  if (const ArchRates* a = find_arch(cc())) return a->name;
  return "sm_" + std::to_string(cc());
}

const char* to_string(ComputeUnit u) {
  switch (u) {
    case ComputeUnit::none: return "";
    case ComputeUnit::fp32: return "fp32";
    case ComputeUnit::fp64: return "fp64";
    case ComputeUnit::tf32: return "tf32";
    case ComputeUnit::bf16: return "bf16";
    case ComputeUnit::fp16: return "fp16";
    case ComputeUnit::fp8: return "fp8";
    case ComputeUnit::int8: return "int8";
  }
  return "";
}

double peak_tflops(const SpecPeaks& p, ComputeUnit u) {
  switch (u) {
    case ComputeUnit::none: return 0;
    case ComputeUnit::fp32: return p.fp32_tflops;
    case ComputeUnit::fp64: return p.fp64_tflops;
    case ComputeUnit::tf32: return p.tf32_tflops;
    case ComputeUnit::bf16: return p.bf16_tflops;
    case ComputeUnit::fp16: return p.fp16_tflops;
    case ComputeUnit::fp8: return p.fp8_tflops;
    case ComputeUnit::int8: return p.int8_tops;
  }
  return 0;
}

SpecPeaks derive_spec_peaks(const DeviceInfo& d) {
  SpecPeaks p;
  // Double data rate: two transfers per memory clock across the whole bus.
  p.dram_gbps = 2.0 * d.mem_clock_khz * 1e3 * (d.bus_width_bits / 8.0) / 1e9;
  const ArchRates* a = find_arch(d.cc());
  if (!a) return p;
  p.known_arch = true;
  const double sm_clk = static_cast<double>(d.sm_count) * d.max_sm_clock_khz * 1e3 / 1e12;  // SM-GHz in 1e12 units
  p.fp32_tflops = a->fp32 * sm_clk;
  p.fp64_tflops = a->fp64 * sm_clk;
  p.tf32_tflops = a->tf32 * sm_clk;
  p.bf16_tflops = a->bf16 * sm_clk;
  p.fp16_tflops = a->fp16 * sm_clk;
  p.fp8_tflops = a->fp8 * sm_clk;
  p.int8_tops = a->int8 * sm_clk;
  return p;
}

std::optional<std::string> gpu_unavailable_reason() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    if (e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice)
      return std::string("no usable CUDA GPU: no NVIDIA driver/device is available to this process (") +
             cudaGetErrorName(e) + ")";
    return std::string("no usable CUDA GPU: ") + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
  }
  if (n == 0) return std::string("no usable CUDA GPU: the driver reports 0 devices");
  return std::nullopt;
}

DeviceInfo query_device(int ordinal) {
  cudaDeviceProp p{};
  AIPE_CUDA(cudaGetDeviceProperties(&p, ordinal));
  DeviceInfo d;
  d.ordinal = ordinal;
  d.name = p.name;
  d.uuid = format_uuid(p.uuid);
  char bus[32];
  std::snprintf(bus, sizeof bus, "%04x:%02x:%02x.0", p.pciDomainID, p.pciBusID, p.pciDeviceID);
  d.pci_bus_id = bus;
  d.cc_major = p.major;
  d.cc_minor = p.minor;
  d.sm_count = p.multiProcessorCount;
  d.max_sm_clock_khz = attr(cudaDevAttrClockRate, ordinal);
  d.mem_clock_khz = attr(cudaDevAttrMemoryClockRate, ordinal);
  d.bus_width_bits = p.memoryBusWidth;
  d.global_mem_bytes = p.totalGlobalMem;
  d.l2_bytes = static_cast<std::uint64_t>(p.l2CacheSize);
  d.persisting_l2_max_bytes = static_cast<std::uint64_t>(p.persistingL2CacheMaxSize);
  d.smem_per_sm_bytes = p.sharedMemPerMultiprocessor;
  d.smem_per_block_bytes = p.sharedMemPerBlock;
  d.smem_per_block_optin_bytes = p.sharedMemPerBlockOptin;
  d.regs_per_sm = p.regsPerMultiprocessor;
  d.max_threads_per_sm = p.maxThreadsPerMultiProcessor;
  d.max_blocks_per_sm = p.maxBlocksPerMultiProcessor;
  d.warp_size = p.warpSize;
  d.async_engines = p.asyncEngineCount;
  d.ecc = p.ECCEnabled != 0;
  d.managed_memory = p.managedMemory != 0;
  d.concurrent_managed_access = p.concurrentManagedAccess != 0;
  AIPE_CUDA(cudaDriverGetVersion(&d.driver_version));
  AIPE_CUDA(cudaRuntimeGetVersion(&d.runtime_version));
  return d;
}

void to_json(nlohmann::json& j, const DeviceInfo& d) {
  j = nlohmann::json{{"ordinal", d.ordinal},
                     {"name", d.name},
                     {"uuid", d.uuid},
                     {"pci_bus_id", d.pci_bus_id},
                     {"arch", d.arch_name()},
                     {"compute_capability", std::to_string(d.cc_major) + "." + std::to_string(d.cc_minor)},
                     {"sm_count", d.sm_count},
                     {"max_sm_clock_khz", d.max_sm_clock_khz},
                     {"mem_clock_khz", d.mem_clock_khz},
                     {"bus_width_bits", d.bus_width_bits},
                     {"global_mem_bytes", d.global_mem_bytes},
                     {"l2_bytes", d.l2_bytes},
                     {"persisting_l2_max_bytes", d.persisting_l2_max_bytes},
                     {"smem_per_sm_bytes", d.smem_per_sm_bytes},
                     {"smem_per_block_bytes", d.smem_per_block_bytes},
                     {"smem_per_block_optin_bytes", d.smem_per_block_optin_bytes},
                     {"regs_per_sm", d.regs_per_sm},
                     {"max_threads_per_sm", d.max_threads_per_sm},
                     {"max_blocks_per_sm", d.max_blocks_per_sm},
                     {"warp_size", d.warp_size},
                     {"async_engines", d.async_engines},
                     {"ecc", d.ecc},
                     {"managed_memory", d.managed_memory},
                     {"concurrent_managed_access", d.concurrent_managed_access},
                     {"driver_version", d.driver_version},
                     {"runtime_version", d.runtime_version}};
}

void from_json(const nlohmann::json& j, DeviceInfo& d) { device_from_json(j, d, "device"); }

void device_from_json(const nlohmann::json& j, DeviceInfo& d, const std::string& w) {
  namespace F = fields;
  constexpr std::int64_t kInt = std::numeric_limits<int>::max();
  auto i = [&](const char* k, std::optional<std::int64_t> def = std::nullopt) {
    return static_cast<int>(F::integer(j, k, w, 0, kInt, def));
  };
  auto u = [&](const char* k) { return F::unsigned_integer(j, k, w, std::numeric_limits<std::uint64_t>::max(), 0); };
  d.ordinal = i("ordinal", 0);
  d.name = F::string(j, "name", w);
  d.uuid = F::string(j, "uuid", w, "");
  d.pci_bus_id = F::string(j, "pci_bus_id", w, "");
  // "MAJOR.MINOR", each 0..99 (cc() is major * 10 + minor).
  const std::string cc = F::string(j, "compute_capability", w);
  auto part = [&](std::string_view t, int* out) {
    const auto* end = t.data() + t.size();
    const auto [p, ec] = std::from_chars(t.data(), end, *out);
    return !t.empty() && ec == std::errc() && p == end && *out >= 0 && *out <= 99;
  };
  const auto dot = cc.find('.');
  if (dot == std::string::npos || !part(std::string_view(cc).substr(0, dot), &d.cc_major) ||
      !part(std::string_view(cc).substr(dot + 1), &d.cc_minor))
    throw std::runtime_error(F::field_name(w, "compute_capability") + ": '" + printable(cc) +
                             "' is not MAJOR.MINOR (two numbers 0..99, e.g. \"9.0\")");
  d.sm_count = i("sm_count");
  d.max_sm_clock_khz = i("max_sm_clock_khz");
  d.mem_clock_khz = i("mem_clock_khz");
  d.bus_width_bits = i("bus_width_bits");
  d.global_mem_bytes = u("global_mem_bytes");
  d.l2_bytes = u("l2_bytes");
  d.persisting_l2_max_bytes = u("persisting_l2_max_bytes");
  d.smem_per_sm_bytes = u("smem_per_sm_bytes");
  d.smem_per_block_bytes = u("smem_per_block_bytes");
  d.smem_per_block_optin_bytes = u("smem_per_block_optin_bytes");
  d.regs_per_sm = i("regs_per_sm", 0);
  d.max_threads_per_sm = i("max_threads_per_sm", 0);
  d.max_blocks_per_sm = i("max_blocks_per_sm", 0);
  d.warp_size = i("warp_size", 32);
  d.async_engines = i("async_engines", 0);
  d.ecc = F::boolean(j, "ecc", w, false);
  d.managed_memory = F::boolean(j, "managed_memory", w, false);
  d.concurrent_managed_access = F::boolean(j, "concurrent_managed_access", w, false);
  d.driver_version = i("driver_version", 0);
  d.runtime_version = i("runtime_version", 0);
}

void to_json(nlohmann::json& j, const SpecPeaks& p) {
  j = nlohmann::json{{"dram_gbps", p.dram_gbps},     {"fp32_tflops", p.fp32_tflops}, {"fp64_tflops", p.fp64_tflops},
                     {"tf32_tflops", p.tf32_tflops}, {"bf16_tflops", p.bf16_tflops}, {"fp16_tflops", p.fp16_tflops},
                     {"fp8_tflops", p.fp8_tflops},   {"int8_tops", p.int8_tops},     {"known_arch", p.known_arch}};
}

void from_json(const nlohmann::json& j, SpecPeaks& p) { spec_peaks_from_json(j, p, "peaks"); }

void spec_peaks_from_json(const nlohmann::json& j, SpecPeaks& p, const std::string& w) {
  // Rates: finite and >= 0 (0 = not known or not measured).
  auto r = [&](const char* k) { return fields::number(j, k, w, 0.0, 0.0, std::numeric_limits<double>::max()); };
  p.dram_gbps = r("dram_gbps");
  p.fp32_tflops = r("fp32_tflops");
  p.fp64_tflops = r("fp64_tflops");
  p.tf32_tflops = r("tf32_tflops");
  p.bf16_tflops = r("bf16_tflops");
  p.fp16_tflops = r("fp16_tflops");
  p.fp8_tflops = r("fp8_tflops");
  p.int8_tops = r("int8_tops");
  p.known_arch = fields::boolean(j, "known_arch", w, false);
}

}  // namespace aipe
