// A worker process: one libuv loop serving its own sockets for every listener.
#pragma once

#include <sys/types.h>

namespace preforkd {

// Runs a worker whose IPC channel to the master is ipc_fd. Returns the exit code.
// spare: started ahead of need (`--spare`); it waits on ipc_fd for its listening
// sockets (common/fd_passing.hpp) and then for its start message, instead of
// inheriting the sockets at exec.
int run_worker(int ipc_fd, pid_t master_pid, bool spare = false);

}  // namespace preforkd
