#include "aipe/sysinfo.hpp"

#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <cstdio>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>

#include "aipe/peak.hpp"

namespace aipe {

namespace {

// The few NVML entry points aipe uses, declared here (there is no nvml.h to build against).
// Signatures from NVML's public API (nvml.h, CUDA 12/13); every function returns nvmlReturn_t (int).
using nvmlDevice_t = struct nvmlDevice_st*;
constexpr int NVML_SUCCESS = 0;
constexpr int NVML_CLOCK_SM = 1;
constexpr int NVML_CLOCK_MEM = 2;
constexpr int NVML_TEMPERATURE_GPU = 0;
constexpr unsigned NVML_NVLINK_MAX_LINKS = 18;

struct Nvml {
  void* lib = nullptr;
  std::string why;  // why unusable
  int (*init)() = nullptr;
  const char* (*error_string)(int) = nullptr;
  int (*system_driver_version)(char*, unsigned) = nullptr;
  int (*by_uuid)(const char*, nvmlDevice_t*) = nullptr;
  int (*clock)(nvmlDevice_t, int, unsigned*) = nullptr;
  int (*max_clock)(nvmlDevice_t, int, unsigned*) = nullptr;
  int (*pcie_gen)(nvmlDevice_t, unsigned*) = nullptr;
  int (*pcie_width)(nvmlDevice_t, unsigned*) = nullptr;
  int (*pcie_gen_max)(nvmlDevice_t, unsigned*) = nullptr;
  int (*pcie_width_max)(nvmlDevice_t, unsigned*) = nullptr;
  int (*nvlink_state)(nvmlDevice_t, unsigned, int*) = nullptr;
  int (*nvlink_version)(nvmlDevice_t, unsigned, unsigned*) = nullptr;
  int (*mig_mode)(nvmlDevice_t, unsigned*, unsigned*) = nullptr;
  int (*power)(nvmlDevice_t, unsigned*) = nullptr;
  int (*power_limit)(nvmlDevice_t, unsigned*) = nullptr;
  int (*temperature)(nvmlDevice_t, int, unsigned*) = nullptr;

  std::string err(int rc) const {
    return std::string("NVML error ") + std::to_string(rc) + (error_string ? std::string(": ") + error_string(rc) : "");
  }
};

template <class F>
bool sym(void* lib, const char* name, F& f) {
  f = reinterpret_cast<F>(dlsym(lib, name));
  return f != nullptr;
}

Nvml& nvml() {
  static Nvml n;
  static std::once_flag once;
  std::call_once(once, [] {
    n.lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!n.lib) {
      const char* e = dlerror();
      n.why = std::string("NVML not loadable: ") + (e ? e : "dlopen(libnvidia-ml.so.1) failed");
      return;
    }
    bool ok = sym(n.lib, "nvmlInit_v2", n.init) && sym(n.lib, "nvmlDeviceGetHandleByUUID", n.by_uuid);
    sym(n.lib, "nvmlErrorString", n.error_string);
    if (!ok) {
      n.why = "NVML lacks nvmlInit_v2/nvmlDeviceGetHandleByUUID";
      n.lib = nullptr;
      return;
    }
    // Optional entry points: a missing one makes its field n/a, not the whole report.
    sym(n.lib, "nvmlSystemGetDriverVersion", n.system_driver_version);
    sym(n.lib, "nvmlDeviceGetClockInfo", n.clock);
    sym(n.lib, "nvmlDeviceGetMaxClockInfo", n.max_clock);
    sym(n.lib, "nvmlDeviceGetCurrPcieLinkGeneration", n.pcie_gen);
    sym(n.lib, "nvmlDeviceGetCurrPcieLinkWidth", n.pcie_width);
    sym(n.lib, "nvmlDeviceGetMaxPcieLinkGeneration", n.pcie_gen_max);
    sym(n.lib, "nvmlDeviceGetMaxPcieLinkWidth", n.pcie_width_max);
    sym(n.lib, "nvmlDeviceGetNvLinkState", n.nvlink_state);
    sym(n.lib, "nvmlDeviceGetNvLinkVersion", n.nvlink_version);
    sym(n.lib, "nvmlDeviceGetMigMode", n.mig_mode);
    sym(n.lib, "nvmlDeviceGetPowerUsage", n.power);
    sym(n.lib, "nvmlDeviceGetEnforcedPowerLimit", n.power_limit);
    sym(n.lib, "nvmlDeviceGetTemperature", n.temperature);
    if (const int rc = n.init(); rc != NVML_SUCCESS) {
      n.why = "nvmlInit failed (" + n.err(rc) + ")";
      n.lib = nullptr;
    }
  });
  return n;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) return std::nullopt;
  std::stringstream ss;
  ss << f.rdbuf();
  return trim(ss.str());
}

