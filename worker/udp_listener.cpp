// UDP receive and reply. Replies go out with uv_udp_try_send when the socket can
// take them at once (no allocation); otherwise a copy is queued.
#include "worker/udp_listener.hpp"

#include <netinet/in.h>

#include <cstring>
#include <string>

#include "common/address.hpp"
#include "common/log.hpp"

namespace preforkd {
namespace {

struct SendRequest {
  uv_udp_send_t req{};
  std::string bytes;
  sockaddr_storage peer{};
};

}  // namespace

UdpListener::UdpListener(const ListenerConfig& config, std::unique_ptr<DatagramHandler> handler,
                         WorkerStats& stats)
    : config_(config),
      handler_(std::move(handler)),
      stats_(stats),
      udp_(this),
      buffer_(std::make_unique<char[]>(config.max_datagram_size)) {}

int UdpListener::start(uv_loop_t* loop, int fd) {
  int rc = uv_udp_init(loop, udp_.get());
  if (rc != 0) return rc;
  udp_.mark_initialized();
  if ((rc = uv_udp_open(udp_.get(), fd)) != 0) return rc;
  return uv_udp_recv_start(udp_.get(), on_alloc, on_receive);
}

void UdpListener::stop() {
  if (!udp_ || stopping_) return;
  stopping_ = true;
  uv_udp_recv_stop(udp_.get());
  // Closing now would cancel queued replies; wait for the last one (on_sent).
  if (pending_sends_ == 0) udp_.reset();
}

void UdpListener::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* self = owner_of<UdpListener>(h);
  *buf = uv_buf_init(self->buffer_.get(), self->config_.max_datagram_size);
}

void UdpListener::on_receive(uv_udp_t* udp, ssize_t nread, const uv_buf_t* buf,
                             const sockaddr* peer, unsigned flags) {
  auto* self = owner_of<UdpListener>(udp);
  if (!self || self->stopping_ || !self->handler_) return;
  if (nread < 0) {
    PF_LOG_WARN("recv on udp %s: %s", self->config_.address.to_string().c_str(),
                uv_strerror(static_cast<int>(nread)));
    return;
  }
  // nread == 0 with no peer means "nothing more for now"; with a peer it is an
  // empty datagram, which is echoed like any other.
  if (peer == nullptr) return;
  if (flags & UV_UDP_PARTIAL) {
    // Echoing the first max_datagram_size bytes would answer a question nobody asked.
    PF_LOG_DEBUG("udp %s: datagram over %zu bytes from %s dropped", self->config_.address.to_string().c_str(),
                 self->config_.max_datagram_size, format_sockaddr(peer).c_str());
    return;
  }
  self->handler_->on_datagram(std::string_view(buf->base, nread), peer, *self);
}

void UdpListener::send_to(std::string_view bytes, const sockaddr* peer) {
  uv_buf_t buf = uv_buf_init(const_cast<char*>(bytes.data()), bytes.size());
  int rc = uv_udp_try_send(udp_.get(), &buf, 1, peer);
  if (rc >= 0) {
    ++stats_.requests;
    return;
  }
  if (rc != UV_EAGAIN) {
    PF_LOG_DEBUG("udp send to %s: %s", format_sockaddr(peer).c_str(), uv_strerror(rc));
    return;
  }
  if (pending_sends_ >= kMaxPendingSends) {
    PF_LOG_DEBUG("udp send to %s: %zu replies queued; dropped", format_sockaddr(peer).c_str(), pending_sends_);
    return;
  }
  auto request = std::make_unique<SendRequest>();
  request->bytes.assign(bytes);
  std::memcpy(&request->peer, peer, peer->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in));
  request->req.data = request.get();
  buf = uv_buf_init(request->bytes.data(), request->bytes.size());
  rc = uv_udp_send(&request->req, udp_.get(), &buf, 1, reinterpret_cast<sockaddr*>(&request->peer), on_sent);
  if (rc != 0) {
    PF_LOG_DEBUG("uv_udp_send to %s: %s", format_sockaddr(peer).c_str(), uv_strerror(rc));
    return;
  }
  request.release();
  ++pending_sends_;
}

void UdpListener::on_sent(uv_udp_send_t* req, int status) {
  std::unique_ptr<SendRequest> request(static_cast<SendRequest*>(req->data));
  auto* self = owner_of<UdpListener>(req->handle);
  if (!self) return;  // the listener is gone; its handle is closing
  --self->pending_sends_;
  if (status == 0) ++self->stats_.requests;
  if (self->stopping_ && self->pending_sends_ == 0) self->udp_.reset();
}

}  // namespace preforkd
