// ControlClient: connect(2), write the request, read lines under poll(2).
#include "cli/control_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace preforkd {
namespace {

// A status document of 1024 workers is some 200 KiB; nothing legitimate is near this.
constexpr std::size_t kMaxReplyBytes = 16 * 1024 * 1024;
constexpr int kConnectTimeoutS = 5;

int remaining_ms(ControlClient::Deadline deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return static_cast<int>(std::clamp<long long>(left.count(), 0, 24LL * 3600 * 1000));
}

}  // namespace

ControlClient::~ControlClient() {
  if (fd_ >= 0) ::close(fd_);
}

bool ControlClient::request(const std::string& path, control::Command command, std::string* error) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path) {
    *error = path + ": too long for a Unix socket path";
    return false;
  }
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    *error = std::string("socket(AF_UNIX): ") + std::strerror(errno);
    return false;
  }
  // A master whose backlog is full would keep a blocking connect waiting: bounded.
  timeval limit{kConnectTimeoutS, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    int saved = errno;
    switch (saved) {
      case EAGAIN:
        *error = "the master does not accept on the control socket " + path + " (busy for " +
                 std::to_string(kConnectTimeoutS) + " s)";
        break;
      case ENOENT:
        *error = "no master answers on the control socket " + path + " (none running, or it has control_socket = \"\")";
        break;
      case ECONNREFUSED: *error = "no master answers on the control socket " + path + " (a stale socket file)"; break;
      case EACCES:
      case EPERM:
        *error = "control socket " + path + ": " + std::strerror(saved) + " (it is mode 0600: run as the master's user)";
        break;
      default: *error = "connect " + path + ": " + std::strerror(saved);
    }
    return false;
  }
  std::string line = control::request_line(command);
  std::size_t sent = 0;
  while (sent < line.size()) {
    ssize_t n = ::send(fd_, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *error = "send to " + path + ": " + std::strerror(errno);
      return false;
    }
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

ControlClient::Read ControlClient::next(Deadline deadline, nlohmann::json* reply, std::string* error) {
  for (;;) {
    if (auto end = buffer_.find('\n'); end != std::string::npos) {
      std::string line = buffer_.substr(0, end);
      buffer_.erase(0, end + 1);
      *reply = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (reply->is_discarded() || !reply->is_object() || !reply->contains("event")) {
        *error = "not a control protocol reply: " + line.substr(0, 200);
        return Read::error;
      }
      if (reply->value("version", 0) != control::kVersion) {
        *error = "the master speaks control protocol version " + std::to_string(reply->value("version", 0)) +
                 ", this binary " + std::to_string(control::kVersion);
        return Read::error;
      }
      return Read::reply;
    }
    if (buffer_.size() > kMaxReplyBytes) {
      *error = "reply larger than 16 MiB";
      return Read::error;
    }
    pollfd p{fd_, POLLIN, 0};
    int rc = ::poll(&p, 1, remaining_ms(deadline));
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) {
      *error = std::string("poll: ") + std::strerror(errno);
      return Read::error;
    }
    if (rc == 0) return Read::timeout;
    char chunk[65536];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) {
      *error = std::string("recv: ") + std::strerror(errno);
      return Read::error;
    }
    if (n == 0) {
      *error = "the master closed the connection";
      return Read::closed;
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
  }
}

}  // namespace preforkd
