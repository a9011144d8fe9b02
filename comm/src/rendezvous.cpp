#include "aipe/comm/rendezvous.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <memory>
#include <set>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace aipe::comm {
namespace {

using Clock = std::chrono::steady_clock;

// Closes a socket on every path.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

int ms_left(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

sockaddr_in resolve(const std::string& addr, int port) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(addr.c_str(), nullptr, &hints, &res); rc != 0 || !res)
    throw RendezvousError("rendezvous: cannot resolve '" + addr + "': " + gai_strerror(rc));
  sockaddr_in sa = *reinterpret_cast<sockaddr_in*>(res->ai_addr);
  freeaddrinfo(res);
  sa.sin_port = htons(static_cast<std::uint16_t>(port));
  return sa;
}

// Moves exactly n bytes before the deadline, or throws naming what was being done.
void io_all(int fd, void* data, std::size_t n, bool sending, Clock::time_point deadline, const std::string& what) {
  auto* p = static_cast<std::uint8_t*>(data);
  while (n > 0) {
    pollfd pfd{fd, static_cast<short>(sending ? POLLOUT : POLLIN), 0};
    int rc = poll(&pfd, 1, ms_left(deadline));
    if (rc == 0) throw RendezvousError("rendezvous: timed out " + what);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) throw RendezvousError("rendezvous: poll failed " + what + ": " + std::strerror(errno));
    ssize_t k = sending ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0)
      throw RendezvousError("rendezvous: connection lost " + what + (k < 0 ? std::string(": ") + std::strerror(errno) : ""));
    p += k;
    n -= static_cast<std::size_t>(k);
  }
}

}  // namespace

namespace {
std::uint32_t be32(const std::uint8_t* b) {
  return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | b[3];
}
}  // namespace

int parse_hello(const std::uint8_t (&bytes)[8], int world_size) {
  if (be32(bytes) != kRendezvousMagic) return -1;
  const std::uint32_t rank = be32(bytes + 4);
  if (rank < 1 || rank >= static_cast<std::uint32_t>(world_size < 1 ? 1 : world_size))
    throw RendezvousError("rendezvous: a peer announced rank " + std::to_string(rank) + ", outside 1.." +
                          std::to_string(world_size - 1));
  return static_cast<int>(rank);
}

std::size_t parse_blob_size(const std::uint8_t (&bytes)[4]) {
  const std::uint32_t n = be32(bytes);
  if (n > kMaxBlobBytes)
    throw RendezvousError("rendezvous: rank 0 announced a " + std::to_string(n) + "-byte id, more than the " +
                          std::to_string(kMaxBlobBytes) + " any NCCL id takes (not an aipe rendezvous?)");
  return n;
}

RendezvousServer::RendezvousServer(const std::string& addr, int port) {
  if (port < 0 || port > 65535) throw RendezvousError("rendezvous: port " + std::to_string(port) + " out of range");
  sockaddr_in sa = resolve(addr, port);
  fd_ = socket(AF_INET, SOCK_STREAM, 0);
  if (fd_ < 0) throw RendezvousError(std::string("rendezvous: socket: ") + std::strerror(errno));
  // SO_REUSEADDR lets a restarted job rebind a port in TIME_WAIT; a live listener still makes bind fail.
  int one = 1;
  setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || listen(fd_, 128) != 0) {
    int err = errno;
    close(fd_);
    fd_ = -1;
    throw RendezvousError("rendezvous: cannot listen on " + addr + ":" + std::to_string(port) + ": " +
                          (err == EADDRINUSE ? "port in use (another job, or a previous run still listening)"
                                             : std::strerror(err)));
  }
  socklen_t len = sizeof sa;
  getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
  port_ = ntohs(sa.sin_port);
}

RendezvousServer::~RendezvousServer() {
  if (fd_ >= 0) close(fd_);
}

