#include "aipe/comm/rendezvous.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <thread>

using namespace aipe::comm;
using namespace std::chrono_literals;

namespace {
Blob unique_id_like() {  // 128 bytes like ncclUniqueId, every value distinct from its neighbour
  Blob b(128);
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<std::uint8_t>(i * 37 + 11);
  return b;
}
}  // namespace

TEST(Rendezvous, ForkedRanksAllReceiveTheBlob) {
  constexpr int world = 5;
  RendezvousServer server("127.0.0.1", 0);
  ASSERT_GT(server.port(), 0);
  const Blob blob = unique_id_like();
  std::vector<pid_t> children;
  for (int rank = 1; rank < world; ++rank) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {  // child: exit 0 only if the blob arrived intact
      int code = 3;
      try {
        code = rendezvous_receive("127.0.0.1", server.port(), rank, 10s) == blob ? 0 : 1;
      } catch (...) {
        code = 2;
      }
      _exit(code);
    }
    children.push_back(pid);
  }
  server.serve(blob, world, 10s);
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "child " << pid << " (1 wrong blob, 2 error)";
  }
}

TEST(Rendezvous, ClientsThatStartBeforeRankZeroRetry) {
  // Reserve a port, close it, start the clients, then listen on it: they must retry until it is up.
  int port;
  { RendezvousServer probe("127.0.0.1", 0); port = probe.port(); }
  const Blob blob = unique_id_like();
  std::vector<Blob> got(3);
  std::vector<std::thread> ranks;
  for (int r = 1; r <= 2; ++r)
    ranks.emplace_back([&, r] { got[r] = rendezvous_receive("127.0.0.1", port, r, 10s, 20ms); });
  std::this_thread::sleep_for(200ms);
  RendezvousServer server("127.0.0.1", port);
  server.serve(blob, 3, 10s);
  for (auto& t : ranks) t.join();
  EXPECT_EQ(got[1], blob);
  EXPECT_EQ(got[2], blob);
}

TEST(Rendezvous, WorldOfOneNeedsNobody) {
  RendezvousServer server("127.0.0.1", 0);
  server.serve(unique_id_like(), 1, 100ms);
}

TEST(Rendezvous, PortInUseIsSaid) {
  RendezvousServer first("127.0.0.1", 0);
  try {
    RendezvousServer second("127.0.0.1", first.port());
    FAIL() << "second listener on the same port";
  } catch (const RendezvousError& e) {
    EXPECT_NE(std::string(e.what()).find("port in use"), std::string::npos) << e.what();
  }
}

TEST(Rendezvous, APeerThatNeverComesIsNamedWithinTheTimeout) {
  RendezvousServer server("127.0.0.1", 0);
  bool rank1_failed = false;
  std::thread rank1([&] {
    try {
      rendezvous_receive("127.0.0.1", server.port(), 1, 5s);
    } catch (const RendezvousError&) {
      rank1_failed = true;
    }
  });
  auto start = std::chrono::steady_clock::now();
  try {
    server.serve(unique_id_like(), 3, 500ms);
    FAIL() << "serve returned without rank 2";
  } catch (const RendezvousError& e) {
    EXPECT_NE(std::string(e.what()).find("1 of 2 ranks"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("never came: rank 2"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  // Rank 1 sees its connection closed (the server's sockets went with the exception).
  rank1.join();
  EXPECT_TRUE(rank1_failed);
}

TEST(Rendezvous, RankZeroThatNeverListensIsAnErrorNotAHang) {
  int port;
  { RendezvousServer probe("127.0.0.1", 0); port = probe.port(); }
  auto start = std::chrono::steady_clock::now();
  try {
    rendezvous_receive("127.0.0.1", port, 1, 300ms, 50ms);
    FAIL() << "received from nobody";
  } catch (const RendezvousError& e) {
    EXPECT_NE(std::string(e.what()).find("rank 0 never listened"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

TEST(Rendezvous, BadRanksAndAddressesAreRejected) {
  RendezvousServer server("127.0.0.1", 0);
  std::thread bad([&] {
    try {
      rendezvous_receive("127.0.0.1", server.port(), 7, 2s);
    } catch (const RendezvousError&) {
    }
  });
  try {
    server.serve(unique_id_like(), 2, 2s);
    FAIL() << "accepted rank 7 in a world of 2";
  } catch (const RendezvousError& e) {
    EXPECT_NE(std::string(e.what()).find("rank 7"), std::string::npos) << e.what();
  }
  bad.join();
  EXPECT_THROW(RendezvousServer("no-such-host.invalid", 0), RendezvousError);
  EXPECT_THROW(RendezvousServer("127.0.0.1", 70000), RendezvousError);
}

TEST(Rendezvous, WireReadersCheckEveryField) {
  using aipe::comm::parse_blob_size;
  using aipe::comm::parse_hello;
  using aipe::comm::RendezvousError;
  const std::uint8_t ok[8] = {0x61, 0x69, 0x70, 0x65, 0, 0, 0, 3};
  EXPECT_EQ(parse_hello(ok, 4), 3);
  const std::uint8_t stranger[8] = {'G', 'E', 'T', ' ', 0, 0, 0, 1};
  EXPECT_EQ(parse_hello(stranger, 4), -1);
  EXPECT_THROW(parse_hello(ok, 3), RendezvousError);  // rank 3 of 3
  const std::uint8_t zero[8] = {0x61, 0x69, 0x70, 0x65, 0, 0, 0, 0};
  EXPECT_THROW(parse_hello(zero, 4), RendezvousError);  // rank 0 never says hello
  const std::uint8_t huge[8] = {0x61, 0x69, 0x70, 0x65, 0xff, 0xff, 0xff, 0xff};
  try {
    parse_hello(huge, 4);
    ADD_FAILURE() << "rank 2^32-1 accepted";
  } catch (const RendezvousError& e) {
    EXPECT_NE(std::string(e.what()).find("rank 4294967295, outside 1..3"), std::string::npos) << e.what();
  }
  const std::uint8_t id[4] = {0, 0, 0, 128};
  EXPECT_EQ(parse_blob_size(id), 128u);
  const std::uint8_t big[4] = {0xff, 0xff, 0xff, 0xff};
  EXPECT_THROW(parse_blob_size(big), RendezvousError);
  const std::uint8_t limit[4] = {0, 1, 0, 0};
  EXPECT_EQ(parse_blob_size(limit), aipe::comm::kMaxBlobBytes);
}
