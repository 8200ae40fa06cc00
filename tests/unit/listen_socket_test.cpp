// open_listen_socket: the options a listener must carry, checked on real sockets.
#include "common/listen_socket.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace preforkd {
namespace {

int option(int fd, int level, int name) {
  int value = -1;
  socklen_t len = sizeof value;
  EXPECT_EQ(::getsockopt(fd, level, name, &value, &len), 0);
  return value;
}

// 127.0.0.1 on a port free right now (the config syntax has no port 0).
SocketAddress loopback_any_port() {
  int probe = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  EXPECT_EQ(::bind(probe, reinterpret_cast<sockaddr*>(&sa), len), 0);
  EXPECT_EQ(::getsockname(probe, reinterpret_cast<sockaddr*>(&sa), &len), 0);
  ::close(probe);
  auto address = parse_address("127.0.0.1:" + std::to_string(ntohs(sa.sin_port)));
  EXPECT_TRUE(address);
  return *address;
}

// The worker no longer sets TCP_NODELAY per connection: this is the kernel
// behaviour it relies on instead.
TEST(ListenSocket, AcceptedConnectionsInheritTcpNodelay) {
  std::string error;
  int listener = open_listen_socket(loopback_any_port(), Transport::stream, 8, true, &error);
  ASSERT_GE(listener, 0) << error;
  EXPECT_NE(option(listener, IPPROTO_TCP, TCP_NODELAY), 0);
  sockaddr_in bound{};
  socklen_t len = sizeof bound;
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&bound), &len), 0);
  int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&bound), len), 0);
  int accepted = -1;
  for (int i = 0; i < 200 && accepted < 0; ++i) {  // the listener is non-blocking
    accepted = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (accepted < 0) ::usleep(5000);
  }
  ASSERT_GE(accepted, 0);
  EXPECT_NE(option(accepted, IPPROTO_TCP, TCP_NODELAY), 0);
  ::close(accepted);
  ::close(client);
  ::close(listener);
}

TEST(ListenSocket, ReuseportOnlyWhenAsked) {
  std::string error;
  int shared = open_listen_socket(loopback_any_port(), Transport::stream, 8, false, &error);
  ASSERT_GE(shared, 0) << error;
  EXPECT_EQ(option(shared, SOL_SOCKET, SO_REUSEPORT), 0);
  int grouped = open_listen_socket(loopback_any_port(), Transport::datagram, 8, true, &error);
  ASSERT_GE(grouped, 0) << error;
  EXPECT_NE(option(grouped, SOL_SOCKET, SO_REUSEPORT), 0);
  ::close(shared);
  ::close(grouped);
}

}  // namespace
}  // namespace preforkd
