// The error log. Each event is formatted into one buffer and written with a single
// write(2) so lines from the master and workers sharing a file never interleave.
#include "common/log.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace preforkd::log {
namespace {

int g_fd = STDERR_FILENO;
LogLevel g_level = LogLevel::info;
char g_identity[64] = "master";

const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::notice: return "notice";
    case LogLevel::warn: return "warn";
    case LogLevel::error: return "error";
  }
  return "?";
}

}  // namespace

void set_identity(std::string role, int slot, unsigned generation) {
  if (slot < 0) {
    std::snprintf(g_identity, sizeof g_identity, "%s", role.c_str());
  } else {
    std::snprintf(g_identity, sizeof g_identity, "%s slot=%d gen=%u", role.c_str(), slot, generation);
  }
}

void set_level(LogLevel level) { g_level = level; }

int open_file(const std::string& path, std::string* error) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0 && errno == ELOOP) {
    // A link to a device, pipe or socket is how containers log (/dev/stdout ->
    // /proc/self/fd/1): follow it, but create nothing through it and accept no
    // regular file at its end, which is the CVE-2016-1247 attack (a link, in a
    // directory the workers' user can write, to a file root then appends to).
    fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC | O_NONBLOCK);
    struct stat st {};
    if (fd >= 0 && (::fstat(fd, &st) != 0 || S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
      ::close(fd);
      fd = -1;
      errno = ELOOP;
    }
    if (fd >= 0) {
      // Blocking writes, as for a file: O_NONBLOCK only kept a FIFO without a
      // reader from hanging the open (ENXIO instead).
      int flags = ::fcntl(fd, F_GETFL);
      if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    }
  }
  if (fd < 0 && error) {
    // ELOOP is what O_NOFOLLOW reports for a link; say so, not "too many levels".
    *error = path + ": " +
             (errno == ELOOP ? std::string("is a symbolic link to a file; not followed (log files are opened as root)")
                             : std::string(std::strerror(errno)));
  }
  return fd;
}

bool open(const std::string& target, std::string* error) {
  int fd = STDERR_FILENO;
  if (target != "stderr") {
    std::string why;
    fd = open_file(target, &why);
    if (fd < 0) {
      if (error) *error = "open " + why;
      return false;
    }
  }
  if (g_fd != STDERR_FILENO) ::close(g_fd);
  g_fd = fd;
  return true;
}

void write(LogLevel level, const char* fmt, ...) {
  if (level < g_level) return;
  char line[4096];
  timeval tv{};
  gettimeofday(&tv, nullptr);
  tm utc{};
  gmtime_r(&tv.tv_sec, &utc);
  int n = std::snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ [%s] %d %s: ",
                        utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min,
                        utc.tm_sec, static_cast<long>(tv.tv_usec / 1000), level_name(level),
                        static_cast<int>(getpid()), g_identity);
  va_list args;
  va_start(args, fmt);
  int m = std::vsnprintf(line + n, sizeof line - n - 1, fmt, args);
  va_end(args);
  size_t len = static_cast<size_t>(n) + (m < 0 ? 0 : std::min<size_t>(m, sizeof line - n - 2));
  line[len++] = '\n';
  // A full disk or a closed stderr must never stop serving: the line is dropped.
  ssize_t rc;
  do {
    rc = ::write(g_fd, line, len);
  } while (rc < 0 && errno == EINTR);
}

}  // namespace preforkd::log