// Calls an NVML getter of one unsigned; n/a with the reason on a missing symbol or an error.
template <class F, class... A>
Maybe<unsigned> get_u(const Nvml& n, F f, const char* what, A... args) {
  if (!f) return Maybe<unsigned>::na(std::string(what) + " not in this NVML");
  unsigned v = 0;
  const int rc = f(args..., &v);
  if (rc != NVML_SUCCESS) return Maybe<unsigned>::na(n.err(rc));
  return Maybe<unsigned>::of(v);
}

template <class T>
void put(nlohmann::json& j, const char* key, const Maybe<T>& m) {
  if (m) j[key] = *m;
  else j[key] = nullptr, j[std::string(key) + "_na"] = m.why;
}

}  // namespace

std::optional<std::string> nvml_unavailable_reason() {
  const Nvml& n = nvml();
  if (!n.lib) return n.why;
  return std::nullopt;
}

Maybe<int> read_numa_node(const std::string& root, const std::string& bus) {
  const std::string path = root + "/bus/pci/devices/" + bus + "/numa_node";
  const auto s = read_file(path);
  if (!s) return Maybe<int>::na("cannot read " + path);
  try {
    const int v = std::stoi(*s);
    if (v < 0) return Maybe<int>::na("no NUMA affinity reported (numa_node = " + *s + ")");
    return Maybe<int>::of(v);
  } catch (const std::exception&) {
    return Maybe<int>::na("unparsable " + path + ": '" + *s + "'");
  }
}

Maybe<std::string> read_local_cpulist(const std::string& root, const std::string& bus) {
  const std::string path = root + "/bus/pci/devices/" + bus + "/local_cpulist";
  const auto s = read_file(path);
  if (!s || s->empty()) return Maybe<std::string>::na("cannot read " + path);
  return Maybe<std::string>::of(*s);
}

