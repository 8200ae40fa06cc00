// Order matters: supplementary groups and the gid can only be changed while still
// root, so setuid comes last; each step is checked, as a half-dropped worker would
// be worse than one that refuses to start.
#include "worker/privileges.hpp"

#include <grp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace preforkd {

bool set_nofile_limit(std::uint64_t limit, std::string* error) {
  rlimit rl{static_cast<rlim_t>(limit), static_cast<rlim_t>(limit)};
  if (::setrlimit(RLIMIT_NOFILE, &rl) == 0) return true;
  *error = "setrlimit(RLIMIT_NOFILE, " + std::to_string(limit) + "): " + std::strerror(errno);
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
  return true;
}

}  // namespace preforkd
