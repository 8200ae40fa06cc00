// open_listen_socket: the options a listener must carry, checked on real sockets.
#include "common/listen_socket.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "tests/unit/loopback_sockets.hpp"

namespace preforkd {
namespace {

using test::loopback_any_port;

int option(int fd, int level, int name) {
  int value = -1;
  socklen_t len = sizeof value;
  EXPECT_EQ(::getsockopt(fd, level, name, &value, &len), 0);
  return value;
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

// --- Retiring a listener: what the kernel does, and the mechanism built on it ---

using test::connect_to;
using test::read_outcome;
using test::take_all;
using test::wait_for;

int open_stream(const SocketAddress& address, int backlog = 64) {
  std::string error;
  int fd = open_listen_socket(address, Transport::stream, backlog, true, &error);
  EXPECT_GE(fd, 0) << error;
  return fd;
}

void close_all(const std::vector<int>& fds) {
  for (int fd : fds) ::close(fd);
}

// The finding behind the mechanism: a listener nobody accepts from any more still
// completes handshakes (clients connect and send), and closing it resets them all.
TEST(RetiringListener, UnacceptedSocketCompletesHandshakesAndCloseResetsThem) {
  SocketAddress address = loopback_any_port();
  int listener = open_stream(address);
  std::vector<int> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(connect_to(address));
    ASSERT_GE(clients.back(), 0);
    ASSERT_EQ(::send(clients.back(), "x", 1, MSG_NOSIGNAL), 1);
  }
  EXPECT_EQ(queued_connections(listener, Transport::stream), 3);
  ::close(listener);
  for (int client : clients) EXPECT_EQ(read_outcome(client, 2000), ECONNRESET);
  close_all(clients);
}

// shutdown(SHUT_RD) on a listener is no gentler than close: Linux stops
// listening at once (tcp_disconnect), resets the queue and refuses new SYNs, so
// it cannot be the "stop new, keep queued" step.
TEST(RetiringListener, ShutdownReadResetsTheQueueLikeClose) {
  SocketAddress address = loopback_any_port();
  int listener = open_stream(address);
  int queued = connect_to(address);
  ASSERT_GE(queued, 0);
  ASSERT_EQ(::shutdown(listener, SHUT_RD), 0);
  EXPECT_LT(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC), 0);
  EXPECT_EQ(errno, EINVAL);  // not listening any more
  EXPECT_EQ(read_outcome(queued, 2000), ECONNRESET);
  EXPECT_LT(connect_to(address), 0);
  EXPECT_EQ(errno, ECONNREFUSED);
  ::close(queued);
  ::close(listener);
}

// net.ipv4.tcp_migrate_req moves a closing listener's queue to another socket of
// its reuseport group; when the whole group goes there is none, so the last
// socket's queue is reset whatever the setting.
TEST(RetiringListener, ClosingTheWholeGroupResetsItsQueuesEvenWithMigration) {
  std::string migrate = "unavailable";
  if (FILE* f = std::fopen("/proc/sys/net/ipv4/tcp_migrate_req", "r")) {
    char value[8] = {};
    if (std::fgets(value, sizeof value, f)) migrate = std::string(value, std::strcspn(value, "\n"));
    std::fclose(f);
  }
  std::printf("net.ipv4.tcp_migrate_req=%s\n", migrate.c_str());
  SocketAddress address = loopback_any_port();
  std::vector<int> group = {open_stream(address), open_stream(address)};
  std::vector<int> clients;
  for (int i = 0; i < 6; ++i) clients.push_back(connect_to(address));
  close_all(group);
  for (int client : clients) EXPECT_EQ(read_outcome(client, 2000), ECONNRESET);
  close_all(clients);
}

// accept-until-EAGAIN right before close leaves a window: a handshake that
// completes in between (here, forced) is reset by the close.
TEST(RetiringListener, FinalAcceptBeforeCloseLeavesAWindow) {
  SocketAddress address = loopback_any_port();
  int listener = open_stream(address);
  int early = connect_to(address);
  for (int i = 0; i < 100 && take_all(listener) == 0; ++i) ::usleep(10000);
  int in_window = connect_to(address);
  ASSERT_GE(in_window, 0);  // the client considers itself connected
  ::close(listener);
  EXPECT_EQ(read_outcome(in_window, 2000), ECONNRESET);
  ::close(early);
  ::close(in_window);
}

// The mechanism. Step 1 (refuse) drops new SYNs but lets a handshake under way
// complete: TCP_DEFER_ACCEPT holds one in SYN_RECV until its client sends data,
// which stands for a final ACK still in flight. Step 2 (freeze) stops even that,
// so the last accept-until-EAGAIN sees everything; the client that tried during
// the drain is refused once the socket closes, never reset after connecting.
TEST(RetiringListener, RefuseThenFreezeLosesNothingAClientConsidersConnected) {
  SocketAddress address = loopback_any_port();
  int listener = open_stream(address);
  int defer_s = 10;
  ASSERT_EQ(::setsockopt(listener, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer_s, sizeof defer_s), 0);
  int queued = connect_to(address);     // completes: data arrives before the refusal
  int under_way = connect_to(address);  // client connected, server still in SYN_RECV
  ASSERT_GE(queued, 0);
  ASSERT_GE(under_way, 0);
  ASSERT_EQ(::send(queued, "q", 1, MSG_NOSIGNAL), 1);
  std::string error;
  ASSERT_FALSE(refusing_new_connections(listener));
  ASSERT_TRUE(refuse_new_connections(listener, Transport::stream, &error)) << error;
  EXPECT_TRUE(refusing_new_connections(listener));

  int refused = connect_to(address, /*blocking=*/false);
  ASSERT_GE(refused, 0);
  EXPECT_FALSE(wait_for(refused, POLLOUT, 300)) << "a new handshake completed on a refusing listener";
  ASSERT_EQ(::send(under_way, "u", 1, MSG_NOSIGNAL), 1);

  // The worker keeps accepting: both arrive, with their data.
  std::vector<int> accepted;
  for (int i = 0; i < 200 && accepted.size() < 2; ++i) {
    int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) {
      accepted.push_back(fd);
    } else {
      ::usleep(10000);
    }
  }
  ASSERT_EQ(accepted.size(), 2u) << "a handshake under way at the refusal was lost";
  for (int fd : accepted) EXPECT_EQ(read_outcome(fd, 1000), 1);

