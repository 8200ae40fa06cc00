// tcp-echo and udp-echo through the real binary, on IPv4 and IPv6 loopback.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "tests/integration/harness.hpp"

using namespace itest;

namespace {

TEST(Echo, TcpRoundTrip) {
  Preforkd server({.workers = 2});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  int fd = connect_tcp("127.0.0.1", server.echo_port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "hello, echo\n"));
  shutdown(fd, SHUT_WR);
  EXPECT_EQ(read_until_close(fd, 3s), "hello, echo\n");
  close(fd);
}

// 4 MiB through one connection: more than socket buffers hold, so the worker's
// back-pressure (pause reading while the write queue is full) is exercised.
TEST(Echo, TcpLargeTransferComesBackIntact) {
  Preforkd server({.workers = 2});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  int fd = connect_tcp("127.0.0.1", server.echo_port(), 10s);
  ASSERT_GE(fd, 0);
  std::string payload(4 << 20, '\0');
  std::mt19937 rng(7);
  for (auto& c : payload) c = static_cast<char>(rng());
  std::thread writer([&] {
    send_all(fd, payload);
    shutdown(fd, SHUT_WR);
  });
  std::string echoed = read_until_close(fd, 20s);
  writer.join();
  close(fd);
  EXPECT_EQ(echoed.size(), payload.size());
  EXPECT_TRUE(echoed == payload);
}

TEST(Echo, UdpRoundTripIpv4) {
  Preforkd server({.workers = 2});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  for (int i = 0; i < 20; ++i) {
    std::string payload = "datagram " + std::to_string(i);
    EXPECT_EQ(udp_roundtrip("127.0.0.1", server.echo_port(), payload), std::optional<std::string>(payload));
  }
  EXPECT_EQ(udp_roundtrip("127.0.0.1", server.echo_port(), ""), std::optional<std::string>(""))
      << "an empty datagram is echoed too";
  std::string big(60000, 'x');
  EXPECT_EQ(udp_roundtrip("127.0.0.1", server.echo_port(), big), std::optional<std::string>(big));
}

// --- UDP in bulk -----------------------------------------------------------------
// The worker reads datagrams in batches (recvmmsg) and answers each batch with one
// sendmmsg, so these tests keep many datagrams in flight at once and account for
// every one: echoed byte for byte, or dropped by a socket buffer where the kernel
// counted it (/proc/net/udp's drops column), never lost in between.

// A UDP socket connect()ed to host:port (so it hears only the server), with a
// receive buffer large enough for the echoes of a burst; -1 on failure.
int udp_client(const std::string& host, int port) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (host.find(':') != std::string::npos) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET6, host.c_str(), &a->sin6_addr) != 1) return -1;
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, host.c_str(), &a->sin_addr) != 1) return -1;
    len = sizeof *a;
  }
  int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  int size = 4 << 20;  // tests run as root: above net.core.rmem_max
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  if (connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int local_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  return ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

// Datagrams the kernel dropped on sockets bound to `port` (either end), from the
// last column of /proc/net/udp and udp6.
long udp_drops(int port) {
  long drops = 0;
  for (const char* file : {"/proc/net/udp", "/proc/net/udp6"}) {
    std::istringstream lines(read_file(file));
    std::string line;
    std::getline(lines, line);  // header
    while (std::getline(lines, line)) {
      std::istringstream fields(line);
      std::string slot, local, word, last;
      fields >> slot >> local;
      auto colon = local.rfind(':');
      if (colon == std::string::npos || std::stoi(local.substr(colon + 1), nullptr, 16) != port) continue;
      while (fields >> word) last = word;
      drops += std::stol(last);
    }
  }
  return drops;
}

// Receives on fd until it would block; each datagram is looked up in `outstanding`
// (and erased), or counted in *unexpected (a duplicate, a corruption, a stranger's).
std::size_t receive_echoes(int fd, std::multiset<std::string>& outstanding, std::size_t* unexpected) {
  std::size_t got = 0;
  std::string buf(70000, '\0');
  for (;;) {
    ssize_t n = recv(fd, buf.data(), buf.size(), 0);
    if (n < 0) return got;
    auto it = outstanding.find(buf.substr(0, static_cast<std::size_t>(n)));
    if (it == outstanding.end()) {
      ++*unexpected;
    } else {
      outstanding.erase(it);
      ++got;
    }
  }
}

// Waits (bounded) until every socket's outstanding set is empty.
void collect_echoes(const std::vector<int>& fds, std::vector<std::multiset<std::string>>& outstanding,
                    std::size_t* received, std::size_t* unexpected, Millis timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    bool done = true;
    for (const auto& o : outstanding) done = done && o.empty();
    if (done || std::chrono::steady_clock::now() > deadline) return;
    std::vector<pollfd> pfds;
    for (int fd : fds) pfds.push_back({fd, POLLIN, 0});
    poll(pfds.data(), pfds.size(), 50);
    for (std::size_t i = 0; i < fds.size(); ++i)
      if (pfds[i].revents & POLLIN) *received += receive_echoes(fds[i], outstanding[i], unexpected);
  }
}

