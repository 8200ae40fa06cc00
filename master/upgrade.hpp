// The binary upgrade (USR2), the old master's side. The master runs one Upgrade
// per attempt: it owns the new master's process handle, the read end of its
// report pipe (upgrade_report.hpp) and the pid file and control socket moved
// aside, and is destroyed when the new master exits, so a retry starts from
// nothing left over. The Supervisor decides what the news means (hand over,
// park, roll back); this only carries it.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <memory>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "common/uv_handle.hpp"

namespace preforkd {

class ControlServer;

// How a master hands its slot sockets to the master that replaces it: fd numbers
// and listener keys, as SlotSockets::describe_for_upgrade() writes them.
inline constexpr const char* kInheritedSocketsEnv = "PREFORKD_INHERITED_SOCKETS";
// The new master finds the inherited sockets from this fd on.
inline constexpr int kFirstInheritedFd = 3;

class Upgrade {
 public:
  class Events {
   public:
    virtual ~Events() = default;
    // The new master's first generation is ready.
    virtual void on_successor_serving(UpgradeHandover handover) = 0;
    // The new master exited; `why` is the error it reported, or its exit status.
    // The owner destroys the Upgrade inside this call (its last use of it).
    virtual void on_successor_exited(const std::string& why) = 0;
  };

  struct Request {
    std::string binary;       // the path this master was started from: whatever file is there now runs
    std::string config_path;
    std::string pid_file;
    std::string notify_socket;  // systemd's, passed on so the new master can announce itself; "" if none
    std::string sockets;        // describe_for_upgrade(kFirstInheritedFd, &fds)
    std::vector<int> fds;
    ControlServer* control = nullptr;  // its socket file moves aside like the pid file; may be null
  };

  // Moves the pid file to PID_FILE.oldbin (and the control socket to
  // PATH.oldbin) and starts `binary` as the new master. nullptr with *error if it
  // could not be started (logged; both are back in place).
  static std::unique_ptr<Upgrade> start(uv_loop_t* loop, const Request& request, Events& events,
                                        std::string* error);

  Upgrade(const Upgrade&) = delete;
  Upgrade& operator=(const Upgrade&) = delete;
  // Closes the handles only: a new master still running is left alone (it is the
  // one taking over if this master is stopping).
  ~Upgrade() = default;

  pid_t pid() const { return pid_; }

 private:
  Upgrade(const Request& request, Events& events);
  static void on_exit(uv_process_t* process, int64_t status, int signal);
  static void on_report(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  void report_line(const std::string& line);
  void put_back();

  std::string pid_file_;
  ControlServer* control_;
  Events& events_;
  pid_t pid_ = 0;
  UvHandle<uv_process_t> process_;
  UvHandle<uv_pipe_t> report_;
  std::string report_buffer_;
  std::string reported_error_;  // the new master's "error" line, for its exit
  bool serving_ = false;
  char read_buffer_[1024];
};

}  // namespace preforkd
