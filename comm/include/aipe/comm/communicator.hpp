// An NCCL communicator that owns its ncclComm_t: destroyed in the destructor, aborted (ncclCommAbort) instead
// on every failure path, since a communicator that saw an error may hang in ncclCommDestroy. Every NCCL call
// is checked; the error names the call and carries ncclGetErrorString and ncclGetLastError's detail.
//
// Created from the launcher's bootstrap: one process driving every local GPU (ncclCommInitAll), or one process
// per GPU (mpirun, srun, torchrun-style) on GPU local_rank, rank 0's ncclUniqueId handed to the others through
// the TCP rendezvous (rendezvous.hpp). NVLink multicast is forced off before the first communicator exists.
#pragma once
#include <array>
#include <chrono>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "aipe/comm/bootstrap.hpp"

struct ncclComm;  // nccl.h's ncclComm_t is ncclComm*; the header stays out of aipe's public headers

namespace aipe::comm {

// An NCCL call failed; the message names it.
struct NcclError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// No NCCL in this build or on this machine (nccl_status().reason): `aipe comm` exits 4, the tests skip.
struct NcclUnavailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Sets NCCL_NVLS_ENABLE=0, whatever it was: aipe's collectives never use NVLink SHARP (docs/comm.md). Returns a
// note for the user when they had set it to something else ("" when it was unset or 0).
std::string force_nvls_off();

// ncclUniqueId's 128 bytes, what the rendezvous carries.
using UniqueId = std::array<std::uint8_t, 128>;
UniqueId make_unique_id();

class Communicator {
 public:
  // Rank `rank` of `world_size` on CUDA device `device` (ncclCommInitRank; every rank must call it).
  Communicator(const UniqueId& id, int world_size, int rank, int device);
  // One communicator per device of `devices`, ranks in that order, all in this process (ncclCommInitAll).
  static std::vector<Communicator> init_all(const std::vector<int>& devices);

  ~Communicator();
  Communicator(Communicator&& o) noexcept;
  Communicator& operator=(Communicator&& o) noexcept;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  ncclComm* get() const { return comm_; }
  int rank() const { return rank_; }
  int world_size() const { return world_; }
  int device() const { return device_; }

  // ncclCommAbort now (idempotent); the destructor then has nothing left to do.
  void abort() noexcept;
  // Throws NcclError (after aborting) when the communicator reported an asynchronous error.
  void check_async(const std::string& during);

 private:
  Communicator() = default;
  ncclComm* comm_ = nullptr;
  int rank_ = 0, world_ = 1, device_ = 0;
};

// Throws NcclError for a result other than ncclSuccess: "<call> failed: <error string> (<last error>)", after
// aborting every communicator in `comms` (a group call fails for all of them at once).
void nccl_check(int result, const char* call, std::span<Communicator> comms);

// The communicators of this process: without a launcher, one per device in `devices` (empty: every visible
// GPU); under one, a single communicator on GPU local_rank (GPU 0 when the launcher left this process exactly
// one GPU; an error naming the local rank when there is no such GPU), the unique id sent from rank 0 through
// the rendezvous within `timeout`.
std::vector<Communicator> communicators_for(const Bootstrap& b, const std::vector<int>& devices,
                                            std::chrono::milliseconds timeout);

}  // namespace aipe::comm