void RendezvousServer::serve(const Blob& blob, int world_size, std::chrono::milliseconds timeout) {
  if (world_size < 1) throw RendezvousError("rendezvous: world size " + std::to_string(world_size) + " < 1");
  if (blob.size() > kMaxBlobBytes)
    throw RendezvousError("rendezvous: a " + std::to_string(blob.size()) + "-byte blob is more than the receivers take");
  auto deadline = Clock::now() + timeout;
  std::vector<std::unique_ptr<Fd>> peers;
  std::set<int> seen;
  while (static_cast<int>(seen.size()) < world_size - 1) {
    pollfd pfd{fd_, POLLIN, 0};
    int rc = poll(&pfd, 1, ms_left(deadline));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) {
      std::string missing;
      for (int r = 1; r < world_size; ++r) {
        if (seen.count(r)) continue;
        if (!missing.empty()) missing += ' ';
        missing += std::to_string(r);
      }
      throw RendezvousError("rendezvous: " + std::to_string(seen.size()) + " of " + std::to_string(world_size - 1) +
                            " ranks connected within " + std::to_string(timeout.count()) +
                            " ms; never came: rank " + missing);
    }
    auto peer = std::make_unique<Fd>(accept(fd_, nullptr, nullptr));
    if (peer->fd < 0) continue;
    std::uint8_t hello[8];
    io_all(peer->fd, hello, sizeof hello, false, deadline, "reading a rank's hello");
    const int rank = parse_hello(hello, world_size);
    if (rank < 0) continue;  // not one of ours: drop it
    if (!seen.insert(rank).second) throw RendezvousError("rendezvous: rank " + std::to_string(rank) + " came twice");
    peers.push_back(std::move(peer));
  }
  std::uint32_t size = htonl(static_cast<std::uint32_t>(blob.size()));
  for (auto& peer : peers) {
    io_all(peer->fd, &size, sizeof size, true, deadline, "sending the blob size");
    io_all(peer->fd, const_cast<std::uint8_t*>(blob.data()), blob.size(), true, deadline, "sending the blob");
  }
}

Blob rendezvous_receive(const std::string& addr, int port, int rank, std::chrono::milliseconds timeout,
                        std::chrono::milliseconds retry_interval) {
  auto deadline = Clock::now() + timeout;
  sockaddr_in sa = resolve(addr, port);
  const std::string where = addr + ":" + std::to_string(port);
  int attempts = 0;
  for (;;) {
    Fd fd(socket(AF_INET, SOCK_STREAM, 0));
    if (fd.fd < 0) throw RendezvousError(std::string("rendezvous: socket: ") + std::strerror(errno));
    ++attempts;
    if (connect(fd.fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
      std::uint32_t hello[2] = {htonl(kRendezvousMagic), htonl(static_cast<std::uint32_t>(rank))};
      io_all(fd.fd, hello, sizeof hello, true, deadline, "sending the hello to " + where);
      std::uint8_t size[4];
      io_all(fd.fd, size, sizeof size, false, deadline, "waiting for rank 0 at " + where);
      Blob blob(parse_blob_size(size));
      io_all(fd.fd, blob.data(), blob.size(), false, deadline, "receiving the blob from " + where);
      return blob;
    }
    int err = errno;
    // Refused: rank 0 is not listening yet; retry until the deadline. Anything else is final.
    if (err != ECONNREFUSED && err != ETIMEDOUT && err != EINTR)
      throw RendezvousError("rendezvous: cannot connect to " + where + ": " + std::strerror(err));
    if (ms_left(deadline) == 0)
      throw RendezvousError("rendezvous: rank 0 never listened at " + where + " (" + std::to_string(attempts) +
                            " attempts in " + std::to_string(timeout.count()) + " ms)");
    std::this_thread::sleep_for(std::min(retry_interval, std::chrono::milliseconds(ms_left(deadline) + 1)));
  }
}

}  // namespace aipe::comm
