// The admin endpoint: a small HTTP/1.1 responder on the master's own loop for
// GET /metrics and GET /status. One request per connection (Connection: close),
// requests bounded in size and time, nothing that could block the master: the
// answer is rendered from memory and written asynchronously.
#pragma once

#include <uv.h>

#include <map>
#include <memory>
#include <string>

#include "common/address.hpp"
#include "common/uv_handle.hpp"

namespace preforkd {

class AdminServer {
 public:
  class Provider {
   public:
    virtual ~Provider() = default;
    virtual std::string metrics_text() = 0;  // Prometheus exposition 0.0.4
    virtual std::string status_json() = 0;
  };

  AdminServer(uv_loop_t* loop, Provider& provider);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Binds (SO_REUSEPORT, so a USR2 successor can bind while we still serve) and listens.
  bool listen(const SocketAddress& address, std::string* error);
  // Stops accepting and closes every connection.
  void close();
  bool listening() const { return static_cast<bool>(listener_); }

  struct Connection;

 private:
  static void on_connection(uv_stream_t* server, int status);
  void finish(Connection* connection);

  uv_loop_t* loop_;
  Provider& provider_;
  UvHandle<uv_tcp_t> listener_;
  std::map<Connection*, std::unique_ptr<Connection>> connections_;
  friend struct Connection;
};

}  // namespace preforkd
