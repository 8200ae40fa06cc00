// UDP receive and reply, batched: libuv reads up to 20 datagrams per recvmmsg
// (UV_UDP_RECVMMSG), the handler's replies to them wait until the batch ends and
// leave in one sendmmsg. Per datagram that is a tenth of a syscall or less instead
// of two, which is most of what a UDP echo costs beyond the kernel's own work.
//
// libuv 1.44 has no batched send (uv_udp_try_send2 came in 1.50), so the batch is
// sent on the handle's fd directly, exactly where uv_udp_try_send would have sent
// it: only while libuv's own send queue is empty, so replies never overtake queued
// ones. What the kernel cannot take at once is queued through uv_udp_send, as
// before.
#include "worker/udp_listener.hpp"

#include <cerrno>
#include <cstring>
#include <string>

#include "common/address.hpp"
#include "common/log.hpp"

namespace preforkd {

struct UdpListener::SendRequest {
  uv_udp_send_t req{};
  std::string bytes;  // keeps its capacity across reuse
  sockaddr_in6 peer{};
};

namespace {

socklen_t sockaddr_length(const sockaddr* peer) {
  return peer->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

}  // namespace

UdpListener::ReplyBatch::ReplyBatch() {
  // Each slot's header points at its own address and buffer for good; add() only
  // fills them in.
  for (std::size_t i = 0; i < kCapacity; ++i) {
    msghdr& h = messages_[i].msg_hdr;
    h.msg_name = &peers_[i];
    h.msg_iov = &iov_[i];
    h.msg_iovlen = 1;
  }
}

void UdpListener::ReplyBatch::add(std::string_view bytes, const sockaddr* peer) {
  std::size_t i = size_++;
  // Constant-size copies (inlined), not one of a variable length.
  if (peer->sa_family == AF_INET6) {
    std::memcpy(&peers_[i], peer, sizeof(sockaddr_in6));
    messages_[i].msg_hdr.msg_namelen = sizeof(sockaddr_in6);
  } else {
    std::memcpy(&peers_[i], peer, sizeof(sockaddr_in));
    messages_[i].msg_hdr.msg_namelen = sizeof(sockaddr_in);
  }
  iov_[i].iov_base = const_cast<char*>(bytes.data());
  iov_[i].iov_len = bytes.size();
}

std::string_view UdpListener::ReplyBatch::bytes(std::size_t i) const {
  return {static_cast<const char*>(iov_[i].iov_base), iov_[i].iov_len};
}

UdpListener::UdpListener(const ListenerConfig& config, std::unique_ptr<DatagramHandler> handler,
                         WorkerStats& stats)
    : config_(config), handler_(std::move(handler)), stats_(stats), udp_(this) {}

UdpListener::~UdpListener() = default;

int UdpListener::start(uv_loop_t* loop, int fd) {
  // AF_UNSPEC: no socket of libuv's own; the bound one is adopted below.
  int rc = uv_udp_init_ex(loop, udp_.get(), AF_UNSPEC | UV_UDP_RECVMMSG);
  if (rc != 0) return rc;
  udp_.mark_initialized();
  if ((rc = uv_udp_open(udp_.get(), fd)) != 0) return rc;
  fd_ = fd;
  buffer_size_ = uv_udp_using_recvmmsg(udp_.get()) ? kMmsgChunk * kMmsgWidth : config_.max_datagram_size;
  buffer_ = std::make_unique<char[]>(buffer_size_);
  return uv_udp_recv_start(udp_.get(), on_alloc, on_receive);
}

void UdpListener::stop() {
  if (!udp_ || stopping_) return;
  // Normally empty here (a batch is flushed at its end), but a stop from inside a
  // handler would end the batch without its last callback.
  flush_replies();
  stopping_ = true;
  uv_udp_recv_stop(udp_.get());
  // Closing now would cancel queued replies; wait for the last one (on_sent).
  if (pending_sends_ == 0) udp_.reset();
}

void UdpListener::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* self = owner_of<UdpListener>(h);
  *buf = uv_buf_init(self->buffer_.get(), self->buffer_size_);
}

void UdpListener::on_receive(uv_udp_t* udp, ssize_t nread, const uv_buf_t* buf, const sockaddr* peer,
                             unsigned flags) {
  auto* self = owner_of<UdpListener>(udp);
  if (!self) return;
  if (flags & UV_UDP_MMSG_FREE) {
    // The batch's last callback: libuv may reuse the buffer from now on.
    self->in_batch_ = false;
    self->flush_replies();
    return;
  }
  if (self->stopping_ || !self->handler_) return;
  if (nread < 0) {
    PF_LOG_WARN("recv on udp %s: %s", self->config_.address.to_string().c_str(),
                uv_strerror(static_cast<int>(nread)));
    return;
  }
  // nread == 0 with no peer means "nothing more for now"; with a peer it is an
  // empty datagram, which is echoed like any other.
  if (peer == nullptr) return;
  if ((flags & UV_UDP_PARTIAL) || static_cast<std::size_t>(nread) > self->config_.max_datagram_size) {
    // Echoing the first max_datagram_size bytes would answer a question nobody asked.
    PF_LOG_DEBUG("udp %s: datagram over %zu bytes from %s dropped", self->config_.address.to_string().c_str(),
                 self->config_.max_datagram_size, format_sockaddr(peer).c_str());
    return;
  }
  self->in_batch_ = (flags & UV_UDP_MMSG_CHUNK) != 0;
  self->handler_->on_datagram(std::string_view(buf->base, static_cast<std::size_t>(nread)), peer, *self);
}

bool UdpListener::in_receive_buffer(std::string_view bytes) const {
  auto* base = buffer_.get();
  return bytes.data() >= base && bytes.data() + bytes.size() <= base + buffer_size_;
}

void UdpListener::send_to(std::string_view bytes, const sockaddr* peer) {
  if (in_batch_ && in_receive_buffer(bytes) && uv_udp_get_send_queue_count(udp_.get()) == 0) {
    if (batch_.full()) flush_replies();
    batch_.add(bytes, peer);
    return;
  }
  // Bytes that may not outlive this call, or a queue to keep behind: what is
  // batched goes first, so replies keep their order.
  flush_replies();
  send_now(bytes, peer);
}

void UdpListener::flush_replies() {
  std::size_t done = 0;
  while (done < batch_.size()) {
    int sent = ::sendmmsg(fd_, batch_.messages() + done, static_cast<unsigned>(batch_.size() - done), 0);
    if (sent > 0) {
      stats_.requests += static_cast<std::uint64_t>(sent);
      done += static_cast<std::size_t>(sent);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      for (; done < batch_.size(); ++done) queue_copy(batch_.bytes(done), batch_.peer(done));
      break;
    }
    // sendmmsg fails only on its first message: that one reply is lost, as a
    // failed uv_udp_try_send would lose it, and the rest are tried again.
    PF_LOG_DEBUG("udp send to %s: %s", format_sockaddr(batch_.peer(done)).c_str(), std::strerror(errno));
    ++done;
  }
  batch_.clear();
}

void UdpListener::send_now(std::string_view bytes, const sockaddr* peer) {
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
  queue_copy(bytes, peer);
}

void UdpListener::queue_copy(std::string_view bytes, const sockaddr* peer) {
  if (pending_sends_ >= kMaxPendingSends) {
    PF_LOG_DEBUG("udp send to %s: %zu replies queued; dropped", format_sockaddr(peer).c_str(), pending_sends_);
    return;
  }
  std::unique_ptr<SendRequest> request;
  if (!spare_requests_.empty()) {
    request = std::move(spare_requests_.back());
    spare_requests_.pop_back();
  } else {
    request = std::make_unique<SendRequest>();
  }
  request->bytes.assign(bytes);
  std::memcpy(&request->peer, peer, sockaddr_length(peer));
  request->req.data = request.get();
  uv_buf_t buf = uv_buf_init(request->bytes.data(), request->bytes.size());
  int rc = uv_udp_send(&request->req, udp_.get(), &buf, 1, reinterpret_cast<const sockaddr*>(&request->peer),
                       on_sent);
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
  if (self->spare_requests_.size() < kMaxSpareRequests) self->spare_requests_.push_back(std::move(request));
  if (self->stopping_ && self->pending_sends_ == 0) self->udp_.reset();
}

}  // namespace preforkd
