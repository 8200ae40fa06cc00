// One exec-mode worker as the master sees it: the operator's program, started
// through the trampoline (worker/exec_trampoline.hpp) with its slot's sockets on
// fds 3, 4, ...; its own NOTIFY_SOCKET; and its stdout and stderr, which go to
// the error log. The counterpart of WorkerProcess for [exec]: no IPC pipe, no
// counters (the program's requests never pass through preforkd).
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "common/uv_handle.hpp"
#include "master/exec_notify_socket.hpp"
#include "master/exec_output.hpp"
#include "master/notify_message.hpp"

namespace preforkd {

class ExecWorker {
 public:
  class Events {
   public:
    virtual ~Events() = default;
    virtual void on_exec_notice(pid_t pid, const NotifyMessage& message) = 0;
    // The process is gone (its remaining output logged); last_output is its last
    // line on stderr, else on stdout. This object may be destroyed inside the call.
    virtual void on_exec_exit(pid_t pid, int status, int signal, std::string last_output) = 0;
  };

  ExecWorker(uv_loop_t* loop, Events& events);
  ExecWorker(const ExecWorker&) = delete;
  ExecWorker& operator=(const ExecWorker&) = delete;

  // Starts config.exec.command for slot of generation with listen_fds (one per
  // listener, in config order). serial makes the notify socket's name unique
  // within this master; watchdog_usec is the worker_timeout the supervisor
  // judges with. Returns the pid, or a negative libuv error (logged).
  pid_t spawn(int slot, unsigned generation, const Config& config, const std::vector<int>& listen_fds,
              std::uint64_t serial, std::uint64_t watchdog_usec);
  pid_t pid() const { return pid_; }

 private:
  static void on_exit(uv_process_t* process, int64_t status, int signal);

  uv_loop_t* loop_;
  Events& events_;
  pid_t pid_ = 0;
  NotifySocket notify_;
  OutputPipe stdout_;
  OutputPipe stderr_;
  UvHandle<uv_process_t> process_;
};

}  // namespace preforkd
