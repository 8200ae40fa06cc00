// Accepted TCP connections: reading into a shared buffer, writes sent at once with
// only the rest queued, sendfile for file ranges, orderly shutdown, and deletion
// from the close callback.
#include "worker/stream_connection.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.hpp"

namespace preforkd {
namespace {

// How long a lingering close waits, once our output is flushed, for the peer's
// FIN (nginx's lingering_timeout): a peer told Connection: close closes at once.
constexpr std::uint64_t kLingerMs = 5000;
// Byte pieces gathered into one sendmsg from the queue.
constexpr int kMaxIov = 16;
// A head and body together up to this size are copied into one buffer and sent
// with send(2): sendmsg's msghdr and iovec copies cost the kernel ~0.08 µs per
// keep-alive answer (perf, bench/results/PROFILE-keepalive.md), the copy ~20
// instructions. Larger bodies go as two pieces, uncopied.
constexpr std::size_t kCoalesceBytes = 2048;
// One sendfile call sends at most this much (the kernel's own cap is ~2 GiB);
// the socket's buffer takes less anyway, and the loop moves on to other
// connections between calls.
constexpr std::size_t kMaxSendfile = 1 << 30;

StreamConnection* connection_of(uv_handle_t* h) { return static_cast<StreamConnection*>(h->data); }

bool transient(int error) { return error == EAGAIN || error == EWOULDBLOCK || error == EINTR; }

iovec iov_of(std::string_view bytes) { return {const_cast<char*>(bytes.data()), bytes.size()}; }

}  // namespace

StreamConnection::StreamConnection(ConnectionSet& owner) : owner_(owner) { poll_.data = this; }

StreamConnection::~StreamConnection() = default;

void StreamConnection::start(int fd, StreamHandler& handler, std::uint64_t send_timeout_ms) {
  send_timeout_ms_ = send_timeout_ms;
  int rc = uv_poll_init(owner_.loop(), &poll_, fd);
  if (rc != 0) {
    PF_LOG_ERROR("uv_poll_init: %s", uv_strerror(rc));
    ::close(fd);
    owner_.remove(*this);
    return;
  }
  fd_ = fd;
  initialized_ = true;
  // Counted from here so that on_closed's decrement always has its increment.
  ++owner_.stats().accepted;
  ++owner_.stats().active;
  // No Nagle (responses are written whole; it would only delay the last
  // segment): set on the listening socket, which accepted sockets inherit.
  session_ = handler.open_session(*this);
  // Accepted after retirement began (the linger, the final drain of the queue):
  // retiring from its first byte.
  if (owner_.retiring_) session_->on_retire();
  resume_reading();
}

std::string StreamConnection::peer_address() const {
  if (!peer_address_.empty() || fd_ < 0) return peer_address_.empty() ? "-" : peer_address_;
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  char name[INET6_ADDRSTRLEN] = "-";
  if (::getpeername(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    PF_LOG_DEBUG("getpeername: %s", std::strerror(errno));
    return "-";
  }
  const void* addr = ss.ss_family == AF_INET6 ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr)
                                               : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&ss)->sin_addr);
  if ((ss.ss_family != AF_INET && ss.ss_family != AF_INET6) ||
      ::inet_ntop(ss.ss_family, addr, name, sizeof name) == nullptr)
    return "-";
  peer_address_ = name;
  return peer_address_;
}

// --- writing ---------------------------------------------------------------------

