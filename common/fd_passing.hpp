// Handing listening sockets to a worker that is already running (a pre-spawned
// spare, see master/spare_workers.hpp): one byte carrying the descriptors as
// SCM_RIGHTS on the worker's IPC socketpair, sent before its start message. A
// worker spawned for its slot inherits them at exec instead.
#pragma once

#include <cstddef>
#include <vector>

namespace preforkd {

// The kernel's limit on descriptors in one SCM_RIGHTS message (SCM_MAX_FD).
inline constexpr std::size_t kMaxPassedFds = 253;

// Sends `fds` (at most kMaxPassedFds) on the connected Unix stream socket `sock`
// as one byte with SCM_RIGHTS. Nothing else may be queued on the socket before
// it: the byte must be the next one the peer reads. 0, or -errno.
int send_fds(int sock, const std::vector<int>& fds);

// Blocks until that byte arrives on `sock` and stores the descriptors it carried
// (close-on-exec) in *fds. 1: received; 0: end of file (the master is gone);
// -errno on error, or -EPROTO for a byte without descriptors or with truncated
// ones (any that did arrive are closed).
int receive_fds(int sock, std::vector<int>* fds);

}  // namespace preforkd
