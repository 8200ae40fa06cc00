// Receiving sd_notify datagrams: recvmsg with credentials, on a uv_poll_t.
#include "master/exec_notify_socket.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "common/log.hpp"

namespace preforkd {
namespace {

// systemd's own bound (NOTIFY_BUFFER_MAX): a longer datagram is dropped whole.
constexpr std::size_t kMaxDatagram = 4096;
// Per wake-up, so that a program sending without pause cannot hold the loop.
constexpr int kMaxDatagramsPerWakeup = 32;
// Room for the credentials and for fds a sender passes (FDSTORE=1), which are
// closed unread: the master keeps nothing of a program's.
constexpr std::size_t kMaxPassedFds = 16;

}  // namespace

NotifySocket::NotifySocket(uv_loop_t* loop) : loop_(loop), poll_(this) {}

NotifySocket::~NotifySocket() { close(); }

bool NotifySocket::open(const std::string& name, uid_t sender_uid, Handler handler, std::string* error) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (name.empty() || name.size() + 1 > sizeof address.sun_path) {
    *error = "notify socket name \"" + name + "\": empty or too long";
    return false;
  }
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    *error = std::string("socket(AF_UNIX, SOCK_DGRAM): ") + std::strerror(errno);
    return false;
  }
  int on = 1;
  if (::setsockopt(fd_, SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0) {
    *error = std::string("setsockopt(SO_PASSCRED): ") + std::strerror(errno);
    close();
    return false;
  }
  // Abstract: sun_path starts with NUL, the name follows, no terminator.
  std::memcpy(address.sun_path + 1, name.data(), name.size());
  const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  if (::bind(fd_, reinterpret_cast<const sockaddr*>(&address), length) != 0) {
    *error = "bind @" + name + ": " + std::strerror(errno);
    close();
    return false;
  }
  int rc = uv_poll_init(loop_, poll_.get(), fd_);
  if (rc == 0) {
    poll_.mark_initialized();
    rc = uv_poll_start(poll_.get(), UV_READABLE, on_readable);
  }
  if (rc != 0) {
    *error = "uv_poll_start(@" + name + "): " + uv_strerror(rc);
    close();
    return false;
  }
  sender_uid_ = sender_uid;
  address_ = "@" + name;
  handler_ = std::move(handler);
  return true;
}

void NotifySocket::close() {
  poll_.reset();  // stops polling first: libuv must not watch a closed fd
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void NotifySocket::on_readable(uv_poll_t* poll, int status, int) {
  auto* self = owner_of<NotifySocket>(poll);
  if (!self) return;
  if (status != 0) {
    PF_LOG_WARN("notify socket %s: poll: %s", self->address_.c_str(), uv_strerror(status));
    return;
  }
  self->read_datagrams();
}

void NotifySocket::read_datagrams() {
  static char buffer[kMaxDatagram];
  alignas(cmsghdr) static char control[CMSG_SPACE(sizeof(ucred)) + CMSG_SPACE(sizeof(int) * kMaxPassedFds)];
  for (int i = 0; i < kMaxDatagramsPerWakeup && fd_ >= 0; ++i) {
    iovec iov{buffer, sizeof buffer};
    msghdr message{};
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(fd_, &message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        PF_LOG_WARN("notify socket %s: recvmsg: %s", address_.c_str(), std::strerror(errno));
      return;
    }
    const ucred* credentials = nullptr;
    for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(&message, c)) {
      if (c->cmsg_level != SOL_SOCKET) continue;
      if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len >= CMSG_LEN(sizeof(ucred))) {
        credentials = reinterpret_cast<const ucred*>(CMSG_DATA(c));
      } else if (c->cmsg_type == SCM_RIGHTS) {
        const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t k = 0; k < count; ++k) {
          int passed = -1;
          std::memcpy(&passed, CMSG_DATA(c) + k * sizeof(int), sizeof passed);
          if (passed >= 0) ::close(passed);
        }
      }
    }
    const char* why = nullptr;
    if (static_cast<std::size_t>(n) > sizeof buffer || (message.msg_flags & MSG_TRUNC)) why = "longer than 4096 bytes";
    else if (credentials == nullptr) why = "no sender credentials";
    else if (credentials->uid != sender_uid_ && credentials->uid != 0) why = "sent by another user";
    if (why != nullptr) {
      if (!warned_)
        PF_LOG_WARN("notify socket %s: datagram dropped (%s; further ones dropped silently)", address_.c_str(), why);
      warned_ = true;
      continue;
    }
    PF_LOG_DEBUG("notify socket %s: %.*s", address_.c_str(), static_cast<int>(n), buffer);
    NotifyMessage decoded = parse_notify_message(std::string_view(buffer, static_cast<std::size_t>(n)));
    if (handler_) handler_(decoded);  // may not destroy us: workers go on their exit, not on a message
  }
}

}  // namespace preforkd
