// A worker's own bound UDP socket for one configured listener.
#pragma once

#include <uv.h>

#include <memory>

#include "common/config.hpp"
#include "common/uv_handle.hpp"
#include "worker/handler.hpp"
#include "worker/worker_stats.hpp"

namespace preforkd {

class UdpListener final : public DatagramReplier {
 public:
  UdpListener(const ListenerConfig& config, std::unique_ptr<DatagramHandler> handler, WorkerStats& stats);
  // Adopts a bound datagram fd and starts receiving. Returns 0 or a libuv error.
  int start(uv_loop_t* loop, int fd);
  // Stops receiving. Replies already queued are still sent before the handle closes.
  void stop();
  void send_to(std::string_view bytes, const sockaddr* peer) override;
  // Once stopped: destroys the handler (queued replies are still sent).
  void drop_handler() { handler_.reset(); }

 private:
  static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void on_receive(uv_udp_t* udp, ssize_t nread, const uv_buf_t* buf, const sockaddr* peer,
                         unsigned flags);
  static void on_sent(uv_udp_send_t* req, int status);

  ListenerConfig config_;
  std::unique_ptr<DatagramHandler> handler_;
  WorkerStats& stats_;
  UvHandle<uv_udp_t> udp_;
  std::size_t pending_sends_ = 0;
  bool stopping_ = false;
  // Reused for every datagram; its size is limits.max_datagram_size (by default
  // 64 KiB, more than any UDP payload), and longer datagrams arrive truncated.
  std::unique_ptr<char[]> buffer_;
  // Replies the kernel could not take at once are queued; past this many the
  // peer (or a spoofed one) is asking faster than we can answer, and they drop.
  static constexpr std::size_t kMaxPendingSends = 1024;
};

}  // namespace preforkd
