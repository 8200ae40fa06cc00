// One worker process as the master sees it: the uv_process_t that reports its exit
// and the IPC pipe (fd 3 in the worker) that carries framed messages both ways.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <string>
#include <vector>

#include "common/ipc_message.hpp"
#include "common/uv_handle.hpp"

namespace preforkd {

// The image this master runs, not the file now at its path: a binary installed
// ahead of USR2 must not reach respawns, reloads or scaling (nginx forks itself
// for the same reason). Exec'd in the forked child, /proc/self/exe still names
// the parent's image, even after the file was replaced or deleted. Built-in
// workers and exec mode's trampoline are both started from it.
inline constexpr const char* kOwnImage = "/proc/self/exe";

// Places fds at first, first+1, ... in a spawned child (dup2'd there, so they
// survive its exec while staying close-on-exec here); returns the child's numbers.
std::vector<std::int32_t> inherit_fds(std::vector<uv_stdio_container_t>& stdio, int first,
                                      const std::vector<int>& fds);

class WorkerProcess {
 public:
  class Events {
   public:
    virtual ~Events() = default;
    virtual void on_worker_message(pid_t pid, const ipc::Message& message) = 0;
    // A worker broke the protocol; the master decides what to do with it.
    virtual void on_worker_protocol_error(pid_t pid, const std::string& error) = 0;
    // The process is gone. This object may be destroyed inside the call.
    virtual void on_worker_exit(pid_t pid, int status, int signal) = 0;
  };

  WorkerProcess(uv_loop_t* loop, Events& events);
  // Spawns the master's own image as `--worker` with the IPC pipe as fd 3 and
  // listener_fds as fds 4, 5, ... and sends it `start` (whose listener_fds are
  // filled in here). Returns the pid, or a negative libuv error (logged).
  pid_t spawn(ipc::Start start, const std::vector<int>& listener_fds);
  // Spawns the image as an idle `--worker --spare` with only the IPC pipe: it
  // waits there for start(). Returns the pid, or a negative libuv error (logged).
  pid_t spawn_spare();
  // Hands a spare its listening sockets (SCM_RIGHTS) and `start`. 0, or a
  // negative errno (logged); the spare must then be killed.
  int start(ipc::Start start, const std::vector<int>& listener_fds);
  void send(const ipc::Message& message);
  pid_t pid() const { return pid_; }

 private:
  // uv_spawn of our own image with `args`, the IPC pipe as fd 3 and `fds` from fd 4.
  pid_t launch(const std::vector<const char*>& args, const std::vector<int>& fds, ipc::Start* start);
  static void on_exit(uv_process_t* process, int64_t status, int signal);
  static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);

  uv_loop_t* loop_;
  Events& events_;
  pid_t pid_ = 0;
  UvHandle<uv_process_t> process_;
  UvHandle<uv_pipe_t> pipe_;
  ipc::Decoder decoder_;
};

}  // namespace preforkd
