// Accepting connections. The listening fd is watched with uv_poll and accepted with
// accept4() here rather than through uv_listen/uv_accept: libuv accepts one
// connection per callback and keeps it in a private slot, while we need to empty
// the whole queue on demand so that a listener about to close leaves nothing
// behind in its backlog (closing a listener resets every queued connection).
#include "worker/tcp_listener.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "common/listen_socket.hpp"
#include "common/log.hpp"

namespace preforkd {

TcpListener::TcpListener(const ListenerConfig& config, std::unique_ptr<StreamHandler> handler,
                         ConnectionSet& connections)
    : config_(config), handler_(std::move(handler)), connections_(connections), poll_(this) {}

TcpListener::~TcpListener() { close(); }

int TcpListener::start(uv_loop_t* loop, int fd) {
  loop_ = loop;
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

bool TcpListener::accept_queued(bool ignore_cap) {
  if (fd_ < 0) return true;
  const auto send_timeout_ms = to_timer_ms(config_.send_timeout_s);
  // Bounded so one busy listener cannot starve the rest of the loop; the poll
  // reports readiness again if more are waiting. True when the queue is empty.
  for (int i = 0; i < 1024; ++i) {
    if (!ignore_cap && connections_.full()) {
      // Once per listener: under a sustained load every close would log again.
      if (!warned_at_cap_) PF_LOG_WARN("%s: max_connections reached; accepting paused until one closes", config_.name.c_str());
      warned_at_cap_ = true;
      paused_at_cap_ = true;
      pause_polling();
      return true;
    }
    int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      // ECONNABORTED and the network errors accept(2) passes on belong to one
      // queued connection, not to the listener: try the next one.
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO || errno == ENETDOWN ||
          errno == ENOPROTOOPT || errno == EHOSTDOWN || errno == ENONET || errno == EHOSTUNREACH ||
          errno == EOPNOTSUPP || errno == ENETUNREACH)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        back_off_fd_exhaustion(errno);
        return true;
      }
      PF_LOG_WARN("accept4 on %s: %s", config_.address.to_string().c_str(), std::strerror(errno));
      return true;
    }
    if (paused_out_of_fds_) {
      paused_out_of_fds_ = false;
      PF_LOG_NOTICE("%s: accepting again", config_.name.c_str());
    }
    connections_.create().start(fd, *handler_, send_timeout_ms);
  }
  return false;
}

// The connection stays queued and the poll would report it again at once: a busy
// loop at 100% CPU until an fd frees up. Stop polling and look again later.
void TcpListener::back_off_fd_exhaustion(int error) {
  if (!paused_out_of_fds_) {
    PF_LOG_WARN("accept4 on %s: %s; pausing accept, retrying every %llu ms", config_.address.to_string().c_str(),
                std::strerror(error), static_cast<unsigned long long>(kFdRetryMs));
  }
  paused_out_of_fds_ = true;
  pause_polling();
  if (!retry_) {
    retry_ = UvHandle<uv_timer_t>(this);
    int rc = uv_timer_init(loop_, retry_.get());
    if (rc != 0) {
      PF_LOG_ERROR("uv_timer_init: %s", uv_strerror(rc));
      retry_ = {};
      return resume_polling();
    }
    retry_.mark_initialized();
  }
  int rc = uv_timer_start(retry_.get(), on_retry, kFdRetryMs, 0);
  if (rc != 0) {
    PF_LOG_ERROR("uv_timer_start: %s", uv_strerror(rc));
    resume_polling();
  }
}

void TcpListener::on_retry(uv_timer_t* timer) {
  auto* self = owner_of<TcpListener>(timer);
  if (!self) return;
  self->resume_polling();
}

void TcpListener::resume_accepting() {
  if (!paused_at_cap_) return;
  paused_at_cap_ = false;
  resume_polling();
}

void TcpListener::pause_polling() {
  if (!poll_) return;
  int rc = uv_poll_stop(poll_.get());
  if (rc != 0) PF_LOG_ERROR("uv_poll_stop: %s", uv_strerror(rc));
}

void TcpListener::resume_polling() {
  if (!poll_ || fd_ < 0 || paused_at_cap_) return;
  int rc = uv_poll_start(poll_.get(), UV_READABLE, on_readable);
  if (rc != 0) PF_LOG_ERROR("uv_poll_start on %s: %s", config_.address.to_string().c_str(), uv_strerror(rc));
}

void TcpListener::stop_accepting() {
  if (fd_ < 0) return;
  // A listener the master has removed (it refuses new handshakes) has no
  // successor: freeze it so that no handshake completes between the last accept
  // below and the close, which would reset it.
  if (refusing_new_connections(fd_)) {
    std::string error;
    if (!freeze_listen_queue(fd_, &error)) PF_LOG_WARN("freeze listener fd %d: %s", fd_, error.c_str());
  }
  // Past the cap too: what stays queued here would be reset by the close.
  for (int round = 0; round < 64 && !accept_queued(/*ignore_cap=*/true); ++round) {
  }
  close();
}

void TcpListener::close() {
  if (fd_ < 0) return;
  // uv_close stops the poll watcher at once, so the fd can be closed right after.
  retry_.reset();
  poll_.reset();
  ::close(fd_);
  fd_ = -1;
}

}  // namespace preforkd