  ASSERT_TRUE(freeze_listen_queue(listener, &error)) << error;
  EXPECT_TRUE(refusing_new_connections(listener));
  EXPECT_EQ(take_all(listener), 0);
  ::close(listener);

  // Accepted connections outlive the listener; the refused client learns the
  // listener is gone from its next SYN (retransmitted after ~1 s).
  for (int fd : accepted) EXPECT_EQ(::send(fd, "r", 1, MSG_NOSIGNAL), 1);
  EXPECT_EQ(read_outcome(queued, 1000), 1);
  ASSERT_TRUE(wait_for(refused, POLLOUT, 5000));
  EXPECT_EQ(test::socket_error(refused), ECONNREFUSED);
  close_all(accepted);
  close_all({queued, under_way, refused});
}

TEST(RetiringListener, AllowNewConnectionsUndoesARefusal) {
  SocketAddress address = loopback_any_port();
  int listener = open_stream(address);
  std::string error;
  ASSERT_TRUE(refuse_new_connections(listener, Transport::stream, &error)) << error;
  ASSERT_TRUE(allow_new_connections(listener, &error)) << error;
  EXPECT_FALSE(refusing_new_connections(listener));
  ASSERT_TRUE(allow_new_connections(listener, &error)) << error;  // nothing attached: fine
  int client = connect_to(address, /*blocking=*/false);
  EXPECT_TRUE(wait_for(client, POLLOUT, 2000));
  EXPECT_EQ(test::socket_error(client), 0);
  ::close(client);
  ::close(listener);
}

// A datagram socket that refuses keeps what it already holds for the worker to
// read and drops what comes after.
TEST(RetiringListener, RefusingDatagramSocketKeepsQueuedDatagrams) {
  SocketAddress address = loopback_any_port();
  std::string error;
  int socket = open_listen_socket(address, Transport::datagram, 0, true, &error);
  ASSERT_GE(socket, 0) << error;
  int client = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  EXPECT_EQ(queued_connections(socket, Transport::datagram), 0);
  ASSERT_EQ(::sendto(client, "a", 1, 0, address.sa(), address.length), 1);
  for (int i = 0; i < 100 && queued_connections(socket, Transport::datagram) == 0; ++i) ::usleep(10000);
  EXPECT_EQ(queued_connections(socket, Transport::datagram), 1);
  ASSERT_TRUE(refuse_new_connections(socket, Transport::datagram, &error)) << error;
  EXPECT_TRUE(refusing_new_connections(socket));
  ASSERT_EQ(::sendto(client, "b", 1, 0, address.sa(), address.length), 1);
  ::usleep(50000);
  char byte = 0;
  EXPECT_EQ(::recv(socket, &byte, 1, MSG_DONTWAIT), 1);
  EXPECT_EQ(byte, 'a');
  EXPECT_LT(::recv(socket, &byte, 1, MSG_DONTWAIT), 0);
  ::close(client);
  ::close(socket);
}

// --- Accept queue: its limit on reload, and what waits in it ---

TEST(ListenSocket, BacklogChangesInPlaceAndKeepsTheQueue) {
  SocketAddress address = loopback_any_port();
  int listener = open_stream(address, 8);
  EXPECT_EQ(listen_backlog(listener), 8);
  int client = connect_to(address);
  std::string error;
  ASSERT_TRUE(set_listen_backlog(listener, 100, &error)) << error;
  EXPECT_EQ(listen_backlog(listener), 100);
  EXPECT_EQ(queued_connections(listener, Transport::stream), 1);
  EXPECT_EQ(take_all(listener), 1);
  EXPECT_EQ(queued_connections(listener, Transport::stream), 0);
  int unbound = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_EQ(listen_backlog(unbound), -1);  // not a listener
  ::close(unbound);
  ::close(client);
  ::close(listener);
}

}  // namespace
}  // namespace preforkd
