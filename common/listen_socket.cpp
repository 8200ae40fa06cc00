// Listening sockets for workers. libuv 1.44 cannot set SO_REUSEPORT before bind,
// so the socket is made here and handed to uv_tcp_open / uv_udp_open.
#include "common/listen_socket.hpp"

#include <linux/filter.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <cstdint>
#include <iterator>
#include <vector>

namespace preforkd {
namespace {

int fail(int fd, const char* call, const SocketAddress& address, std::string* error) {
  int saved = errno;
  if (error) *error = std::string(call) + " " + address.to_string() + ": " + std::strerror(saved);
  if (fd >= 0) ::close(fd);
  errno = saved;
  return -1;
}

bool fail_fd(const char* call, int fd, std::string* error) {
  if (error) *error = std::string(call) + " on fd " + std::to_string(fd) + ": " + std::strerror(errno);
  return false;
}

// Socket filters see a TCP segment from its TCP header on: byte 13 holds the flags.
constexpr std::uint32_t kTcpFlagsOffset = 13;
// A filter's result is how many bytes to keep: 0 drops, 0xffffffff keeps all.
constexpr std::uint32_t kKeep = 0xffffffff;

// Drops a SYN without ACK (a new connection), keeps everything else.
const sock_filter kRefuseSyn[] = {
    BPF_STMT(BPF_LD | BPF_B | BPF_ABS, kTcpFlagsOffset),
    BPF_STMT(BPF_ALU | BPF_AND | BPF_K, TH_SYN | TH_ACK),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TH_SYN, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, 0),
    BPF_STMT(BPF_RET | BPF_K, kKeep),
};
const sock_filter kDropAll[] = {BPF_STMT(BPF_RET | BPF_K, 0)};

template <std::size_t N>
bool attach_filter(int fd, const sock_filter (&code)[N], std::string* error) {
  sock_fprog program{static_cast<unsigned short>(N), const_cast<sock_filter*>(code)};
  if (::setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program) == 0) return true;
  return fail_fd("setsockopt(SO_ATTACH_FILTER)", fd, error);
}

template <std::size_t N>
bool same_program(const std::vector<sock_filter>& attached, const sock_filter (&code)[N]) {
  return attached.size() == N && std::memcmp(attached.data(), code, sizeof code) == 0;
}

bool tcp_info_of(int fd, tcp_info* info) {
  socklen_t len = sizeof *info;
  return ::getsockopt(fd, IPPROTO_TCP, TCP_INFO, info, &len) == 0;
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

bool set_listen_backlog(int fd, int backlog, std::string* error) {
  if (::listen(fd, backlog) == 0) return true;
  if (error)
    *error = "listen(fd " + std::to_string(fd) + ", " + std::to_string(backlog) + "): " + std::strerror(errno);
  return false;
}

int listen_backlog(int fd) {
  tcp_info info{};
  return tcp_info_of(fd, &info) && info.tcpi_state == TCP_LISTEN ? static_cast<int>(info.tcpi_sacked) : -1;
}

int queued_connections(int fd, Transport transport) {
  if (transport == Transport::datagram) {
    char byte;
    if (::recv(fd, &byte, 0, MSG_PEEK | MSG_DONTWAIT) >= 0) return 1;
    return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
  }
  tcp_info info{};
  return tcp_info_of(fd, &info) && info.tcpi_state == TCP_LISTEN ? static_cast<int>(info.tcpi_unacked) : -1;
}

bool refuse_new_connections(int fd, Transport transport, std::string* error) {
  return transport == Transport::stream ? attach_filter(fd, kRefuseSyn, error) : attach_filter(fd, kDropAll, error);
}

bool freeze_listen_queue(int fd, std::string* error) { return attach_filter(fd, kDropAll, error); }

bool allow_new_connections(int fd, std::string* error) {
  int unused = 0;
  if (::setsockopt(fd, SOL_SOCKET, SO_DETACH_FILTER, &unused, sizeof unused) == 0 || errno == ENOENT) return true;
  return fail_fd("setsockopt(SO_DETACH_FILTER)", fd, error);
}

bool refusing_new_connections(int fd) {
  // SO_GET_FILTER counts in instructions: first the length, then the program.
  socklen_t count = 0;
  if (::getsockopt(fd, SOL_SOCKET, SO_GET_FILTER, nullptr, &count) != 0 || count == 0 ||
      count > std::size(kRefuseSyn))
    return false;
  std::vector<sock_filter> attached(count);
  if (::getsockopt(fd, SOL_SOCKET, SO_GET_FILTER, attached.data(), &count) != 0) return false;
  attached.resize(count);
  return same_program(attached, kRefuseSyn) || same_program(attached, kDropAll);
}

}  // namespace preforkd
