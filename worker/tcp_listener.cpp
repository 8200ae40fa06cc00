// Accepting connections. The listening fd is watched with uv_poll and accepted with
// accept4() here rather than through uv_listen/uv_accept: libuv accepts one
// connection per callback and keeps it in a private slot, while we need to empty
// the whole queue on demand so that a listener about to close leaves nothing
// behind in its backlog (closing a listener resets every queued connection).
#include "worker/tcp_listener.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.hpp"

namespace preforkd {

TcpListener::TcpListener(const ListenerConfig& config, std::unique_ptr<StreamHandler> handler,
                         ConnectionSet& connections)
    : config_(config), handler_(std::move(handler)), connections_(connections), poll_(this) {}

TcpListener::~TcpListener() { stop_accepting(); }

int TcpListener::start(uv_loop_t* loop, int fd) {
  fd_ = fd;
  int rc = uv_poll_init_socket(loop, poll_.get(), fd);
  if (rc != 0) return rc;
  poll_.mark_initialized();
  return uv_poll_start(poll_.get(), UV_READABLE, on_readable);
}

void TcpListener::on_readable(uv_poll_t* poll, int status, int) {
  auto* self = owner_of<TcpListener>(poll);
  if (!self) return;
  if (status != 0) {
    PF_LOG_WARN("poll on %s: %s", self->config_.address.to_string().c_str(), uv_strerror(status));
    return;
  }
  self->accept_queued();
}

bool TcpListener::accept_queued() {
  if (fd_ < 0) return true;
  // Bounded so one busy listener cannot starve the rest of the loop; the poll
  // reports readiness again if more are waiting. True when the queue is empty.
  for (int i = 0; i < 1024; ++i) {
    int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        PF_LOG_WARN("accept4 on %s: %s", config_.address.to_string().c_str(), std::strerror(errno));
      }
      return true;
    }
    connections_.create().start(fd, *handler_);
  }
  return false;
}

void TcpListener::stop_accepting() {
  if (fd_ < 0) return;
  for (int round = 0; round < 64 && !accept_queued(); ++round) {
  }
  // uv_close stops the poll watcher at once, so the fd can be closed right after.
  poll_.reset();
  ::close(fd_);
  fd_ = -1;
}

}  // namespace preforkd