GpuSystemInfo query_gpu_system(const DeviceInfo& d, const std::string& sysfs_root) {
  GpuSystemInfo g;
  g.ordinal = d.ordinal;
  g.numa_node = read_numa_node(sysfs_root, d.pci_bus_id);
  g.local_cpulist = read_local_cpulist(sysfs_root, d.pci_bus_id);

  const Nvml& n = nvml();
  auto all_na = [&](const std::string& why) {
    g.sm_clock_mhz = g.sm_clock_max_mhz = g.mem_clock_mhz = g.mem_clock_max_mhz = Maybe<unsigned>::na(why);
    g.temperature_c = Maybe<unsigned>::na(why);
    g.pcie_gen = g.pcie_width = g.pcie_gen_max = g.pcie_width_max = Maybe<int>::na(why);
    g.nvlink = Maybe<NvLinkState>::na(why);
    g.mig_mode = Maybe<std::string>::na(why);
    g.power_w = g.power_limit_w = g.pcie_gbps_per_direction = Maybe<double>::na(why);
  };
  if (!n.lib) {
    all_na(n.why);
    return g;
  }
  nvmlDevice_t h = nullptr;
  if (const int rc = n.by_uuid(d.uuid.c_str(), &h); rc != NVML_SUCCESS) {
    all_na("NVML has no device " + d.uuid + " (" + n.err(rc) + ")");
    return g;
  }
  g.sm_clock_mhz = get_u(n, n.clock, "nvmlDeviceGetClockInfo", h, NVML_CLOCK_SM);
  g.sm_clock_max_mhz = get_u(n, n.max_clock, "nvmlDeviceGetMaxClockInfo", h, NVML_CLOCK_SM);
  g.mem_clock_mhz = get_u(n, n.clock, "nvmlDeviceGetClockInfo", h, NVML_CLOCK_MEM);
  g.mem_clock_max_mhz = get_u(n, n.max_clock, "nvmlDeviceGetMaxClockInfo", h, NVML_CLOCK_MEM);
  g.temperature_c = get_u(n, n.temperature, "nvmlDeviceGetTemperature", h, NVML_TEMPERATURE_GPU);
  auto as_int = [](const Maybe<unsigned>& m) {
    return m ? Maybe<int>::of(static_cast<int>(*m)) : Maybe<int>::na(m.why);
  };
  g.pcie_gen = as_int(get_u(n, n.pcie_gen, "nvmlDeviceGetCurrPcieLinkGeneration", h));
  g.pcie_width = as_int(get_u(n, n.pcie_width, "nvmlDeviceGetCurrPcieLinkWidth", h));
  g.pcie_gen_max = as_int(get_u(n, n.pcie_gen_max, "nvmlDeviceGetMaxPcieLinkGeneration", h));
  g.pcie_width_max = as_int(get_u(n, n.pcie_width_max, "nvmlDeviceGetMaxPcieLinkWidth", h));
  // The spec rate comes from the link's maximum generation and width (what this device and system
  // can train to): an idle GPU drops its current link to a lower generation to save power.
  const Maybe<int>& gen = g.pcie_gen_max ? g.pcie_gen_max : g.pcie_gen;
  const Maybe<int>& width = g.pcie_width_max ? g.pcie_width_max : g.pcie_width;
  if (gen && width) {
    const double bw = peak::pcie_gbps_per_direction(*gen, *width);
    g.pcie_gbps_per_direction =
        bw > 0 ? Maybe<double>::of(bw) : Maybe<double>::na("unknown PCIe generation " + std::to_string(*gen));
  } else {
    g.pcie_gbps_per_direction = Maybe<double>::na(gen ? width.why : gen.why);
  }
  if (!n.nvlink_state) {
    g.nvlink = Maybe<NvLinkState>::na("nvmlDeviceGetNvLinkState not in this NVML");
  } else {
    NvLinkState s;
    int first_rc = NVML_SUCCESS;
    for (unsigned l = 0; l < NVML_NVLINK_MAX_LINKS; ++l) {
      int active = 0;
      const int rc = n.nvlink_state(h, l, &active);
      if (rc != NVML_SUCCESS) {
        if (l == 0) first_rc = rc;
        continue;
      }
      ++s.links_total;
      if (active) {
        ++s.links_active;
        unsigned v = 0;
        if (s.version == 0 && n.nvlink_version && n.nvlink_version(h, l, &v) == NVML_SUCCESS)
          s.version = peak::nvlink_major_from_nvml(v);
      }
    }
    g.nvlink = s.links_total ? Maybe<NvLinkState>::of(s)
                             : Maybe<NvLinkState>::na("no NVLink (" + n.err(first_rc) + ")");
  }

  if (!n.mig_mode) {
    g.mig_mode = Maybe<std::string>::na("nvmlDeviceGetMigMode not in this NVML");
  } else {
    unsigned cur = 0, pending = 0;
    const int rc = n.mig_mode(h, &cur, &pending);
    if (rc != NVML_SUCCESS) {
      g.mig_mode = Maybe<std::string>::na(n.err(rc));
    } else {
      std::string m = cur ? "enabled" : "disabled";
      if (pending != cur) m += std::string(" (pending: ") + (pending ? "enabled" : "disabled") + ")";
      g.mig_mode = Maybe<std::string>::of(m);
    }
  }
  auto watts = [&](const Maybe<unsigned>& mw) {
    return mw ? Maybe<double>::of(*mw / 1000.0) : Maybe<double>::na(mw.why);
  };
  g.power_w = watts(get_u(n, n.power, "nvmlDeviceGetPowerUsage", h));
  g.power_limit_w = watts(get_u(n, n.power_limit, "nvmlDeviceGetEnforcedPowerLimit", h));
  return g;
}

SystemInfo query_system(const std::vector<DeviceInfo>& devices) {
  SystemInfo s;
  const Nvml& n = nvml();
  if (!n.lib) {
    s.nvml_driver_version = Maybe<std::string>::na(n.why);
  } else if (!n.system_driver_version) {
    s.nvml_driver_version = Maybe<std::string>::na("nvmlSystemGetDriverVersion not in this NVML");
  } else {
    char v[96] = {};
    const int rc = n.system_driver_version(v, sizeof v);
    s.nvml_driver_version = rc == NVML_SUCCESS ? Maybe<std::string>::of(v) : Maybe<std::string>::na(n.err(rc));
  }
  for (const DeviceInfo& d : devices) s.gpus.push_back(query_gpu_system(d));
  const int count = static_cast<int>(devices.size());
  s.peer.assign(count, std::vector<bool>(count, false));
  for (int i = 0; i < count; ++i)
    for (int j = 0; j < count; ++j) {
      if (i == j) {
        s.peer[i][j] = true;
        continue;
      }
      int can = 0;
      if (cudaDeviceCanAccessPeer(&can, i, j) != cudaSuccess) {
        cudaGetLastError();
        can = 0;
      }
      s.peer[i][j] = can != 0;
    }
  return s;
}

template <class T>
std::string to_text(const Maybe<T>& m, const std::string& suffix) {
  if (!m) return "n/a (" + m.why + ")";
  std::ostringstream os;
  os << *m << suffix;
  return os.str();
}
template std::string to_text(const Maybe<unsigned>&, const std::string&);
template std::string to_text(const Maybe<int>&, const std::string&);
template std::string to_text(const Maybe<double>&, const std::string&);
template std::string to_text(const Maybe<std::string>&, const std::string&);

