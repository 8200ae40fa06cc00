// A raw client of the control socket for tests that speak the protocol (or
// deliberately do not) byte by byte: connect, send, read what comes back.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "tests/integration/harness.hpp"

namespace itest {

// A connected Unix stream socket with send/receive timeouts; -1 on failure.
inline int connect_unix(const std::string& path, Millis timeout = 3s) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path) return -1;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Sends `request` on a new connection and returns everything the master sends
// until it closes (or the timeout passes).
inline std::string control_exchange(const std::string& path, const std::string& request, Millis timeout = 5s) {
  int fd = connect_unix(path);
  if (fd < 0) return "(connect failed: " + std::string(std::strerror(errno)) + ")";
  std::string answer;
  if (send_all(fd, request)) answer = read_until_close(fd, timeout);
  close(fd);
  return answer;
}

}  // namespace itest
