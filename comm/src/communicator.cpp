#include "aipe/comm/communicator.hpp"

#include <cuda_runtime_api.h>

#include <cstdlib>
#include <cstring>
#include <utility>

#include "aipe/check.hpp"
#include "aipe/comm/nccl_status.hpp"
#include "aipe/comm/rendezvous.hpp"
#include "nccl_api.hpp"

namespace aipe::comm {

std::string force_nvls_off() {
  const char* before = std::getenv("NCCL_NVLS_ENABLE");
  std::string note;
  if (before && std::string(before) != "0")
    note = std::string("NCCL_NVLS_ENABLE=") + before +
           " ignored: aipe runs NCCL with NVLink multicast (NVLS) off, NCCL_NVLS_ENABLE=0";
  disable_nvls();
  return note;
}

#if AIPE_HAVE_NCCL
namespace {

const detail::NcclApi& api() {
  std::string why;
  const detail::NcclApi* a = detail::nccl_api(&why);
  if (!a) throw NcclUnavailable(nccl_status().reason);
  return *a;
}

std::string describe(ncclResult_t r, ncclComm_t comm) {
  const auto& a = api();
  std::string s = a.GetErrorString(r);
  const char* last = a.GetLastError(comm);
  if (last && *last) s += " (" + std::string(last) + ")";
  return s;
}

}  // namespace

UniqueId make_unique_id() {
  ncclUniqueId id;
  nccl_check(api().GetUniqueId(&id), "ncclGetUniqueId", {});
  UniqueId out;
  std::memcpy(out.data(), id.internal, out.size());
  return out;
}

Communicator::Communicator(const UniqueId& id, int world_size, int rank, int device)
    : rank_(rank), world_(world_size), device_(device) {
  const auto& a = api();
  disable_nvls();
  ncclUniqueId nid;
  std::memcpy(nid.internal, id.data(), id.size());
  AIPE_CUDA(cudaSetDevice(device));
  ncclComm_t c = nullptr;
  ncclResult_t r = a.CommInitRank(&c, world_size, nid, rank);
  if (r != ncclSuccess) {
    std::string msg = "ncclCommInitRank (rank " + std::to_string(rank) + " of " + std::to_string(world_size) +
                      ", GPU " + std::to_string(device) + ") failed: " + describe(r, c);
    if (c) a.CommAbort(c);
    throw NcclError(msg);
  }
  comm_ = c;
}

std::vector<Communicator> Communicator::init_all(const std::vector<int>& devices) {
  const auto& a = api();
  disable_nvls();
  if (devices.empty()) throw NcclError("ncclCommInitAll: no devices given");
  std::vector<ncclComm_t> raw(devices.size(), nullptr);
  ncclResult_t r = a.CommInitAll(raw.data(), static_cast<int>(devices.size()), devices.data());
  std::vector<Communicator> out;
  for (std::size_t i = 0; i < devices.size(); ++i) {
    Communicator c;
    c.comm_ = raw[i];
    c.rank_ = static_cast<int>(i);
    c.world_ = static_cast<int>(devices.size());
    c.device_ = devices[i];
    out.push_back(std::move(c));
  }
  if (r != ncclSuccess) {
    std::string msg = "ncclCommInitAll (" + std::to_string(devices.size()) + " GPUs) failed: " + describe(r, nullptr);
    for (auto& c : out) c.abort();
    throw NcclError(msg);
  }
  return out;
}

Communicator::~Communicator() {
  if (!comm_) return;
  const auto* a = detail::nccl_api(nullptr);
  if (a) a->CommDestroy(comm_);
  comm_ = nullptr;
}

Communicator::Communicator(Communicator&& o) noexcept
    : comm_(std::exchange(o.comm_, nullptr)), rank_(o.rank_), world_(o.world_), device_(o.device_) {}

Communicator& Communicator::operator=(Communicator&& o) noexcept {
  std::swap(comm_, o.comm_);
  std::swap(rank_, o.rank_);
  std::swap(world_, o.world_);
  std::swap(device_, o.device_);
  return *this;
}

void Communicator::abort() noexcept {
  if (!comm_) return;
  if (const auto* a = detail::nccl_api(nullptr)) a->CommAbort(comm_);
  comm_ = nullptr;
}

void Communicator::check_async(const std::string& during) {
  if (!comm_) throw NcclError("rank " + std::to_string(rank_) + ": communicator already aborted " + during);
  ncclResult_t async = ncclSuccess;
  ncclResult_t r = api().CommGetAsyncError(comm_, &async);
  if (r == ncclSuccess && (async == ncclSuccess || async == ncclInProgress)) return;
  const ncclResult_t bad = r != ncclSuccess ? r : async;
  std::string msg = "rank " + std::to_string(rank_) + ": NCCL reported an asynchronous error " + during + ": " +
                    describe(bad, comm_);
  abort();
  throw NcclError(msg);
}

void nccl_check(int result, const char* call, std::span<Communicator> comms) {
  if (result == ncclSuccess) return;
  std::string msg = std::string(call) + " failed: " +
                    describe(static_cast<ncclResult_t>(result), comms.empty() ? nullptr : comms[0].get());
  for (auto& c : comms) c.abort();
  throw NcclError(msg);
}

#else  // built without NCCL: every entry point says so

UniqueId make_unique_id() { throw NcclUnavailable(nccl_status().reason); }
Communicator::Communicator(const UniqueId&, int, int, int) { throw NcclUnavailable(nccl_status().reason); }
std::vector<Communicator> Communicator::init_all(const std::vector<int>&) {
  throw NcclUnavailable(nccl_status().reason);
}
Communicator::~Communicator() = default;
Communicator::Communicator(Communicator&& o) noexcept
    : comm_(std::exchange(o.comm_, nullptr)), rank_(o.rank_), world_(o.world_), device_(o.device_) {}
Communicator& Communicator::operator=(Communicator&& o) noexcept {
  std::swap(comm_, o.comm_);
  return *this;
}
void Communicator::abort() noexcept {}
void Communicator::check_async(const std::string&) {}
void nccl_check(int result, const char* call, std::span<Communicator>) {
  if (result != 0) throw NcclError(std::string(call) + " failed");
}

#endif

std::vector<Communicator> communicators_for(const Bootstrap& b, const std::vector<int>& devices,
                                            std::chrono::milliseconds timeout) {
  if (!nccl_status().available) throw NcclUnavailable(nccl_status().reason);
  int visible = 0;
  if (cudaGetDeviceCount(&visible) != cudaSuccess || visible == 0)
    throw NcclError("no CUDA device is visible to this process");
  if (b.launcher == Launcher::single_process) {
    std::vector<int> list = devices;
    if (list.empty())
      for (int d = 0; d < visible; ++d) list.push_back(d);
    for (int d : list)
      if (d < 0 || d >= visible)
        throw BadInput("GPU " + std::to_string(d) + " does not exist (" + std::to_string(visible) + " visible)");
    return Communicator::init_all(list);
  }
  // One process per GPU: the GPU is the local rank, unless the launcher bound one GPU to each process
  // (srun --gpus-per-task=1, CUDA_VISIBLE_DEVICES per rank) and this process sees only that one.
  const int device = b.local_rank < visible ? b.local_rank : visible == 1 ? 0 : -1;
  if (device < 0)
    throw BadInput(std::string(launcher_name(b.launcher)) + ": local rank " + std::to_string(b.local_rank) +
                   " has no GPU of its own (" + std::to_string(visible) +
                   " visible to this process; one process per GPU, device = local rank)");
  UniqueId id{};
  if (b.world_size > 1) {
    if (b.rank == 0) {
      id = make_unique_id();
      RendezvousServer server(b.master_addr, b.master_port);
      server.serve(Blob(id.begin(), id.end()), b.world_size, timeout);
    } else {
      Blob blob = rendezvous_receive(b.master_addr, b.master_port, b.rank, timeout);
      if (blob.size() != id.size())
        throw NcclError("rendezvous: rank 0 sent " + std::to_string(blob.size()) + " bytes, not a " +
                        std::to_string(id.size()) + "-byte ncclUniqueId");
      std::copy(blob.begin(), blob.end(), id.begin());
    }
  } else {
    id = make_unique_id();
  }
  std::vector<Communicator> out;
  out.emplace_back(id, b.world_size, b.rank, device);
  return out;
}

}  // namespace aipe::comm
