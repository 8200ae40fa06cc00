// [exec]: run a program of the operator's as the worker of every slot ("exec
// mode"). The program receives its slot's sockets through systemd's socket
// activation protocol (LISTEN_FDS, sd_listen_fds(3)) and reports readiness through
// sd_notify(3), which gunicorn, go-systemd, uvicorn's --fd and `systemd-notify`
// already speak; see the README's "Running your own server under preforkd".
// This file holds the section's model; its parser is exec_config_loader.hpp.
#pragma once

#include <csignal>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace preforkd {

struct ProtocolSpec;

inline constexpr double kDefaultExecStartTimeoutS = 10.0;  // as for built-in workers

struct ExecConfig {
  std::vector<std::string> command;  // argv as written, no shell; empty: not exec mode
  std::string program;               // command[0] found at load time: the file that is executed
  double ready_after_s = 0;          // 0: ready = "notify" (READY=1); else alive this long = ready
  double start_timeout_s = kDefaultExecStartTimeoutS;  // READY not by then: the start failed
  int stop_signal = SIGTERM;         // asks a retiring program to stop; SIGKILL after graceful_timeout
  int reopen_signal = SIGUSR1;       // forwarded on USR1 (log rotation); 0: "none"
  std::string directory;             // absolute working directory; empty: the master's
  // Added to (or replacing in) the environment the master was started with.
  std::vector<std::pair<std::string, std::string>> environment;

  bool enabled() const { return !command.empty(); }
  bool ready_on_notify() const { return ready_after_s == 0; }
};

// Variables preforkd sets for each program; [exec].environment may not name them.
inline constexpr std::string_view kExecReservedVariables[] = {
    "LISTEN_FDS",    "LISTEN_PID",   "LISTEN_FDNAMES", "NOTIFY_SOCKET",
    "WATCHDOG_USEC", "WATCHDOG_PID", "PREFORKD_SLOT",  "PREFORKD_GENERATION"};

// With [exec] a listener's protocol is "tcp" or "udp": the transport of the socket
// the program gets, as a schema with no keys and no factories (nothing of this
// binary serves it). Null for any other name.
const ProtocolSpec* exec_transport(std::string_view name);

// "TERM", "SIGTERM", ... -> signal number; 0 if not one a program may be sent.
int exec_signal_from_name(std::string_view name);
// SIGTERM -> "TERM".
std::string_view exec_signal_name(int signum);

// The file execv() runs for `name` (command[0]): a name without '/' is looked
// up in `search_path` (PATH's syntax; relative entries are skipped, as they would
// depend on where the check runs), a path is taken as it is. It must be a
// regular file with an execute bit. Empty with *error ("\"x\" not found in PATH
// (...)", "PATH: Permission denied").
std::string find_program(const std::string& name, std::string_view search_path, std::string* error);

}  // namespace preforkd
