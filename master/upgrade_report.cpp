// The new master's report to the old one; see upgrade_report.hpp.
#include "master/upgrade_report.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>

#include "common/log.hpp"

namespace preforkd::upgrade_report {
namespace {

int g_fd = -1;
bool g_taken = false;
bool g_failed = false;

// Short lines to a pipe nobody else writes: one write each (below PIPE_BUF, so
// atomic); a reader that is gone (EPIPE, SIGPIPE is ignored) just loses them.
void write_line(std::string line) {
  if (g_fd < 0) return;
  for (char& c : line)
    if (c == '\n') c = ' ';
  if (line.size() > 3000) line.resize(3000);
  line += '\n';
  ssize_t rc;
  do rc = ::write(g_fd, line.data(), line.size());
  while (rc < 0 && errno == EINTR);
  if (rc < 0) PF_LOG_DEBUG("upgrade report: write: %s", std::strerror(errno));
}

}  // namespace

void take_from_environment() {
  if (g_taken) return;
  g_taken = true;
  const char* value = std::getenv(kReportFdEnv);
  if (!value) return;
  char* end = nullptr;
  long fd = std::strtol(value, &end, 10);
  ::unsetenv(kReportFdEnv);
  if (*end != '\0' || fd < 3 || fd > 65535 || ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC) != 0) {
    PF_LOG_WARN("upgrade: ignoring %s=%s (not an open fd)", kReportFdEnv, value);
    return;
  }
  g_fd = static_cast<int>(fd);
}

void serving(pid_t old_master, UpgradeHandover handover) {
  take_from_environment();
  if (::getppid() != old_master) {
    PF_LOG_NOTICE("upgrade: serving; the old master %d is gone already", static_cast<int>(old_master));
    return;
  }
  if (g_fd >= 0) {
    PF_LOG_NOTICE("upgrade: serving; telling the old master %d (upgrade_handover = \"%s\")",
                  static_cast<int>(old_master), std::string(handover_name(handover)).c_str());
    write_line("serving " + std::string(handover_name(handover)));
    return;
  }
  // An old master without the report pipe: the signal its own code answers.
  int signum = handover == UpgradeHandover::manual ? SIGWINCH : SIGQUIT;
  PF_LOG_NOTICE("upgrade: serving; asking the old master %d to %s", static_cast<int>(old_master),
                signum == SIGQUIT ? "stop gracefully" : "park its workers (WINCH)");
  if (::kill(old_master, signum) != 0)
    PF_LOG_WARN("upgrade: kill(%d, %s): %s", static_cast<int>(old_master), strsignal(signum), std::strerror(errno));
}

void failed(const std::string& error) {
  take_from_environment();
  if (g_failed) return;
  g_failed = true;
  write_line("error " + error);
}

}  // namespace preforkd::upgrade_report
