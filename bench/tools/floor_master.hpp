// The pre-fork part shared by the floor servers (http_floor, udp_floor): one
// SO_REUSEPORT socket per worker, bound by the master before any worker exists (so
// the group is complete when the first request arrives, as preforkd's master-owned
// slot sockets are), one forked process per socket, and a master that only waits.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "bench/tools/tool_util.hpp"

namespace bench_tools {

// A bound (and for SOCK_STREAM listening) IPv4 socket with SO_REUSEPORT.
inline int reuseport_socket(const char* address, int port, int type) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (inet_pton(AF_INET, address, &addr.sin_addr) != 1) {
    std::fprintf(stderr, "%s: %s: not an IPv4 address\n", program_invocation_short_name, address);
    std::exit(2);
  }
  int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  int on = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0) die("setsockopt SO_REUSEADDR");
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) die("setsockopt SO_REUSEPORT");
  if (bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) die("bind");
  if (type == SOCK_STREAM && listen(fd, 511) != 0) die("listen");
  return fd;
}

// Forks one worker per socket, each running serve(its socket) and dying with the
// master (PR_SET_PDEATHSIG); with pin_to_cpu, worker i runs on CPU i only (i modulo
// the CPUs online). The master closes its copies and waits. TERM, INT or
// QUIT to the master stop everything; it returns 0 once every worker is reaped, 1 if
// a worker exited on its own (a bug in the floor: the benchmark must not go on).
template <typename Serve>
int run_workers(const std::vector<int>& sockets, Serve serve, bool pin_to_cpu = false) {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  for (int sig : {SIGTERM, SIGINT, SIGQUIT}) sigaddset(&stop_signals, sig);
  // Held from before the first fork, so no signal can arrive before the master
  // waits for it with sigwait.
  if (sigprocmask(SIG_BLOCK, &stop_signals, nullptr) != 0) die("sigprocmask");
  // A write to a peer that has gone must be an error to handle, not a death: the
  // floors' send calls say MSG_NOSIGNAL, but sendfile(2) cannot (a reset after the
  // peer's FIN is EPIPE). As nginx and preforkd's workers do.
  if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) die("signal SIGPIPE");
  pid_t master = getpid();
  std::vector<pid_t> workers;
  for (int fd : sockets) {
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
      if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) die("prctl PR_SET_PDEATHSIG");
      if (getppid() != master) _exit(1);  // the master died before prctl
      if (pin_to_cpu) {
        cpu_set_t cpu;
        CPU_ZERO(&cpu);
        CPU_SET(static_cast<int>(workers.size() % static_cast<std::size_t>(sysconf(_SC_NPROCESSORS_ONLN))), &cpu);
        if (sched_setaffinity(0, sizeof cpu, &cpu) != 0) die("sched_setaffinity");
      }
      for (int other : sockets)
        if (other != fd) close(other);
      sigprocmask(SIG_UNBLOCK, &stop_signals, nullptr);
      serve(fd);
      _exit(1);
    }
    workers.push_back(pid);
  }
  for (int fd : sockets) close(fd);
  // A worker that exits on its own is reported as SIGCHLD, which sigwait sees too.
  sigaddset(&stop_signals, SIGCHLD);
  if (sigprocmask(SIG_BLOCK, &stop_signals, nullptr) != 0) die("sigprocmask");
  int sig = 0;
  if (sigwait(&stop_signals, &sig) != 0) die("sigwait");
  // Which worker ended, and how, before the others are killed (their statuses say only
  // SIGKILL).
  int status = 0;
  pid_t ended = sig == SIGCHLD ? waitpid(-1, &status, WNOHANG) : 0;
  for (pid_t pid : workers) kill(pid, SIGKILL);
  for (pid_t pid : workers)
    if (pid != ended) waitpid(pid, nullptr, 0);
  if (sig == SIGCHLD) {
    if (ended > 0 && WIFSIGNALED(status))
      std::fprintf(stderr, "%s: worker %d was killed by signal %d (%s)\n", program_invocation_short_name,
                   static_cast<int>(ended), WTERMSIG(status), strsignal(WTERMSIG(status)));
    else if (ended > 0)
      std::fprintf(stderr, "%s: worker %d exited on its own with status %d\n", program_invocation_short_name,
                   static_cast<int>(ended), WEXITSTATUS(status));
    else
      std::fprintf(stderr, "%s: a worker exited on its own\n", program_invocation_short_name);
    return 1;
  }
  return 0;
}

}  // namespace bench_tools
