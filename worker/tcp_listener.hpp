// A worker's own listening TCP socket for one configured listener.
#pragma once

#include <uv.h>

#include <cstdint>
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
  // Closes the socket without accepting: what is queued stays with the kernel,
  // for the slot's next worker (the master holds the socket too). A stop, not a
  // drain; and safe in a destructor, since it creates no session.
  void close();
  // Polls again after a pause at the connection cap (a no-op otherwise).
  void resume_accepting();
  // Destroys the handler once the listener is closed and its sessions are gone, so
  // that the handler's own uv handles close while the loop still runs.
  void drop_handler() { handler_.reset(); }
  ~TcpListener();
  const ListenerConfig& config() const { return config_; }

 private:
  static void on_readable(uv_poll_t* poll, int status, int events);
  static void on_retry(uv_timer_t* timer);
  bool accept_queued(bool ignore_cap = false);
  void pause_polling();
  void resume_polling();
  void back_off_fd_exhaustion(int error);

  ListenerConfig config_;
  std::unique_ptr<StreamHandler> handler_;
  ConnectionSet& connections_;
  uv_loop_t* loop_ = nullptr;
  int fd_ = -1;
  UvHandle<uv_poll_t> poll_;
  // Why polling is paused. With the queue left to the kernel, a paused listener
  // costs nothing; the connections wait in the backlog (or go to other workers).
  bool paused_at_cap_ = false;
  bool warned_at_cap_ = false;
  bool paused_out_of_fds_ = false;
  UvHandle<uv_timer_t> retry_;  // EMFILE/ENFILE: poll again after kFdRetryMs
  static constexpr std::uint64_t kFdRetryMs = 100;
};

}  // namespace preforkd