void to_json(nlohmann::json& j, const GpuSystemInfo& g) {
  j = nlohmann::json::object();
  j["ordinal"] = g.ordinal;
  put(j, "sm_clock_mhz", g.sm_clock_mhz);
  put(j, "sm_clock_max_mhz", g.sm_clock_max_mhz);
  put(j, "mem_clock_mhz", g.mem_clock_mhz);
  put(j, "mem_clock_max_mhz", g.mem_clock_max_mhz);
  put(j, "pcie_gen", g.pcie_gen);
  put(j, "pcie_width", g.pcie_width);
  put(j, "pcie_gen_max", g.pcie_gen_max);
  put(j, "pcie_width_max", g.pcie_width_max);
  put(j, "pcie_gbps_per_direction", g.pcie_gbps_per_direction);
  if (g.nvlink) {
    j["nvlink"] = {{"links", g.nvlink->links_total}, {"active", g.nvlink->links_active}, {"version", g.nvlink->version},
                   {"gbps_per_direction", peak::nvlink_gbps_per_direction(g.nvlink->version, g.nvlink->links_active)}};
  } else {
    j["nvlink"] = nullptr;
    j["nvlink_na"] = g.nvlink.why;
  }
  put(j, "mig_mode", g.mig_mode);
  put(j, "power_w", g.power_w);
  put(j, "power_limit_w", g.power_limit_w);
  put(j, "temperature_c", g.temperature_c);
  put(j, "numa_node", g.numa_node);
  put(j, "local_cpulist", g.local_cpulist);
}

void to_json(nlohmann::json& j, const SystemInfo& s) {
  j = nlohmann::json::object();
  put(j, "nvml_driver_version", s.nvml_driver_version);
  j["gpus"] = s.gpus;
  j["peer_access"] = s.peer;
}

namespace {
void row(std::ostream& os, const char* k, const std::string& v) {
  char b[48];
  std::snprintf(b, sizeof b, "  %-28s", k);
  os << b << v << "\n";
}
}  // namespace

void print_gpu_system(std::ostream& os, const GpuSystemInfo& g) {
  row(os, "SM clock now / max", to_text(g.sm_clock_mhz, " MHz") + " / " + to_text(g.sm_clock_max_mhz, " MHz"));
  row(os, "memory clock now / max", to_text(g.mem_clock_mhz, " MHz") + " / " + to_text(g.mem_clock_max_mhz, " MHz"));
  std::string pcie = g.pcie_gen && g.pcie_width
                         ? "Gen" + std::to_string(*g.pcie_gen) + " x" + std::to_string(*g.pcie_width)
                         : to_text(g.pcie_gen);
  if (g.pcie_gen_max && g.pcie_width_max)
    pcie += " (max Gen" + std::to_string(*g.pcie_gen_max) + " x" + std::to_string(*g.pcie_width_max) + ")";
  if (g.pcie_gbps_per_direction) {
    char b[64];
    std::snprintf(b, sizeof b, "; %.1f GB/s per direction at max", *g.pcie_gbps_per_direction);
    pcie += b;
  }
  row(os, "PCIe link now", pcie);
  if (g.nvlink) {
    const NvLinkState& s = *g.nvlink;
    char b[128];
    std::snprintf(b, sizeof b, "%d of %d links active, NVLink %d, %.0f GB/s per direction", s.links_active, s.links_total,
                  s.version, peak::nvlink_gbps_per_direction(s.version, s.links_active));
    row(os, "NVLink", b);
  } else {
    row(os, "NVLink", "n/a (" + g.nvlink.why + ")");
  }
  row(os, "MIG mode", to_text(g.mig_mode));
  char pw[96] = "";
  if (g.power_w && g.power_limit_w) std::snprintf(pw, sizeof pw, "%.0f W of %.0f W limit", *g.power_w, *g.power_limit_w);
  row(os, "power", g.power_w && g.power_limit_w ? std::string(pw) : to_text(g.power_w));
  row(os, "temperature", to_text(g.temperature_c, " C"));
  row(os, "NUMA node / local CPUs", to_text(g.numa_node) + " / " + to_text(g.local_cpulist));
}

void print_peer_matrix(std::ostream& os, const SystemInfo& s) {
  const std::size_t n = s.peer.size();
  os << "Peer access (cudaDeviceCanAccessPeer, row = accessing GPU):";
  if (n < 2) {
    os << " n/a (one GPU)\n";
    return;
  }
  os << "\n      ";
  for (std::size_t j = 0; j < n; ++j) os << " GPU" << j;
  os << "\n";
  for (std::size_t i = 0; i < n; ++i) {
    os << "  GPU" << i;
    for (std::size_t j = 0; j < n; ++j) os << (i == j ? "    -" : s.peer[i][j] ? "  yes" : "   no");
    os << "\n";
  }
}

}  // namespace aipe
