// An exec-mode worker's own NOTIFY_SOCKET: an abstract AF_UNIX datagram socket
// the master binds for that one worker before it starts, so that the socket a
// datagram arrives on says which worker sent it (systemd tells services apart by
// the sender's cgroup; preforkd has no cgroups to ask, and the pid in the
// credentials is not the worker's when a helper such as `systemd-notify` sends).
// Read on the master's loop: non-blocking, a bounded number of bounded datagrams
// per wake-up, sender checked by its credentials, any passed fd closed at once.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <functional>
#include <string>

#include "common/uv_handle.hpp"
#include "master/notify_message.hpp"

namespace preforkd {

class NotifySocket {
 public:
  using Handler = std::function<void(const NotifyMessage&)>;
  explicit NotifySocket(uv_loop_t* loop);
  ~NotifySocket();
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  // Binds the abstract name `name` (without the leading '@') and starts reading.
  // Datagrams from processes of users other than `sender_uid` and root are
  // dropped (an abstract socket has no file permissions: anyone on the host could
  // otherwise declare a worker ready). false with *error.
  bool open(const std::string& name, uid_t sender_uid, Handler handler, std::string* error);
  // NOTIFY_SOCKET's value: "@" + name.
  const std::string& address() const { return address_; }
  void close();

 private:
  static void on_readable(uv_poll_t* poll, int status, int events);
  void read_datagrams();

  uv_loop_t* loop_;
  int fd_ = -1;
  uid_t sender_uid_ = 0;
  std::string address_;
  Handler handler_;
  UvHandle<uv_poll_t> poll_;
  bool warned_ = false;  // one warning per socket for unwanted datagrams
};

}  // namespace preforkd
