// Log files the master prepares for workers that will no longer be root.
#include "master/log_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.hpp"

namespace preforkd {
namespace {

// fchown on the fd we opened without following a link, never chown on the path:
// the file given away is the one checked. A second hard link to it could be any
// file the user may not own (without fs.protected_hardlinks), so it is left alone.
void give_to(const std::string& path, unsigned uid) {
  std::string error;
  int fd = log::open_file(path, &error);
  if (fd < 0) {
    PF_LOG_ERROR("log file %s", error.c_str());
    return;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    PF_LOG_ERROR("log file %s: fstat: %s", path.c_str(), std::strerror(errno));
  } else if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
    PF_LOG_ERROR("log file %s: not a regular file with one link; not given to uid %u", path.c_str(), uid);
  } else if (st.st_uid != uid && ::fchown(fd, uid, static_cast<gid_t>(-1)) != 0) {
    PF_LOG_ERROR("log file %s: fchown to uid %u: %s", path.c_str(), uid, std::strerror(errno));
  }
  ::close(fd);
}

}  // namespace

void prepare_log_files(const Config& config) {
  if (::geteuid() != 0 || !config.run_as.set() || config.run_as.uid == 0) return;
  if (config.log.error_log != "stderr") give_to(config.log.error_log, config.run_as.uid);
  if (!config.log.access_log.empty()) give_to(config.log.access_log, config.run_as.uid);
}

}  // namespace preforkd
