// The new master's watch on the master it replaced (USR2): told once that master
// is gone, so that the sockets both held become this master's alone. A pidfd
// (Linux 5.3) becomes readable when the process exits; without one, a slow
// timer asks whether our parent (the old master) is still our parent.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <functional>

#include "common/uv_handle.hpp"

namespace preforkd {

class PredecessorWatch {
 public:
  PredecessorWatch(uv_loop_t* loop, std::function<void()> gone);
  ~PredecessorWatch();
  PredecessorWatch(const PredecessorWatch&) = delete;
  PredecessorWatch& operator=(const PredecessorWatch&) = delete;

  // Watches `pid`, which must be our parent (else it is gone already and its pid
  // may be another process's): false then, and `gone` is not called.
  bool start(pid_t pid);
  void close();

 private:
  void fire();

  uv_loop_t* loop_;
  std::function<void()> gone_;
  pid_t pid_ = 0;
  int pidfd_ = -1;
  UvHandle<uv_poll_t> poll_;
  UvHandle<uv_timer_t> timer_;
};

}  // namespace preforkd
