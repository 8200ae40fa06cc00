// Pid file reading and writing.
#include "master/pid_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <sstream>

namespace preforkd {

bool write_pid_file(const std::string& path, pid_t pid, std::string* error) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    *error = "open " + tmp + ": " + std::strerror(errno);
    return false;
  }
  std::string text = std::to_string(pid) + "\n";
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  int saved = errno;
  ::close(fd);
  if (!ok) {
    *error = "write " + tmp + ": " + std::strerror(saved);
    ::unlink(tmp.c_str());
    return false;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    *error = "rename " + tmp + " to " + path + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

std::optional<pid_t> read_pid_file(const std::string& path, std::string* error) {
  std::ifstream in(path);
  if (!in) {
    *error = "open " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  long pid = 0;
  std::string rest;
  if (!(in >> pid) || pid <= 1 || pid > 0x3fffffff || (in >> rest)) {
    *error = path + ": does not contain a pid";
    return std::nullopt;
  }
  return static_cast<pid_t>(pid);
}

void remove_pid_file(const std::string& path, pid_t pid) {
  std::string ignored;
  auto current = read_pid_file(path, &ignored);
  if (current && *current == pid) ::unlink(path.c_str());
}

bool is_running_preforkd(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno != EPERM) return false;
  auto comm_of = [](const std::string& proc) {
    std::ifstream comm("/proc/" + proc + "/comm");
    std::string name;
    return comm && std::getline(comm, name) ? name : std::string();
  };
  // A binary built on libpreforkd has its own name ("kv-server"): the master is
  // then the one that runs the same program as this process.
  std::string name = comm_of(std::to_string(pid));
  return !name.empty() && (name.rfind("preforkd", 0) == 0 || name == comm_of("self"));
}

}  // namespace preforkd
