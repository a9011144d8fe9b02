// The NCCL unique id exchange for launchers without MPI: rank 0 listens on MASTER_ADDR:MASTER_PORT, every other
// rank connects (retrying while rank 0 is not up yet) and sends its rank; once all have come, rank 0 sends each
// the same blob (the 128-byte ncclUniqueId). Bounded in time everywhere: a rank that never comes is an error
// naming it, not a hang.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace aipe::comm {

struct RendezvousError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

using Blob = std::vector<std::uint8_t>;

// The wire format, every field a big-endian u32: a rank's hello is (magic "aipe", rank); rank 0's reply is
// (size, then `size` bytes of blob). The readers of both are the boundary a stray or broken peer reaches.
constexpr std::uint32_t kRendezvousMagic = 0x61697065;
constexpr std::size_t kMaxBlobBytes = 1 << 16;  // the blob is a 128-byte ncclUniqueId: anything near 4 GiB is garbage
// The rank a hello announces; -1 for a stranger (not aipe's magic: dropped, not trusted); throws for a rank
// outside 1..world_size-1.
int parse_hello(const std::uint8_t (&bytes)[8], int world_size);
// The blob size of a reply; throws past kMaxBlobBytes (so a corrupt prefix cannot allocate gigabytes).
std::size_t parse_blob_size(const std::uint8_t (&bytes)[4]);

// Rank 0's side. Binding happens in the constructor so "port in use" is reported at once; port 0 picks an
// ephemeral port (tests), read back with port().
class RendezvousServer {
 public:
  RendezvousServer(const std::string& addr, int port);
  ~RendezvousServer();
  RendezvousServer(const RendezvousServer&) = delete;
  RendezvousServer& operator=(const RendezvousServer&) = delete;
  int port() const { return port_; }
  // Waits for ranks 1..world_size-1 (each once), then sends them `blob`.
  void serve(const Blob& blob, int world_size, std::chrono::milliseconds timeout);

 private:
  int fd_ = -1;
  int port_ = 0;
};

// Ranks 1..n-1: connect (retrying every retry_interval until timeout), announce `rank`, receive the blob.
Blob rendezvous_receive(const std::string& addr, int port, int rank, std::chrono::milliseconds timeout,
                        std::chrono::milliseconds retry_interval = std::chrono::milliseconds(100));

}  // namespace aipe::comm
