#include "aipe/comm/bootstrap.hpp"

#include <charconv>
#include <cstdlib>
#include <vector>

extern char** environ;

namespace aipe::comm {
namespace {

const std::string* find(const Environment& env, const std::string& name) {
  auto it = env.find(name);
  return it == env.end() ? nullptr : &it->second;
}

// A non-negative decimal integer that fits an int; anything else is an error naming the variable.
int parse_int(const std::string& name, const std::string& text) {
  int value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end)
    throw BootstrapError(name + "='" + text + "' is not an integer");
  if (value < 0) throw BootstrapError(name + "=" + text + " is negative");
  return value;
}

// The three numbers of a launcher: all present or an error listing the missing ones.
struct Triple {
  int rank, size, local;
};
Triple read_triple(const Environment& env, const char* launcher, const std::string& rank_var,
                   const std::string& size_var, const std::string& local_var) {
  std::vector<std::string> missing;
  for (const auto* name : {&rank_var, &size_var, &local_var})
    if (!find(env, *name)) missing.push_back(*name);
  if (!missing.empty()) {
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
    throw BootstrapError(std::string(launcher) + " environment is incomplete: " + list + " not set");
  }
  Triple t{parse_int(rank_var, *find(env, rank_var)), parse_int(size_var, *find(env, size_var)),
           parse_int(local_var, *find(env, local_var))};
  if (t.size == 0) throw BootstrapError(size_var + "=0: the world has no ranks");
  if (t.rank >= t.size)
    throw BootstrapError(rank_var + "=" + std::to_string(t.rank) + " is not below " + size_var + "=" +
                         std::to_string(t.size));
  // Only this bound holds under every mapping (a rankfile may order ranks on a host unlike their global order).
  if (t.local >= t.size)
    throw BootstrapError(local_var + "=" + std::to_string(t.local) + " is not below " + size_var + "=" +
                         std::to_string(t.size));
  return t;
}

int read_port(const Environment& env, int fallback) {
  const std::string* text = find(env, "MASTER_PORT");
  if (!text) return fallback;
  int port = parse_int("MASTER_PORT", *text);
  if (port == 0 || port > 65535) throw BootstrapError("MASTER_PORT=" + *text + " is not a TCP port (1-65535)");
  return port;
}

bool any_set(const Environment& env, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (find(env, n)) return true;
  return false;
}

}  // namespace

const char* launcher_name(Launcher launcher) {
  switch (launcher) {
    case Launcher::open_mpi: return "open-mpi";
    case Launcher::slurm: return "slurm";
    case Launcher::torchrun: return "torchrun";
    case Launcher::single_process: return "single-process";
  }
  return "?";
}

Bootstrap detect_bootstrap(const Environment& env, const BootstrapDefaults& defaults) {
  Bootstrap b;
  std::string master;
  const std::string* env_master = find(env, "MASTER_ADDR");
  if (any_set(env, {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"})) {
    b.launcher = Launcher::open_mpi;
    auto t = read_triple(env, "Open MPI", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                         "OMPI_COMM_WORLD_LOCAL_RANK");
    b.rank = t.rank, b.world_size = t.size, b.local_rank = t.local;
    master = env_master ? *env_master : defaults.master_addr;
  } else if (any_set(env, {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"})) {
    b.launcher = Launcher::slurm;
    auto t = read_triple(env, "Slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID");
    b.rank = t.rank, b.world_size = t.size, b.local_rank = t.local;
    const std::string* launch_node = find(env, "SLURM_LAUNCH_NODE_IPADDR");
    master = env_master ? *env_master : launch_node ? *launch_node : defaults.master_addr;
  } else if (any_set(env, {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"})) {
    b.launcher = Launcher::torchrun;
    auto t = read_triple(env, "torchrun-style", "RANK", "WORLD_SIZE", "LOCAL_RANK");
    b.rank = t.rank, b.world_size = t.size, b.local_rank = t.local;
    // torchrun always sets both; a partial set is a launch script's mistake, not something to guess around.
    if (!env_master) throw BootstrapError("torchrun-style environment is incomplete: MASTER_ADDR not set");
    if (!find(env, "MASTER_PORT"))
      throw BootstrapError("torchrun-style environment is incomplete: MASTER_PORT not set");
    master = *env_master;
  } else {
    return b;  // one process, every local GPU: no rendezvous
  }
  if (b.world_size > 1 && master.empty())
    throw BootstrapError(std::string(launcher_name(b.launcher)) +
                         ": no rendezvous address (set MASTER_ADDR or pass one)");
  b.master_addr = master;
  b.master_port = read_port(env, defaults.master_port);
  return b;
}

Environment process_environment() {
  Environment env;
  for (char** e = environ; e && *e; ++e) {
    std::string entry(*e);
    auto eq = entry.find('=');
    if (eq != std::string::npos) env[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  return env;
}

void disable_nvls() { setenv("NCCL_NVLS_ENABLE", "0", /*overwrite=*/1); }

}  // namespace aipe::comm
