#include "info_cmd.hpp"

#include <cstdio>
#include <string>

namespace aipe::cli {

namespace {
std::string f(const char* fmt, double v) {
  char b[64];
  std::snprintf(b, sizeof b, fmt, v);
  return b;
}
void row(std::ostream& os, const char* k, const std::string& v) {
  char b[48];
  std::snprintf(b, sizeof b, "  %-28s", k);
  os << b << v << "\n";
}
std::string ver(int v) { return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10); }
}  // namespace

void print_device(std::ostream& os, const DeviceInfo& d, const SpecPeaks& p) {
  os << "GPU " << d.ordinal << ": " << d.name << "\n";
  row(os, "architecture", d.arch_name() + " (compute capability " + std::to_string(d.cc_major) + "." +
                              std::to_string(d.cc_minor) + ")");
  row(os, "uuid", d.uuid);
  row(os, "pci bus id", d.pci_bus_id);
  row(os, "SMs", std::to_string(d.sm_count));
  row(os, "max SM clock", f("%.0f MHz", d.max_sm_clock_khz / 1e3));
  row(os, "memory", f("%.2f GiB", d.global_mem_bytes / 1073741824.0) + ", " + std::to_string(d.bus_width_bits) +
                        "-bit bus, " + f("%.0f MHz", d.mem_clock_khz / 1e3) + (d.ecc ? ", ECC on" : ", ECC off"));
  row(os, "L2 cache", f("%.1f MiB", d.l2_bytes / 1048576.0) + " (persisting max " +
                          f("%.1f MiB", d.persisting_l2_max_bytes / 1048576.0) + ")");
  row(os, "shared memory / SM", f("%.0f KiB", d.smem_per_sm_bytes / 1024.0));
  row(os, "shared memory / block", f("%.0f KiB", d.smem_per_block_bytes / 1024.0) + " (opt-in " +
                                       f("%.0f KiB", d.smem_per_block_optin_bytes / 1024.0) + ")");
  row(os, "registers / SM", std::to_string(d.regs_per_sm));
  row(os, "max threads / SM", std::to_string(d.max_threads_per_sm));
  row(os, "max blocks / SM", std::to_string(d.max_blocks_per_sm));
  row(os, "copy engines", std::to_string(d.async_engines));
  row(os, "driver / runtime", ver(d.driver_version) + " / " + ver(d.runtime_version));
  os << "Peaks implied by the device's properties (decimal units, dense):\n";
  row(os, "DRAM bandwidth", f("%.0f GB/s", p.dram_gbps) + "  = 2 x memory clock x bus width / 8");
  if (p.known_arch) {
    row(os, "FP32 / FP64", f("%.1f", p.fp32_tflops) + " / " + f("%.1f TFLOP/s", p.fp64_tflops) +
                               "  = ops/SM/clock x SMs x max SM clock");
    row(os, "TF32 / BF16 / FP16 tensor", f("%.0f", p.tf32_tflops) + " / " + f("%.0f", p.bf16_tflops) + " / " +
                                             f("%.0f TFLOP/s", p.fp16_tflops));
    row(os, "FP8 / INT8 tensor", f("%.0f TFLOP/s", p.fp8_tflops) + " / " + f("%.0f TOP/s", p.int8_tops));
  } else {
    row(os, "compute peaks", "unknown for sm_" + std::to_string(d.cc()) + " (not in aipe's architecture table)");
  }
}

void print_measured(std::ostream& os, const std::optional<SpecPeaks>& m, const std::string& source,
                    const std::string& why) {
  if (!m) {
    os << "Measured peaks: n/a (" << why << ")\n";
    return;
  }
  os << "Measured peaks (aipe peak, " << source << "; n/a = not measured):\n";
  auto v = [](double x, const char* fmt) { return x > 0 ? f(fmt, x) : std::string("n/a"); };
  row(os, "DRAM bandwidth", v(m->dram_gbps, "%.0f GB/s"));
  row(os, "FP32 / FP64", v(m->fp32_tflops, "%.1f") + " / " + v(m->fp64_tflops, "%.1f") + " TFLOP/s");
  row(os, "TF32 / BF16 / FP16 tensor",
      v(m->tf32_tflops, "%.0f") + " / " + v(m->bf16_tflops, "%.0f") + " / " + v(m->fp16_tflops, "%.0f") + " TFLOP/s");
  row(os, "FP8 / INT8 tensor", v(m->fp8_tflops, "%.0f") + " TFLOP/s / " + v(m->int8_tops, "%.0f") + " TOP/s");
}

}  // namespace aipe::cli
