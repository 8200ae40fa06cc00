// The binary upgrade (USR2), both sides of it. The old master runs one Upgrade per
// attempt: it owns the new master's process handle and the pid file moved aside,
// and is destroyed when the attempt ends, so a retry starts from nothing left over.
// The new master calls hand_over_from() once it serves.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/uv_handle.hpp"

namespace preforkd {

// How a master hands its slot sockets to the master that replaces it: fd numbers
// and listener keys, as SlotSockets::describe_for_upgrade() writes them.
inline constexpr const char* kInheritedSocketsEnv = "PREFORKD_INHERITED_SOCKETS";
// The new master finds the inherited sockets from this fd on.
inline constexpr int kFirstInheritedFd = 3;

class Upgrade {
 public:
  struct Request {
    std::string binary;       // the path this master was started from: whatever file is there now runs
    std::string config_path;
    std::string pid_file;
    std::string notify_socket;  // systemd's, passed on so the new master can announce itself; "" if none
    std::string sockets;        // describe_for_upgrade(kFirstInheritedFd, &fds)
    std::vector<int> fds;
  };

  // Moves the pid file to PID_FILE.oldbin and starts `binary` as the new master.
  // nullptr if it could not be started (logged; the pid file is back in place).
  // `failed` runs when the new master exits before it has taken over; the owner
  // destroys the Upgrade there (it is the callback's last use of it).
  static std::unique_ptr<Upgrade> start(uv_loop_t* loop, const Request& request, std::function<void()> failed);

  Upgrade(const Upgrade&) = delete;
  Upgrade& operator=(const Upgrade&) = delete;
  // Closes the handle only: a new master still running is left alone (it is the
  // one taking over if this master is stopping).
  ~Upgrade() = default;

  pid_t pid() const { return pid_; }

  // Whether a signal to the old master may act while its successor starts. USR2
  // (one attempt at a time) and HUP (the successor has read the config already,
  // and the pid file names it) are refused, with a log line; the rest act as usual.
  bool allows(int signum) const;

 private:
  Upgrade(std::string pid_file, std::function<void()> failed);
  static void on_exit(uv_process_t* process, int64_t status, int signal);

  std::string pid_file_;
  std::function<void()> failed_;
  pid_t pid_ = 0;
  UvHandle<uv_process_t> process_;
};

// In the new master, once all its workers are ready: asks the master it replaces
// to stop gracefully (QUIT). If that master is no longer our parent it has gone
// already (an operator's QUIT came first) and its pid may belong to someone else
// by now, so nobody is signalled.
void hand_over_from(pid_t old_master);

}  // namespace preforkd
