// The exec-mode trampoline: the process the master spawns for a slot when [exec]
// is configured, which turns itself into the operator's program. It runs between
// fork and the program's exec, as the same pid, and does what uv_spawn cannot or
// should not: LISTEN_PID and WATCHDOG_PID are its own pid (go-systemd and gunicorn
// ignore the sockets otherwise), the sockets on fds 3.. lose close-on-exec and
// every other fd is closed, signals are back to their defaults with nothing
// blocked, the parent-death signal is set after the privilege drop (which clears
// it), then chdir and execv. Each failure is one line on stderr (the master's
// error log) with the call and strerror, and a distinct exit code (ExecExit).
#pragma once

namespace preforkd {

// argv as main() got it (argv[1] == kExecTrampolineFlag). Returns only on
// failure, with an ExecExit code; on success the process is the program.
int run_exec_trampoline(int argc, char** argv);

}  // namespace preforkd
