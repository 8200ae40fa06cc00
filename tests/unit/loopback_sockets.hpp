// Real sockets on 127.0.0.1 for unit tests of listening sockets: a free port,
// clients, and bounded waits for what the kernel does asynchronously.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "common/address.hpp"

namespace preforkd::test {

// 127.0.0.1 on a port free right now (the config syntax has no port 0).
inline SocketAddress loopback_any_port() {
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

// A TCP client. Blocking: returns once connected (-1 on failure). Non-blocking:
// returns with the handshake possibly still under way.
inline int connect_to(const SocketAddress& address, bool blocking = true) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (blocking ? 0 : SOCK_NONBLOCK), 0);
  if (fd < 0) return -1;
  if (::connect(fd, address.sa(), address.length) == 0 || (!blocking && errno == EINPROGRESS)) return fd;
  ::close(fd);
  return -1;
}

inline bool wait_for(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

// The pending error of a socket (SO_ERROR), 0 if none.
inline int socket_error(int fd) {
  int error = 0;
  socklen_t len = sizeof error;
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
  return error;
}

// What a client sees when it reads within timeout_ms: the errno of a failed read
// (ECONNRESET after a reset), 0 for end of stream, 1 for data, -1 for nothing.
inline int read_outcome(int fd, int timeout_ms) {
  if (!wait_for(fd, POLLIN, timeout_ms)) return -1;
  char buffer[64];
  ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
  return n > 0 ? 1 : n == 0 ? 0 : errno;
}

// Accepts (or, for a datagram socket, receives) everything queued on a
// non-blocking socket now, closes what it accepted, returns how many.
inline int take_all(int fd, bool datagram = false) {
  int n = 0;
  for (int i = 0; i < 100000; ++i) {
    if (datagram) {
      char byte;
      if (::recv(fd, &byte, 1, MSG_DONTWAIT) < 0) break;
    } else {
      int accepted = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (accepted < 0) break;
      ::close(accepted);
    }
    ++n;
  }
  return n;
}

// Takes from every fd in `fds` until `expected` arrived in total or ~2 s passed;
// returns the count per fd.
inline std::vector<int> take_from_each(const std::vector<int>& fds, int expected, bool datagram = false) {
  std::vector<int> counts(fds.size(), 0);
  int total = 0;
  for (int round = 0; round < 200 && total < expected; ++round) {
    if (round > 0) ::usleep(10000);
    for (std::size_t i = 0; i < fds.size(); ++i) {
      int n = take_all(fds[i], datagram);
      counts[i] += n;
      total += n;
    }
  }
  return counts;
}

}  // namespace preforkd::test