// Sum of requests= over the workers' exit lines (written on QUIT).
long exit_line_requests(const std::string& log) {
  static const std::regex line(R"(worker slot=\d+ gen=\d+: exiting: accepted=\d+ requests=(\d+))");
  long sum = 0;
  for (std::sregex_iterator m(log.begin(), log.end(), line), end; m != end; ++m) sum += std::stol((*m)[1]);
  return sum;
}

// kSockets client sockets, each sending kWindow datagrams of distinct content and
// size at once, kRounds times; every echo must match a datagram sent, once. At the
// end the workers' request counters must equal the echoes they sent. 128 datagrams
// of up to 530 bytes fit one worker socket's default receive buffer (212,992 bytes,
// about 1.3 KiB of kernel memory each) even if the reuseport hash sends every
// client socket to the same worker.
void many_datagrams_in_flight(const std::string& host, ServerOptions options, bool v6) {
  constexpr int kSockets = 8, kWindow = 16, kRounds = 40;
  Preforkd server(std::move(options));
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  int port = v6 ? server.echo6_port() : server.echo_port();
  std::vector<int> fds;
  for (int i = 0; i < kSockets; ++i) {
    fds.push_back(udp_client(host, port));
    ASSERT_GE(fds.back(), 0) << "udp client " << i;
  }
  long drops_before = udp_drops(port);
  for (int fd : fds) drops_before += udp_drops(local_port(fd));
  std::mt19937 rng(13);
  std::vector<std::multiset<std::string>> outstanding(kSockets);
  std::size_t sent = 0, received = 0, unexpected = 0;
  for (int round = 0; round < kRounds; ++round) {
    for (int s = 0; s < kSockets; ++s) {
      for (int k = 0; k < kWindow; ++k) {
        // A header that makes every datagram unique, then 0..511 random bytes.
        std::string payload = std::to_string(s) + "/" + std::to_string(round) + "/" + std::to_string(k) + ":";
        payload.resize(payload.size() + rng() % 512);
        for (std::size_t i = payload.find(':') + 1; i < payload.size(); ++i) payload[i] = static_cast<char>(rng());
        if (send(fds[s], payload.data(), payload.size(), 0) == static_cast<ssize_t>(payload.size())) {
          outstanding[s].insert(payload);
          ++sent;
        }
      }
    }
    collect_echoes(fds, outstanding, &received, &unexpected, 3s);
  }
  long server_drops = udp_drops(port);
  long client_drops = 0;
  for (int fd : fds) client_drops += udp_drops(local_port(fd));
  long drops = server_drops + client_drops - drops_before;
  for (int fd : fds) close(fd);
  std::cout << "[ figures  ] " << sent << " datagrams sent, " << received << " echoed, " << drops
            << " dropped by socket buffers (counted by the kernel)\n";
  EXPECT_EQ(sent, static_cast<std::size_t>(kSockets * kWindow * kRounds)) << "the client could not send them all";
  EXPECT_EQ(unexpected, 0u) << "echoes that match no datagram sent (corrupt, duplicated or foreign)";
  EXPECT_EQ(static_cast<long>(sent - received), drops) << "datagrams neither echoed nor counted as dropped";
  // Drops are allowed (a busy shared machine), but this many would mean the test no
  // longer tests echoing.
  EXPECT_LT(drops, static_cast<long>(sent / 10));
  ASSERT_TRUE(server.signal(SIGQUIT));
  ASSERT_TRUE(server.wait_exit(20s).has_value());
  EXPECT_EQ(exit_line_requests(server.log()), static_cast<long>(received) + client_drops)
      << "requests= over the exit lines must count every echo sent (received or dropped at the client):\n"
      << server.log();
}

