// SystemdNotifier: one sendto() on a SOCK_DGRAM unix socket per state change.
#include "master/systemd_notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "common/log.hpp"

namespace preforkd {

SystemdNotifier SystemdNotifier::from_environment() {
  SystemdNotifier notifier;
  if (const char* path = std::getenv("NOTIFY_SOCKET")) {
    notifier.socket_path_ = path;
    if (::unsetenv("NOTIFY_SOCKET") != 0) PF_LOG_WARN("unsetenv(NOTIFY_SOCKET): %s", std::strerror(errno));
  }
  return notifier;
}

bool SystemdNotifier::notify(const std::string& state) const {
  if (socket_path_.empty()) return true;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  // Only absolute paths and abstract names are valid, as in sd_notify().
  if ((socket_path_[0] != '/' && socket_path_[0] != '@') || socket_path_.size() >= sizeof address.sun_path) {
    PF_LOG_WARN("NOTIFY_SOCKET=%s: not an absolute path or @abstract name; not notifying", socket_path_.c_str());
    return false;
  }
  std::memcpy(address.sun_path, socket_path_.data(), socket_path_.size());
  if (address.sun_path[0] == '@') address.sun_path[0] = '\0';
  socklen_t length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_path_.size());

  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    PF_LOG_WARN("notify systemd: socket: %s", std::strerror(errno));
    return false;
  }
  // A datagram socket never blocks the master for long: the receiver's queue is
  // systemd's, and MSG_DONTWAIT makes a full one an error rather than a wait.
  ssize_t sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL | MSG_DONTWAIT,
                          reinterpret_cast<const sockaddr*>(&address), length);
  int saved = errno;
  ::close(fd);
  if (sent < 0) {
    PF_LOG_WARN("notify systemd (%s): sendto: %s", socket_path_.c_str(), std::strerror(saved));
    return false;
  }
  PF_LOG_DEBUG("notified systemd: %s", state.c_str());
  return true;
}

unsigned long long monotonic_usec() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<unsigned long long>(ts.tv_sec) * 1'000'000ull + static_cast<unsigned long long>(ts.tv_nsec) / 1000;
}

}  // namespace preforkd
