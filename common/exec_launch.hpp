// How the master starts an exec-mode worker. The master spawns its own image as
// a short-lived trampoline (worker/exec_trampoline.cpp) that does, between fork
// and the program's exec, what uv_spawn cannot: LISTEN_PID must be the program's
// own pid, which exists only after the fork. This file holds what crosses that
// gap: the trampoline's command line (encoded by the master, decoded by the
// trampoline) and the program's environment, both pure and unit-tested.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/exec_config.hpp"

namespace preforkd {

// argv[1] of the trampoline; cli/main.cpp dispatches on it before anything else.
inline constexpr const char* kExecTrampolineFlag = "--exec-trampoline";
// The slot's sockets are fds 3, 4, ... in [[listen]] order (SD_LISTEN_FDS_START).
inline constexpr int kFirstListenFd = 3;

// Exit codes of a trampoline that could not exec the program, one per step, so
// that the master's "exited (status N)" already says which one (its stderr line
// in the error log has the call and the reason). 126 and 127 are the shell's.
enum ExecExit : int {
  kExecExitUsage = 120,       // bad trampoline arguments (a preforkd bug)
  kExecExitFds = 121,         // the inherited sockets are not where they should be
  kExecExitParent = 122,      // PR_SET_PDEATHSIG failed, or the master is already gone
  kExecExitPrivileges = 123,  // setgroups / setgid / setuid
  kExecExitDirectory = 124,   // chdir(directory)
  kExecExitSignals = 125,     // restoring default signal dispositions and mask
  kExecExitCannotExec = 126,  // execv failed (permission, format)
  kExecExitNotFound = 127,    // execv: no such file
};

struct ExecLaunch {
  int slot = 0;
  unsigned generation = 0;
  pid_t master_pid = 0;  // the parent the trampoline must still have
  int fd_count = 0;      // fds kFirstListenFd .. kFirstListenFd + fd_count - 1
  // Whom the program runs as (the master's `user`, looked up at load time);
  // user empty: not changed.
  std::string user;
  unsigned uid = 0;
  unsigned gid = 0;
  std::uint64_t nofile = 0;  // worker_rlimit_nofile; 0: inherited
  std::string directory;     // empty: not changed
  std::string program;       // the file to execute
  std::vector<std::string> argv;
  bool operator==(const ExecLaunch&) const = default;
};

// The trampoline's argv: a title for ps, kExecTrampolineFlag, then the launch.
std::vector<std::string> encode_trampoline_args(const ExecLaunch& launch);
// Reverse of encode_trampoline_args (args[0] is the title); nullopt with *error.
std::optional<ExecLaunch> decode_trampoline_args(std::span<const std::string> args, std::string* error);

struct ExecWorkerEnvironment {
  int slot = 0;
  unsigned generation = 0;
  std::vector<std::string> fd_names;  // LISTEN_FDNAMES, in fd order
  std::string notify_socket;          // "@..." (abstract) for NOTIFY_SOCKET
  std::uint64_t watchdog_usec = 0;    // WATCHDOG_USEC: worker_timeout
};

// The program's environment as "NAME=value" strings: `inherited` (the master's)
// minus every variable preforkd sets or the config names, then the config's
// [exec].environment, then LISTEN_FDS, LISTEN_FDNAMES, NOTIFY_SOCKET,
// WATCHDOG_USEC, PREFORKD_SLOT and PREFORKD_GENERATION. LISTEN_PID and
// WATCHDOG_PID are the program's own pid: the trampoline adds them.
std::vector<std::string> exec_environment(std::span<const std::string> inherited, const ExecConfig& exec,
                                          const ExecWorkerEnvironment& worker);

}  // namespace preforkd
