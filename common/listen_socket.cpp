// Listening sockets for workers. libuv 1.44 cannot set SO_REUSEPORT before bind,
// so the socket is made here and handed to uv_tcp_open / uv_udp_open.
#include "common/listen_socket.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace preforkd {
namespace {

int fail(int fd, const char* call, const SocketAddress& address, std::string* error) {
  int saved = errno;
  if (error) *error = std::string(call) + " " + address.to_string() + ": " + std::strerror(saved);
  if (fd >= 0) ::close(fd);
  errno = saved;
  return -1;
}

}  // namespace

int open_listen_socket(const SocketAddress& address, Transport transport, int backlog, bool reuseport,
                       std::string* error) {
  int type = (transport == Transport::stream ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC;
  int fd = ::socket(address.family(), type, 0);
  if (fd < 0) return fail(-1, "socket", address, error);

  int on = 1;
  // SO_REUSEADDR lets a restarted worker bind while old connections sit in TIME_WAIT;
  // SO_REUSEPORT puts every worker's socket into one group the kernel hashes across.
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0)
    return fail(fd, "setsockopt(SO_REUSEADDR)", address, error);
  if (reuseport && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0)
    return fail(fd, "setsockopt(SO_REUSEPORT)", address, error);
  // A v6 listener serves v6 only, so "[::]:80" and "0.0.0.0:80" can both be configured.
  if (address.family() == AF_INET6 &&
      ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) != 0)
    return fail(fd, "setsockopt(IPV6_V6ONLY)", address, error);
  // Accepted sockets inherit TCP_NODELAY from the listener: one setsockopt here
  // instead of one per connection.
  if (transport == Transport::stream && ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) != 0)
    return fail(fd, "setsockopt(TCP_NODELAY)", address, error);
  if (::bind(fd, address.sa(), address.length) != 0) return fail(fd, "bind", address, error);
  if (transport == Transport::stream && ::listen(fd, backlog) != 0)
    return fail(fd, "listen", address, error);
  return fd;
}

}  // namespace preforkd
