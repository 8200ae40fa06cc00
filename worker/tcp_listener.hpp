// A worker's own listening TCP socket for one configured listener.
#pragma once

#include <uv.h>

#include <memory>
#include <string>

#include "common/config.hpp"
#include "common/uv_handle.hpp"
#include "worker/handler.hpp"
#include "worker/stream_connection.hpp"

namespace preforkd {

class TcpListener {
 public:
  TcpListener(const ListenerConfig& config, std::unique_ptr<StreamHandler> handler,
              ConnectionSet& connections);
  // Adopts a bound, listening fd and starts accepting. Returns 0 or a libuv error.
  int start(uv_loop_t* loop, int fd);
  // Stops accepting: first accepts whatever the kernel already queued on this
  // socket (closing a listener resets its queue), then closes it.
  void stop_accepting();
  ~TcpListener();
  const ListenerConfig& config() const { return config_; }

 private:
  static void on_readable(uv_poll_t* poll, int status, int events);
  bool accept_queued();

  ListenerConfig config_;
  std::unique_ptr<StreamHandler> handler_;
  ConnectionSet& connections_;
  int fd_ = -1;
  UvHandle<uv_poll_t> poll_;
};

}  // namespace preforkd
