// Accepted TCP connections: reading into a shared buffer, queued writes that own
// their bytes, orderly shutdown, and deletion from the close callback.
#include "worker/stream_connection.hpp"

#include <netinet/in.h>
#include <unistd.h>

#include "common/log.hpp"

namespace preforkd {

// One uv_write and the bytes it sends, alive until its callback.
struct WriteRequest {
  uv_write_t req{};
  std::string head;
  std::string body;
  std::shared_ptr<const std::string> shared_body;
};

namespace {

// How long a lingering close waits, once our output is flushed, for the peer's
// FIN (nginx's lingering_timeout): a peer told Connection: close closes at once.
constexpr std::uint64_t kLingerMs = 5000;

StreamConnection* connection_of(uv_handle_t* h) { return static_cast<StreamConnection*>(h->data); }

}  // namespace

StreamConnection::StreamConnection(ConnectionSet& owner) : owner_(owner) { tcp_.data = this; }

StreamConnection::~StreamConnection() = default;

void StreamConnection::start(int fd, StreamHandler& handler, std::uint64_t send_timeout_ms) {
  send_timeout_ms_ = send_timeout_ms;
  int rc = uv_tcp_init(owner_.loop(), &tcp_);
  if (rc != 0) {
    PF_LOG_ERROR("uv_tcp_init: %s", uv_strerror(rc));
    ::close(fd);
    owner_.remove(*this);
    return;
  }
  initialized_ = true;
  // Counted from here so that on_closed's decrement always has its increment.
  ++owner_.stats().accepted;
  ++owner_.stats().active;
  if ((rc = uv_tcp_open(&tcp_, fd)) != 0) {
    PF_LOG_ERROR("uv_tcp_open: %s", uv_strerror(rc));
    ::close(fd);
    close();
    return;
  }
  // No Nagle (responses are written whole; it would only delay the last
  // segment): set on the listening socket, which accepted sockets inherit.
  session_ = handler.open_session(*this);
  // Accepted after retirement began (the linger, the final drain of the queue):
  // retiring from its first byte.
  if (owner_.retiring_) session_->on_retire();
  resume_reading();
}

std::string StreamConnection::peer_address() const {
  if (!peer_address_.empty() || !initialized_) return peer_address_.empty() ? "-" : peer_address_;
  sockaddr_storage ss{};
  int len = sizeof ss;
  char name[INET6_ADDRSTRLEN] = "-";
  int rc = uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&ss), &len);
  if (rc == 0 && ss.ss_family == AF_INET) {
    rc = uv_ip4_name(reinterpret_cast<const sockaddr_in*>(&ss), name, sizeof name);
  } else if (rc == 0 && ss.ss_family == AF_INET6) {
    rc = uv_ip6_name(reinterpret_cast<const sockaddr_in6*>(&ss), name, sizeof name);
  }
  if (rc != 0) {
    PF_LOG_DEBUG("getpeername: %s", uv_strerror(rc));
    return "-";
  }
  peer_address_ = name;
  return peer_address_;
}

void StreamConnection::write(std::string head, std::string body) {
  if (closing_) return;
  auto request = std::make_unique<WriteRequest>();
  request->head = std::move(head);
  request->body = std::move(body);
  std::string_view view = request->body;
  queue_write(std::move(request), view);
}

void StreamConnection::write_shared(std::string head, std::shared_ptr<const std::string> body) {
  if (closing_) return;
  auto request = std::make_unique<WriteRequest>();
  request->head = std::move(head);
  request->shared_body = std::move(body);
  std::string_view view = request->shared_body ? std::string_view(*request->shared_body) : std::string_view();
  queue_write(std::move(request), view);
}

void StreamConnection::write_shared_range(std::string head, std::shared_ptr<const std::string> body,
                                          std::size_t offset, std::size_t length) {
  if (closing_) return;
  auto request = std::make_unique<WriteRequest>();
  request->head = std::move(head);
  request->shared_body = std::move(body);
  std::string_view view = request->shared_body ? std::string_view(*request->shared_body).substr(offset, length)
                                               : std::string_view();
  queue_write(std::move(request), view);
}

void StreamConnection::queue_write(std::unique_ptr<WriteRequest> request, std::string_view body) {
  uv_buf_t bufs[2];
  unsigned count = 0;
  if (!request->head.empty()) bufs[count++] = uv_buf_init(request->head.data(), request->head.size());
  // libuv takes non-const buffers but only reads them.
  if (!body.empty()) bufs[count++] = uv_buf_init(const_cast<char*>(body.data()), body.size());
  if (count == 0) return;
  request->req.data = request.get();
  int rc = uv_write(&request->req, reinterpret_cast<uv_stream_t*>(&tcp_), bufs, count, on_write);
  if (rc != 0) {
    PF_LOG_DEBUG("uv_write: %s", uv_strerror(rc));
    close();
    return;
  }
  request.release();  // on_write owns it now
  ++pending_writes_;
  for (unsigned i = 0; i < count; ++i) bytes_queued_ += bufs[i].len;
  // uv_write writes at once what the socket takes; only a remainder depends on
  // the peer reading, and only then is there anything to time out.
  if (write_queue_size() > 0) watch_send_progress();
}

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
  sent_at_last_check_ = bytes_sent();
  int rc = uv_timer_start(send_timer_.get(), on_send_check, send_timeout_ms_, send_timeout_ms_);
  if (rc != 0) {
    PF_LOG_ERROR("uv_timer_start: %s", uv_strerror(rc));
    close();
  }
}

