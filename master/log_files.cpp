#include "master/log_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.hpp"

namespace preforkd {
namespace {

void give_to(const std::string& path, unsigned uid) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    PF_LOG_ERROR("log file %s: open: %s", path.c_str(), std::strerror(errno));
    return;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    PF_LOG_ERROR("log file %s: fstat: %s", path.c_str(), std::strerror(errno));
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