// Sends every payload at once (so they share recvmmsg batches where the timing
// allows), then collects; returns the echoes that did not come back.
std::multiset<std::string> burst(int fd, const std::vector<std::string>& payloads, Millis timeout,
                                 std::size_t* unexpected) {
  std::vector<std::multiset<std::string>> outstanding(1);
  for (const auto& p : payloads) {
    EXPECT_EQ(send(fd, p.data(), p.size(), 0), static_cast<ssize_t>(p.size())) << p.size() << " bytes";
    outstanding[0].insert(p);
  }
  std::size_t received = 0;
  collect_echoes({fd}, outstanding, &received, unexpected, timeout);
  return outstanding[0];
}

std::string pattern(std::size_t size, unsigned seed) {
  std::string s(size, '\0');
  std::mt19937 rng(seed);
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

TEST(Echo, UdpManyDatagramsInFlightComeBackIntact) {
  many_datagrams_in_flight("127.0.0.1", {.workers = 2}, false);
}

TEST(Echo, UdpManyDatagramsInFlightComeBackIntactIpv6) {
  if (!ipv6_loopback_available()) GTEST_SKIP() << "IPv6 loopback (::1) is not available here";
  many_datagrams_in_flight("::1", {.workers = 2, .ipv6 = true}, true);
}

// Sizes from empty to the largest IPv4 UDP payload, in bursts: each comes back
// whole. The largest go two at a time: three 64 KiB datagrams fill a socket's
// default receive buffer.
TEST(Echo, UdpSizesUpToTheMaximumInBursts) {
  Preforkd server({.workers = 2});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  int fd = udp_client("127.0.0.1", server.echo_port());
  ASSERT_GE(fd, 0);
  std::vector<std::vector<std::size_t>> bursts = {
      {0, 1, 2, 100, 1472, 1473, 4096, 9000}, {65507, 1, 32768, 0}, {65507, 65000, 7}, {16384, 16385, 30000, 3}};
  std::size_t unexpected = 0;
  unsigned seed = 1;
  for (const auto& sizes : bursts) {
    std::vector<std::string> payloads;
    for (std::size_t size : sizes) payloads.push_back(pattern(size, seed++));
    auto missing = burst(fd, payloads, 3s, &unexpected);
    std::string missing_sizes;
    for (const auto& m : missing) missing_sizes += " " + std::to_string(m.size());
    EXPECT_TRUE(missing.empty()) << "not echoed, sizes:" << missing_sizes;
  }
  EXPECT_EQ(unexpected, 0u);
  close(fd);
}

// With recvmmsg every datagram lands in a 64 KiB slot, so the kernel no longer
// truncates one that is over max_datagram_size: the worker must drop it itself,
// also in the middle of a batch, and echo its neighbours.
TEST(Echo, UdpOverMaxDatagramSizeIsDroppedInsideABurst) {
  Preforkd server({.workers = 2, .udp_config = "max_datagram_size = 1024\n"});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  int fd = udp_client("127.0.0.1", server.echo_port());
  ASSERT_GE(fd, 0);
  std::vector<std::string> echoed = {pattern(1024, 1), pattern(0, 2), pattern(1023, 3), pattern(1, 4)};
  std::vector<std::string> dropped = {pattern(1025, 5), pattern(65507, 6), pattern(2048, 7)};
  std::vector<std::string> all = {echoed[0], dropped[0], echoed[1], dropped[1], echoed[2], dropped[2], echoed[3]};
  std::size_t unexpected = 0;
  auto missing = burst(fd, all, 1500ms, &unexpected);
  std::multiset<std::string> expected_missing(dropped.begin(), dropped.end());
  EXPECT_EQ(missing, expected_missing) << "exactly the datagrams over 1024 bytes go unanswered";
  EXPECT_EQ(unexpected, 0u) << "a truncated echo came back";
  close(fd);
}

TEST(Echo, TcpAndUdpRoundTripIpv6) {
  if (!ipv6_loopback_available()) GTEST_SKIP() << "IPv6 loopback (::1) is not available here";
  Preforkd server({.workers = 2, .ipv6 = true});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  EXPECT_EQ(udp_roundtrip("::1", server.echo6_port(), "over v6"), std::optional<std::string>("over v6"));
  int fd = connect_tcp("::1", server.echo6_port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "tcp over v6"));
  shutdown(fd, SHUT_WR);
  EXPECT_EQ(read_until_close(fd, 3s), "tcp over v6");
  close(fd);
}

}  // namespace