void StreamConnection::on_send_check(uv_timer_t* timer) {
  auto* self = owner_of<StreamConnection>(timer);
  if (!self || self->closing_) return;
  if (self->write_queue_size() == 0) {
    uv_timer_stop(timer);
    return;
  }
  std::uint64_t sent = self->bytes_sent();
  if (sent == self->sent_at_last_check_) {
    PF_LOG_DEBUG("send timeout: %zu bytes unsent; closing", self->write_queue_size());
    self->close();
    return;
  }
  self->sent_at_last_check_ = sent;
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

void StreamConnection::on_write(uv_write_t* req, int status) {
  std::unique_ptr<WriteRequest> request(static_cast<WriteRequest*>(req->data));
  auto* self = connection_of(reinterpret_cast<uv_handle_t*>(req->handle));
  --self->pending_writes_;
  if (status != 0) {
    // ECANCELED comes from our own close; anything else means the peer is gone.
    if (status != UV_ECANCELED) PF_LOG_DEBUG("write: %s", uv_strerror(status));
    self->close();
    return;
  }
  if (self->pending_writes_ == 0 && self->shutting_down_) {
    self->close();
    return;
  }
  if (self->pending_writes_ == 0 && !self->closing_ && self->session_) self->session_->on_writes_done();
}

std::size_t StreamConnection::write_queue_size() const {
  return uv_stream_get_write_queue_size(reinterpret_cast<const uv_stream_t*>(&tcp_));
}

void StreamConnection::pause_reading() {
  if (!reading_ || closing_) return;
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
  reading_ = false;
}

void StreamConnection::resume_reading() {
  if (reading_ || closing_ || shutting_down_) return;
  int rc = uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), on_alloc, on_read);
  if (rc != 0) {
    PF_LOG_DEBUG("uv_read_start: %s", uv_strerror(rc));
    close();
    return;
  }
  reading_ = true;
}

void StreamConnection::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* self = connection_of(h);
  *buf = uv_buf_init(self->owner_.read_buffer(), ConnectionSet::kReadBufferSize);
}

void StreamConnection::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto* self = connection_of(reinterpret_cast<uv_handle_t*>(s));
  if (self->lingering_) {
    if (nread < 0) self->close();  // the peer's FIN (or its reset): nothing left to protect
    return;                        // input after our last response is dropped
  }
  if (nread > 0) {
    if (self->session_) self->session_->on_data(std::string_view(buf->base, nread));
    return;
  }
  if (nread == UV_EOF) {
    self->pause_reading();
    if (self->session_) self->session_->on_eof();
    return;
  }
  if (nread < 0) {
    PF_LOG_DEBUG("read: %s", uv_strerror(static_cast<int>(nread)));
    self->close();
  }
}

// No shutdown(2): the connection is closed as soon as its writes are done, and
// close(2) sends the FIN after the queued bytes by itself. Saves a syscall and a
// loop turn per connection, which the Connection: close benchmark showed.
void StreamConnection::shutdown_and_close() {
  if (closing_ || shutting_down_) return;
  pause_reading();
  shutting_down_ = true;
  if (pending_writes_ == 0) close();
}

void StreamConnection::shutdown_and_linger() {
  if (closing_ || shutting_down_ || lingering_) return;
  lingering_ = true;
  // libuv sends the FIN once the queued writes have completed.
  int rc = uv_shutdown(&shutdown_req_, reinterpret_cast<uv_stream_t*>(&tcp_), on_shutdown);
  if (rc != 0) {
    PF_LOG_DEBUG("uv_shutdown: %s", uv_strerror(rc));
    close();
    return;
  }
  resume_reading();
}

// Our output is out: from here the peer has kLingerMs to close its side.
void StreamConnection::on_shutdown(uv_shutdown_t* req, int status) {
  auto* self = connection_of(reinterpret_cast<uv_handle_t*>(req->handle));
  if (self->closing_) return;
  if (status != 0) {
    PF_LOG_DEBUG("shutdown: %s", uv_strerror(status));
    self->close();
    return;
  }
  self->set_timeout(kLingerMs);
}

void StreamConnection::close() {
  if (closing_) return;
  closing_ = true;
  deadline_timer_.reset();
  send_timer_.reset();
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_closed);
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
