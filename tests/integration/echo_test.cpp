// tcp-echo and udp-echo through the real binary, on IPv4 and IPv6 loopback.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>
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
