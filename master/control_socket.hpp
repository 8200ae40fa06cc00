// The control socket: a Unix stream socket served on the master's own loop, one
// request line per connection (control_protocol.hpp), answered by lines the
// Handler sends, possibly much later (a reload's outcome). Nothing a client does
// can block or crash the master: requests are bounded in size and in time, the
// number of clients is capped, every write is asynchronous, and a client that
// goes away is simply forgotten.
//
// The socket file is created mode 0600 (set on the socket before bind, so it
// never exists with looser permissions) and owned by the master's user; a peer
// that is neither root nor that user is refused even if the mode was loosened.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "common/uv_handle.hpp"

namespace preforkd {

class ControlServer {
 public:
  using ClientId = std::uint64_t;
  class Handler {
   public:
    virtual ~Handler() = default;
    // One complete request line (without "\n"). The handler answers with send()
    // and ends the exchange with finish().
    virtual void on_request(ClientId client, std::string_view line) = 0;
    // The client went away or was dropped (timeout, error) before finish().
    virtual void on_client_gone(ClientId client) = 0;
  };

  ControlServer(uv_loop_t* loop, Handler& handler);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Creates the socket at `path` and listens. A socket file left by a master that
  // is gone is replaced; one where a master answers, or a file that is not a
  // socket, is an error (*error says which).
  bool listen(const std::string& path, std::string* error);
  // Stops listening, drops every client, and removes the socket file if it is
  // still ours (at its path or moved aside as PATH.oldbin).
  void close();
  bool listening() const { return static_cast<bool>(listener_); }
  const std::string& path() const { return path_; }

  // A binary upgrade: the socket file moves to PATH.oldbin, so the new master
  // can create its own at PATH (as the pid file does); and back if it fails.
  bool move_aside(std::string* error);
  void move_back();

  // Queues `line` (which ends with "\n") for the client; false if it is gone.
  bool send(ClientId client, std::string line);
  // Closes the connection once everything queued is written.
  void finish(ClientId client);

  struct Connection;

 private:
  static void on_connection(uv_stream_t* server, int status);
  void drop(Connection* connection, bool tell_handler);
  bool still_ours(const std::string& path) const;

  uv_loop_t* loop_;
  Handler& handler_;
  UvHandle<uv_pipe_t> listener_;
  std::string path_;
  dev_t device_ = 0;  // of the socket file we created, to tell it from a successor's
  ino_t inode_ = 0;
  ClientId next_id_ = 1;
  std::map<ClientId, std::unique_ptr<Connection>> connections_;
  friend struct Connection;
};

}  // namespace preforkd