ssize_t StreamConnection::send_now(const iovec* iov, int count, bool more) {
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(iov);
  msg.msg_iovlen = static_cast<std::size_t>(count);
  // MSG_NOSIGNAL: a peer gone mid-write is an error to handle, not a SIGPIPE.
  // MSG_MORE: a file follows; the kernel holds a partial segment for it.
  const int flags = MSG_NOSIGNAL | MSG_DONTWAIT | (more ? MSG_MORE : 0);
  for (;;) {
    ssize_t n = count == 1 ? ::send(fd_, iov->iov_base, iov->iov_len, flags) : ::sendmsg(fd_, &msg, flags);
    if (n >= 0) {
      bytes_sent_ += static_cast<std::uint64_t>(n);
      return n;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    // EPIPE, ECONNRESET: the peer is gone.
    PF_LOG_DEBUG("%s: %s", count == 1 ? "send" : "sendmsg", std::strerror(errno));
    close();
    return -1;
  }
}

ssize_t StreamConnection::send_unless_queued(std::string_view head, std::string_view body) {
  if (!queue_.empty()) return 0;  // behind queued output: in order, later
  if (body.empty() || head.empty()) {
    iovec one = iov_of(body.empty() ? head : body);
    return one.iov_len == 0 ? 0 : send_now(&one, 1, false);
  }
  if (head.size() + body.size() <= kCoalesceBytes) {
    char both[kCoalesceBytes];  // the caller queues what is not sent from head and body
    std::memcpy(both, head.data(), head.size());
    std::memcpy(both + head.size(), body.data(), body.size());
    iovec one = {both, head.size() + body.size()};
    return send_now(&one, 1, false);
  }
  iovec iov[2] = {iov_of(head), iov_of(body)};
  return send_now(iov, 2, false);
}

void StreamConnection::write(std::string head, std::string body) {
  if (!accepts_output()) return;
  ssize_t n = send_unless_queued(head, body);
  if (n < 0) return;
  auto sent = static_cast<std::size_t>(n);
  if (sent == head.size() + body.size()) return;
  queue_rest(head, std::move(head), body, std::move(body), nullptr, sent);
}

void StreamConnection::write_shared(std::string head, std::shared_ptr<const std::string> body) {
  std::string_view view = body ? std::string_view(*body) : std::string_view();
  write_now(head, view, std::move(body));
}

void StreamConnection::write_shared_range(std::string head, std::shared_ptr<const std::string> body,
                                          std::size_t offset, std::size_t length) {
  std::string_view view = body ? std::string_view(*body).substr(offset, length) : std::string_view();
  write_now(head, view, std::move(body));
}

void StreamConnection::write_now(std::string_view head, std::string_view body,
                                 std::shared_ptr<const void> body_owner) {
  if (!accepts_output()) return;
  ssize_t n = send_unless_queued(head, body);
  if (n < 0) return;
  auto sent = static_cast<std::size_t>(n);
  if (sent == head.size() + body.size()) return;
  queue_rest(head, {}, body, {}, std::move(body_owner), sent);
}

void StreamConnection::write_file(std::string_view head, int fd, std::uint64_t offset, std::uint64_t length,
                                  std::shared_ptr<const void> owner) {
  if (!accepts_output()) return;
  std::size_t sent = 0;
  if (queue_.empty()) {
    iovec iov = iov_of(head);
    ssize_t n = head.empty() ? 0 : send_now(&iov, 1, length > 0);
    if (n < 0) return;
    sent = static_cast<std::size_t>(n);
  }
  if (sent < head.size()) queue_rest(head, {}, {}, {}, nullptr, sent);
  if (length == 0) return;
  queue_file(fd, offset, length, std::move(owner));
  // Nothing ahead of it: send now what the socket takes.
  if (queue_.size() - queue_head_ == 1) {
    Pending& p = queue_[queue_head_];
    if (send_file_part(p) && p.file_left == 0) {
      queue_.clear();
      queue_head_ = 0;
    }
  }
  if (!closing_ && !queue_.empty()) on_queued();
}

// a and b each are either a view (a_owned/b_owned empty, b_owner keeping b alive)
// or the contents of the string moved in.
void StreamConnection::queue_rest(std::string_view a, std::string&& a_owned, std::string_view b,
                                  std::string&& b_owned, std::shared_ptr<const void>&& b_owner,
                                  std::size_t sent) {
  auto queue_piece = [&](std::string_view bytes, std::string&& owned, std::shared_ptr<const void>&& owner) {
    std::size_t skip = std::min(sent, bytes.size());
    sent -= skip;
    if (skip == bytes.size()) return;
    Pending p;
    if (owner) {
      p.shared = bytes.substr(skip);
      p.owner = std::move(owner);
    } else if (!owned.empty()) {
      p.owned = std::move(owned);  // `bytes` is a view of it
      p.done = skip;
    } else {
      p.owned.assign(bytes.substr(skip));
    }
    queued_bytes_ += bytes.size() - skip;
    queue_.push_back(std::move(p));
  };
  bool was_empty = queue_.empty();
  queue_piece(a, std::move(a_owned), nullptr);
  queue_piece(b, std::move(b_owned), std::move(b_owner));
  if (was_empty && !queue_.empty()) on_queued();
}

void StreamConnection::queue_file(int fd, std::uint64_t offset, std::uint64_t length,
                                  std::shared_ptr<const void>&& owner) {
  Pending p;
  p.file_fd = fd;
  p.file_offset = offset;
  p.file_left = length;
  p.owner = std::move(owner);
  queued_bytes_ += length;
  queue_.push_back(std::move(p));
}

// Output now waits for the peer: poll for POLLOUT, and time the wait.
void StreamConnection::on_queued() {
  update_poll();
  watch_send_progress();
}

bool StreamConnection::send_file_part(Pending& p) {
  for (;;) {
    off_t offset = static_cast<off_t>(p.file_offset);
    std::size_t count = static_cast<std::size_t>(std::min<std::uint64_t>(p.file_left, kMaxSendfile));
    ssize_t n = ::sendfile(fd_, p.file_fd, &offset, count);
    if (n > 0) {
      auto sent = static_cast<std::size_t>(n);
      bytes_sent_ += sent;
      queued_bytes_ -= sent;
      p.file_offset += sent;
      p.file_left -= sent;
      if (p.file_left == 0) return true;
      // Short: the socket is full (waiting for POLLOUT saves a call that would
      // only return EAGAIN).
      if (sent < count) return false;
      continue;
    }
    if (n == 0) {
      // The file ends before the range does: truncated while being sent. The
      // length promised to the peer can no longer be honoured; closing is the
      // only way to tell it the response is incomplete.
      PF_LOG_WARN("sendfile: the file ended %llu bytes early (truncated while being sent?); closing connection",
                  static_cast<unsigned long long>(p.file_left));
      close();
      return false;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
    PF_LOG_DEBUG("sendfile: %s", std::strerror(errno));
    close();
    return false;
  }
}

void StreamConnection::flush() {
  while (!closing_ && queue_head_ < queue_.size()) {
    Pending& first = queue_[queue_head_];
    if (first.is_file()) {
      if (!send_file_part(first)) return;
      first.owner.reset();
      ++queue_head_;
      continue;
    }
    iovec iov[kMaxIov];
    int count = 0;
    std::size_t i = queue_head_;
    for (; i < queue_.size() && count < kMaxIov && !queue_[i].is_file(); ++i) iov[count++] = iov_of(queue_[i].rest());
    const bool file_next = i < queue_.size() && queue_[i].is_file();
    ssize_t n = send_now(iov, count, file_next);
    if (n <= 0) return;  // full, or closed
    auto sent = static_cast<std::size_t>(n);
    queued_bytes_ -= sent;
    std::size_t total = 0;
    for (int k = 0; k < count; ++k) total += iov[k].iov_len;
    while (sent > 0) {
      Pending& p = queue_[queue_head_];
      std::size_t left = p.rest().size();
      if (sent < left) {
        p.done += sent;
        break;
      }
      sent -= left;
      p = Pending{};  // frees the bytes now
      ++queue_head_;
    }
    if (static_cast<std::size_t>(n) < total) return;  // the socket is full
  }
  if (closing_) return;
  queue_.clear();
  queue_head_ = 0;
  on_queue_drained();
}

void StreamConnection::on_queue_drained() {
  update_poll();
  if (shutting_down_) return close();
  if (lingering_) return send_fin();
  if (session_) session_->on_writes_done();
}

// --- reading ---------------------------------------------------------------------

void StreamConnection::read_once() {
  char* buf = owner_.read_buffer();
  ssize_t n = ::read(fd_, buf, ConnectionSet::kReadBufferSize);
  if (n < 0) {
    if (transient(errno)) return;
    PF_LOG_DEBUG("read: %s", std::strerror(errno));
    return close();
  }
  if (lingering_) {
    if (n == 0) close();  // the peer's FIN: nothing left to protect
    return;               // input after our last response is dropped
  }
  if (n == 0) {
    pause_reading();
    if (session_) session_->on_eof();
    return;
  }
  if (session_) session_->on_data(std::string_view(buf, static_cast<std::size_t>(n)));
}

void StreamConnection::on_poll(uv_poll_t* handle, int status, int events) {
  auto* self = static_cast<StreamConnection*>(handle->data);
  if (self->closing_) return;
  if (status < 0) {
    // libuv reports POLLERR (a reset, say) as UV_EBADF and has stopped the handle.
    PF_LOG_DEBUG("poll: %s", uv_strerror(status));
    return self->close();
  }
  self->in_poll_callback_ = true;
  if (events & UV_WRITABLE) self->flush();
  if (!self->closing_ && (events & UV_READABLE) && (self->reading_ || self->lingering_)) self->read_once();
  self->in_poll_callback_ = false;
  if (!self->closing_ && self->poll_dirty_) self->apply_poll();
}

void StreamConnection::update_poll() {
  if (closing_) return;
  if (in_poll_callback_) {
    poll_dirty_ = true;
    return;
  }
  apply_poll();
}

void StreamConnection::apply_poll() {
  poll_dirty_ = false;
  int mask = ((reading_ || lingering_) ? UV_READABLE : 0) | (queue_.empty() ? 0 : UV_WRITABLE);
  if (mask == poll_mask_) return;
  int rc = mask == 0 ? uv_poll_stop(&poll_) : uv_poll_start(&poll_, mask, on_poll);
  if (rc != 0) {
    PF_LOG_ERROR("uv_poll_start: %s", uv_strerror(rc));
    return close();
  }
  poll_mask_ = mask;
}

void StreamConnection::pause_reading() {
  if (!reading_ || closing_) return;
  reading_ = false;
  update_poll();
}

void StreamConnection::resume_reading() {
  if (reading_ || closing_ || shutting_down_ || lingering_) return;
  reading_ = true;
  update_poll();
}

// --- timers ----------------------------------------------------------------------

bool StreamConnection::init_timer(UvHandle<uv_timer_t>& timer) {
  if (timer) return true;
  timer = UvHandle<uv_timer_t>(this);
  int rc = uv_timer_init(owner_.loop(), timer.get());
  if (rc != 0) {
    PF_LOG_ERROR("uv_timer_init: %s", uv_strerror(rc));
    return false;
  }
  timer.mark_initialized();
  return true;
}

void StreamConnection::watch_send_progress() {
  if (send_timeout_ms_ == 0 || closing_) return;
  if (send_timer_ && uv_is_active(send_timer_.handle())) return;
  if (!init_timer(send_timer_)) return close();
  sent_at_last_check_ = bytes_sent_;
  int rc = uv_timer_start(send_timer_.get(), on_send_check, send_timeout_ms_, send_timeout_ms_);
  if (rc != 0) {
    PF_LOG_ERROR("uv_timer_start: %s", uv_strerror(rc));
    close();
  }
}

void StreamConnection::on_send_check(uv_timer_t* timer) {
  auto* self = owner_of<StreamConnection>(timer);
  if (!self || self->closing_) return;
  if (self->queue_.empty()) {
    uv_timer_stop(timer);
    return;
  }
  if (self->bytes_sent_ == self->sent_at_last_check_) {
    PF_LOG_DEBUG("send timeout: %zu bytes unsent; closing", self->queued_bytes_);
    self->close();
    return;
  }
  self->sent_at_last_check_ = self->bytes_sent_;
}

void StreamConnection::set_timeout(std::uint64_t ms) {
  if (closing_) return;
  if (ms == 0) {
    deadline_ = 0;  // a pending timer finds no deadline and stays quiet
    return;
  }
  if (!init_timer(deadline_timer_)) return close();
  std::uint64_t now = uv_now(owner_.loop());
  deadline_ = now + ms;
  if (uv_is_active(deadline_timer_.handle()) && timer_due_ <= deadline_) return;
  timer_due_ = deadline_;
  int rc = uv_timer_start(deadline_timer_.get(), on_deadline, ms, 0);
  if (rc != 0) {
    PF_LOG_ERROR("uv_timer_start: %s", uv_strerror(rc));
    close();
  }
}

void StreamConnection::on_deadline(uv_timer_t* timer) {
  auto* self = owner_of<StreamConnection>(timer);
  if (!self || self->closing_ || self->deadline_ == 0) return;
  std::uint64_t now = uv_now(self->owner_.loop());
  if (now < self->deadline_) {
    self->timer_due_ = self->deadline_;
    int rc = uv_timer_start(timer, on_deadline, self->deadline_ - now, 0);
    if (rc != 0) {
      PF_LOG_ERROR("uv_timer_start: %s", uv_strerror(rc));
      self->close();
    }
    return;
  }
  self->deadline_ = 0;
  if (self->lingering_) return self->close();
  if (self->session_) self->session_->on_timeout();
}

// --- closing ---------------------------------------------------------------------

// No shutdown(2): the connection is closed as soon as its writes are done, and
// close(2) sends the FIN after the queued bytes by itself. Saves a syscall and a
// loop turn per connection, which the Connection: close benchmark showed.
void StreamConnection::shutdown_and_close() {
  if (closing_ || shutting_down_) return;
  shutting_down_ = true;
  reading_ = false;
  if (queue_.empty()) return close();
  update_poll();
}

void StreamConnection::shutdown_and_linger() {
  if (closing_ || shutting_down_ || lingering_) return;
  lingering_ = true;
  reading_ = false;  // what arrives from now on is read and dropped
  if (queue_.empty()) send_fin();
  if (!closing_) update_poll();
}

// Our output is out: FIN, and from here the peer has kLingerMs to close its side.
void StreamConnection::send_fin() {
  if (fin_sent_ || closing_) return;
  fin_sent_ = true;
  if (::shutdown(fd_, SHUT_WR) != 0) {
    PF_LOG_DEBUG("shutdown: %s", std::strerror(errno));
    return close();
  }
  set_timeout(kLingerMs);
}

void StreamConnection::close() {
  if (closing_) return;
  closing_ = true;
  deadline_timer_.reset();
  send_timer_.reset();
  // Owners (cache entries, shared buffers) are released now, not with the object.
  queue_.clear();
  queue_head_ = 0;
  queued_bytes_ = 0;
  if (!initialized_) return;
  // uv_close stops polling (EPOLL_CTL_DEL) at once, so the fd may be closed now:
  // the FIN goes out without waiting for the close callback's loop turn.
  uv_close(reinterpret_cast<uv_handle_t*>(&poll_), on_closed);
  ::close(fd_);
  fd_ = -1;
}

void StreamConnection::on_closed(uv_handle_t* h) {
  auto* self = connection_of(h);
  self->session_.reset();
  --self->owner_.stats().active;
  self->owner_.remove(*self);  // deletes self
}

void StreamConnection::retire() {
  if (!closing_ && session_) session_->on_retire();
}

ConnectionSet::~ConnectionSet() = default;

StreamConnection& ConnectionSet::create() {
  connections_.push_back(std::make_unique<StreamConnection>(*this));
  auto& connection = *connections_.back();
  connection.self_ = std::prev(connections_.end());
  return connection;
}

void ConnectionSet::remove(StreamConnection& connection) {
  bool was_full = full();
  connections_.erase(connection.self_);
  if (was_full && !full() && on_room_) on_room_();
  if (connections_.empty() && on_empty_) on_empty_();
}

void ConnectionSet::retire_all() {
  retiring_ = true;
  // retire() may close, but closing only completes on a later loop turn, so the
  // list is not modified while it is walked.
  for (auto& c : connections_) c->retire();
}

void ConnectionSet::close_all() {
  for (auto& c : connections_) c->close();
}

}  // namespace preforkd
