// Order matters: supplementary groups and the gid can only be changed while still
// root, so setuid comes last; each step is checked, as a half-dropped worker would
// be worse than one that refuses to start.
#include "worker/privileges.hpp"

#include <grp.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

namespace preforkd {

bool set_nofile_limit(std::uint64_t limit, std::string* error) {
  rlimit rl{static_cast<rlim_t>(limit), static_cast<rlim_t>(limit)};
  if (::setrlimit(RLIMIT_NOFILE, &rl) == 0) return true;
  *error = "setrlimit(RLIMIT_NOFILE, " + std::to_string(limit) + "): " + std::strerror(errno);
  // Without CAP_SYS_RESOURCE (a container's root, say) the hard limit cannot rise:
  // get as close as allowed rather than keep the default soft limit.
  rlimit current{};
  if (errno == EPERM && ::getrlimit(RLIMIT_NOFILE, &current) == 0 && current.rlim_max < rl.rlim_max) {
    rlimit capped{current.rlim_max, current.rlim_max};
    if (::setrlimit(RLIMIT_NOFILE, &capped) == 0)
      *error += "; raised to the hard limit " + std::to_string(current.rlim_max) + " instead";
  }
  return false;
}

bool drop_privileges(const RunAs& run_as, std::string* error) {
  if (!run_as.set() || run_as.uid == 0 || ::geteuid() != 0) return true;
  const auto uid = static_cast<uid_t>(run_as.uid);
  const auto gid = static_cast<gid_t>(run_as.gid);
  auto failed = [&](const char* call) {
    *error = std::string(call) + " (user " + run_as.user + ", uid " + std::to_string(uid) + ", gid " +
             std::to_string(gid) + "): " + std::strerror(errno);
    return false;
  };
  // Only the configured group: root's supplementary groups must not survive.
  if (::setgroups(1, &gid) != 0) return failed("setgroups");
  if (::setgid(gid) != 0) return failed("setgid");
  if (::setuid(uid) != 0) return failed("setuid");
  if (::getuid() != uid || ::geteuid() != uid || ::getgid() != gid || ::getegid() != gid) {
    errno = EPERM;
    return failed("ids after the switch do not match");
  }
  if (::setuid(0) == 0) {
    errno = EPERM;
    return failed("setuid(0) succeeded after dropping privileges");
  }
  // The kernel clears the parent-death signal when the credentials change: set it
  // again so that the worker still follows its master (EOF on IPC is the backstop).
  if (::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) return failed("prctl(PR_SET_PDEATHSIG)");
  return true;
}

}  // namespace preforkd
