// Blocking a worker's signals from its first instruction until its handlers exist.
#include "worker/worker_signals.hpp"

#include <signal.h>

#include <cerrno>
#include <cstring>

#include "common/log.hpp"

namespace preforkd {
namespace {

sigset_t held_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int signum : {SIGHUP, SIGUSR1, SIGUSR2, SIGQUIT, SIGTERM, SIGINT, SIGWINCH, SIGTTIN, SIGTTOU})
    sigaddset(&set, signum);
  return set;
}

void set_mask(int how, const char* what) {
  sigset_t set = held_signals();
  // The worker is single-threaded here (libuv's threadpool starts on first use).
  int rc = pthread_sigmask(how, &set, nullptr);
  if (rc != 0) PF_LOG_ERROR("pthread_sigmask(%s): %s", what, std::strerror(rc));
}

}  // namespace

void hold_worker_signals() {
  set_mask(SIG_BLOCK, "SIG_BLOCK");
  // The master's own signals mean nothing to a worker; an operator's `kill -TTIN`
  // to the whole process group must not stop or kill it.
  for (int signum : {SIGUSR2, SIGWINCH, SIGTTIN, SIGTTOU}) {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    if (sigaction(signum, &ignore, nullptr) != 0)
      PF_LOG_ERROR("sigaction(%s, SIG_IGN): %s", strsignal(signum), std::strerror(errno));
  }
}

void release_worker_signals() { set_mask(SIG_UNBLOCK, "SIG_UNBLOCK"); }

}  // namespace preforkd
