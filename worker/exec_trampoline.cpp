// The trampoline's steps, in an order that matters: fds first (nothing may leak
// into the program), the fd limit while still root, the privilege drop, then the
// parent-death signal (a credential change clears it) and the check that the
// master still lives, the working directory as the new user, and signals last so
// that nothing from the master reaches a half-prepared process as a default
// action it cannot survive: everything until then is the master's own process.
#include "worker/exec_trampoline.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/exec_launch.hpp"
#include "worker/privileges.hpp"

namespace preforkd {
namespace {

std::string g_who = "preforkd exec";

// One line on stderr, then _exit: no atexit handlers, no stdio flush of a
// half-built state, no leak check of a process that is about to disappear.
[[noreturn]] __attribute__((format(printf, 2, 3))) void fail(int code, const char* fmt, ...) {
  char line[1024];
  int n = std::snprintf(line, sizeof line, "%s: ", g_who.c_str());
  va_list args;
  va_start(args, fmt);
  int m = std::vsnprintf(line + n, sizeof line - static_cast<std::size_t>(n) - 1, fmt, args);
  va_end(args);
  std::size_t len = static_cast<std::size_t>(n) + (m < 0 ? 0 : std::min<std::size_t>(m, sizeof line - n - 2));
  line[len++] = '\n';
  ssize_t ignored = ::write(STDERR_FILENO, line, len);
  (void)ignored;
  ::_exit(code);
}

void keep_listen_fds(int count) {
  for (int fd = kFirstListenFd; fd < kFirstListenFd + count; ++fd) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) fail(kExecExitFds, "fstat(fd %d): %s", fd, std::strerror(errno));
    if (!S_ISSOCK(st.st_mode)) fail(kExecExitFds, "fd %d is not a socket", fd);
    if (::fcntl(fd, F_SETFD, 0) != 0) fail(kExecExitFds, "fcntl(fd %d, F_SETFD, 0): %s", fd, std::strerror(errno));
  }
}

// Everything from `first` on: whatever the master or the sanitizer runtime may
// have left open must not become the program's.
void close_fds_from(int first) {
  if (::close_range(static_cast<unsigned>(first), ~0U, 0) == 0) return;
  if (errno != ENOSYS && errno != EINVAL) fail(kExecExitFds, "close_range(%d, ~0): %s", first, std::strerror(errno));
  // Kernels before 5.9: list /proc/self/fd first, then close what it named.
  std::vector<int> open_fds;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) fail(kExecExitFds, "opendir(/proc/self/fd): %s", std::strerror(errno));
  const int own = ::dirfd(dir);
  while (dirent* entry = ::readdir(dir)) {
    int fd = std::atoi(entry->d_name);
    if (fd >= first && fd != own) open_fds.push_back(fd);
  }
  ::closedir(dir);
  for (int fd : open_fds) ::close(fd);
}

void default_signals() {
  for (int signum = 1; signum < NSIG; ++signum) {
    if (signum == SIGKILL || signum == SIGSTOP) continue;
    struct sigaction action {};
    action.sa_handler = SIG_DFL;
    // glibc reserves two real-time signals for itself and refuses them (EINVAL).
    if (::sigaction(signum, &action, nullptr) != 0 && errno != EINVAL)
      fail(kExecExitSignals, "sigaction(%d, SIG_DFL): %s", signum, std::strerror(errno));
  }
  sigset_t none;
  sigemptyset(&none);
  if (::sigprocmask(SIG_SETMASK, &none, nullptr) != 0)
    fail(kExecExitSignals, "sigprocmask(SIG_SETMASK, {}): %s", std::strerror(errno));
}

}  // namespace

int run_exec_trampoline(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  std::string error;
  auto launch = decode_trampoline_args(args, &error);
  if (!launch) fail(kExecExitUsage, "bad trampoline arguments: %s", error.c_str());
  g_who = "preforkd exec slot=" + std::to_string(launch->slot) + " gen=" + std::to_string(launch->generation);

  keep_listen_fds(launch->fd_count);
  close_fds_from(kFirstListenFd + launch->fd_count);

  // Set at once so that a master dying from here on takes us along; set again
  // after the privilege drop, which clears it.
  if (::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) fail(kExecExitParent, "prctl(PR_SET_PDEATHSIG): %s", std::strerror(errno));
  if (launch->nofile != 0 && !set_nofile_limit(launch->nofile, &error))
    std::fprintf(stderr, "%s: worker_rlimit_nofile: %s\n", g_who.c_str(), error.c_str());  // as built-in workers: not fatal
  RunAs run_as;
  run_as.user = launch->user;
  run_as.uid = launch->uid;
  run_as.gid = launch->gid;
  if (!drop_privileges(run_as, &error)) fail(kExecExitPrivileges, "dropping privileges: %s", error.c_str());
  if (::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) fail(kExecExitParent, "prctl(PR_SET_PDEATHSIG): %s", std::strerror(errno));
  if (::getppid() != launch->master_pid) fail(kExecExitParent, "master %d is gone; not starting", launch->master_pid);

  if (!launch->directory.empty() && ::chdir(launch->directory.c_str()) != 0)
    fail(kExecExitDirectory, "chdir(%s): %s", launch->directory.c_str(), std::strerror(errno));

  const std::string pid = std::to_string(::getpid());
  if (::setenv("LISTEN_PID", pid.c_str(), 1) != 0 || ::setenv("WATCHDOG_PID", pid.c_str(), 1) != 0)
    fail(kExecExitUsage, "setenv(LISTEN_PID): %s", std::strerror(errno));

  std::vector<char*> program_argv;
  for (std::string& a : launch->argv) program_argv.push_back(a.data());
  program_argv.push_back(nullptr);
  default_signals();
  ::execv(launch->program.c_str(), program_argv.data());
  const int why = errno;
  fail(why == ENOENT ? kExecExitNotFound : kExecExitCannotExec, "execv(%s): %s", launch->program.c_str(),
       std::strerror(why));
}

}  // namespace preforkd
