// Control commands, nginx style: the signal is the interface, the pid file the address.
#include "master/control.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>

#include "master/pid_file.hpp"

namespace preforkd {

int send_control(const std::string& action, const std::string& pid_file) {
  int signum = action == "stop" ? SIGTERM
               : action == "quit" ? SIGQUIT
               : action == "reload" ? SIGHUP
               : action == "reopen" ? SIGUSR1
               : action == "upgrade" ? SIGUSR2
                                    : 0;
  if (signum == 0) {
    std::fprintf(stderr, "preforkd: unknown action \"%s\" (stop, quit, reload, reopen, upgrade)\n", action.c_str());
    return kControlBadAction;
  }
  std::string error;
  auto pid = read_pid_file(pid_file, &error);
  if (!pid) {
    std::fprintf(stderr, "preforkd: no running master: %s\n", error.c_str());
    return kControlNoMaster;
  }
  if (!is_running_preforkd(*pid)) {
    std::fprintf(stderr, "preforkd: stale pid file %s: process %d is not a running preforkd\n",
                 pid_file.c_str(), static_cast<int>(*pid));
    return kControlNoMaster;
  }
  if (::kill(*pid, signum) != 0) {
    std::fprintf(stderr, "preforkd: kill(%d, %s): %s\n", static_cast<int>(*pid), strsignal(signum),
                 std::strerror(errno));
    return kControlNoMaster;
  }
  return kControlOk;
}

}  // namespace preforkd
