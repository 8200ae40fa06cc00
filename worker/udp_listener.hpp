// A worker's own bound UDP socket for one configured listener.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <uv.h>

#include <array>
#include <memory>
#include <vector>

#include "common/config.hpp"
#include "common/uv_handle.hpp"
#include "worker/handler.hpp"
#include "worker/worker_stats.hpp"

namespace preforkd {

class UdpListener final : public DatagramReplier {
 public:
  UdpListener(const ListenerConfig& config, std::unique_ptr<DatagramHandler> handler, WorkerStats& stats);
  ~UdpListener() override;
  // Adopts a bound datagram fd and starts receiving. Returns 0 or a libuv error.
  int start(uv_loop_t* loop, int fd);
  // Stops receiving. Replies already queued are still sent before the handle closes.
  void stop();
  void send_to(std::string_view bytes, const sockaddr* peer) override;
  // Once stopped: destroys the handler (queued replies are still sent).
  void drop_handler() { handler_.reset(); }

 private:
  struct SendRequest;

  // Replies to the datagrams of one recvmmsg batch, sent with one sendmmsg when the
  // batch ends. They point into the receive buffer, which libuv does not reuse
  // before the batch's last callback (UV_UDP_MMSG_FREE), so nothing is copied.
  class ReplyBatch {
   public:
    static constexpr std::size_t kCapacity = 32;
    ReplyBatch();
    bool empty() const { return size_ == 0; }
    bool full() const { return size_ == kCapacity; }
    std::size_t size() const { return size_; }
    void add(std::string_view bytes, const sockaddr* peer);
    mmsghdr* messages() { return messages_.data(); }
    std::string_view bytes(std::size_t i) const;
    const sockaddr* peer(std::size_t i) const { return reinterpret_cast<const sockaddr*>(&peers_[i]); }
    void clear() { size_ = 0; }

   private:
    std::size_t size_ = 0;
    std::array<mmsghdr, kCapacity> messages_{};
    std::array<iovec, kCapacity> iov_{};
    std::array<sockaddr_in6, kCapacity> peers_{};  // large enough for AF_INET and AF_INET6
  };

  static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void on_receive(uv_udp_t* udp, ssize_t nread, const uv_buf_t* buf, const sockaddr* peer,
                         unsigned flags);
  static void on_sent(uv_udp_send_t* req, int status);
  bool in_receive_buffer(std::string_view bytes) const;
  void flush_replies();
  void send_now(std::string_view bytes, const sockaddr* peer);
  void queue_copy(std::string_view bytes, const sockaddr* peer);

  ListenerConfig config_;
  std::unique_ptr<DatagramHandler> handler_;
  WorkerStats& stats_;
  UvHandle<uv_udp_t> udp_;
  int fd_ = -1;
  std::size_t pending_sends_ = 0;
  bool stopping_ = false;
  // Inside a recvmmsg batch: replies into the receive buffer wait in batch_.
  bool in_batch_ = false;
  // Reused for every datagram. With recvmmsg (Linux), libuv splits it into
  // kMmsgChunk-sized slots, one datagram each, up to kMmsgWidth per call; without
  // it, it is max_datagram_size long and longer datagrams arrive truncated.
  // Either way a datagram over max_datagram_size is dropped, never echoed in part.
  std::unique_ptr<char[]> buffer_;
  std::size_t buffer_size_ = 0;
  ReplyBatch batch_;
  // Queued replies' requests, kept for reuse: no allocation per queued datagram once
  // the queue has been this deep before.
  std::vector<std::unique_ptr<SendRequest>> spare_requests_;
  // Replies the kernel could not take at once are queued; past this many the
  // peer (or a spoofed one) is asking faster than we can answer, and they drop.
  static constexpr std::size_t kMaxPendingSends = 1024;
  static constexpr std::size_t kMaxSpareRequests = 64;
  // libuv 1.44's recvmmsg geometry (src/unix/udp.c: UV__UDP_DGRAM_MAXSIZE, and its
  // array of 20 peers per call): a buffer of kMmsgWidth chunks fills one call.
  static constexpr std::size_t kMmsgChunk = 64 * 1024;
  static constexpr std::size_t kMmsgWidth = 20;
};

}  // namespace preforkd
