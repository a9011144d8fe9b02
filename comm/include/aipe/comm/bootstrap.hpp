// Who this process is in a multi-process job: rank, world size, local rank and the rendezvous address,
// read from the launcher's environment. Detection order (the first launcher whose variables are present wins):
//   1. Open MPI   (mpirun):  OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK
//   2. Slurm      (srun):    SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID; master from MASTER_ADDR, else
//                            SLURM_LAUNCH_NODE_IPADDR, else the caller's default
//   3. torchrun-style:       RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT
//   4. none of the above:    one process driving every local GPU (rank 0 of 1; ncclCommInitAll)
// Open MPI and Slurm inside torchrun-style jobs are common (srun torchrun ...), so the launcher that started the
// process itself is preferred. The environment is passed in as a map so every path is testable on the CPU.
#pragma once
#include <map>
#include <stdexcept>
#include <string>

namespace aipe::comm {

using Environment = std::map<std::string, std::string>;

enum class Launcher { open_mpi, slurm, torchrun, single_process };
const char* launcher_name(Launcher launcher);

struct BootstrapDefaults {
  std::string master_addr;  // used when the launcher names no master (empty: none, an error for world > 1)
  int master_port = 29500;  // torchrun's default, used when MASTER_PORT is not set (not for torchrun itself)
};

struct Bootstrap {
  Launcher launcher = Launcher::single_process;
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr;  // where rank 0 listens for the rendezvous (empty for world size 1)
  int master_port = 0;
};

// Thrown for a missing, malformed or inconsistent variable; the message names it.
struct BootstrapError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

Bootstrap detect_bootstrap(const Environment& env, const BootstrapDefaults& defaults = {});

// The process's own environment as a map (for detect_bootstrap).
Environment process_environment();

// NVLink multicast (NVLS) stays off in aipe: NCCL reads NCCL_NVLS_ENABLE when a communicator is created, so this
// must run before the first ncclCommInit*. Always overwrites: a user's NCCL_NVLS_ENABLE=1 is not honoured.
void disable_nvls();

}  // namespace aipe::comm
