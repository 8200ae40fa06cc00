// A worker process: one libuv loop serving its own sockets for every listener.
#pragma once

#include <sys/types.h>

namespace preforkd {

// Runs a worker whose IPC channel to the master is ipc_fd. Returns the exit code.
int run_worker(int ipc_fd, pid_t master_pid);

}  // namespace preforkd
