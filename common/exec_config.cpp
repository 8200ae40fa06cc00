// Signal names and the program lookup of [exec].
#include "common/exec_config.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/protocol_registry.hpp"

namespace preforkd {
namespace {

struct NamedSignal {
  std::string_view name;
  int signum;
};

// The signals a program may reasonably be asked to stop or reopen its logs with.
// STOP, CONT, CHLD and the like would not stop anything.
constexpr NamedSignal kSignals[] = {{"TERM", SIGTERM}, {"INT", SIGINT},   {"QUIT", SIGQUIT},   {"HUP", SIGHUP},
                                    {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"WINCH", SIGWINCH}, {"KILL", SIGKILL}};

bool executable_file(const std::string& path, int* error) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    *error = errno;
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    *error = S_ISDIR(st.st_mode) ? EISDIR : EACCES;
    return false;
  }
  // access(X_OK) as the master: for root any execute bit will do, which is also
  // what execve asks of root. The worker's user is checked by execve itself.
  if (::access(path.c_str(), X_OK) != 0) {
    *error = errno;
    return false;
  }
  return true;
}

}  // namespace

const ProtocolSpec* exec_transport(std::string_view name) {
  static const ProtocolSpec tcp{"tcp", Transport::stream, {}, {}, nullptr};
  static const ProtocolSpec udp{"udp", Transport::datagram, {}, {}, nullptr};
  if (name == tcp.name) return &tcp;
  if (name == udp.name) return &udp;
  return nullptr;
}

int exec_signal_from_name(std::string_view name) {
  if (name.starts_with("SIG")) name.remove_prefix(3);
  for (const NamedSignal& s : kSignals)
    if (s.name == name) return s.signum;
  return 0;
}

std::string_view exec_signal_name(int signum) {
  for (const NamedSignal& s : kSignals)
    if (s.signum == signum) return s.name;
  return "?";
}

std::string find_program(const std::string& name, std::string_view search_path, std::string* error) {
  int why = 0;
  if (name.find('/') != std::string::npos) {
    if (executable_file(name, &why)) return name;
    *error = name + ": " + std::strerror(why);
    return {};
  }
  // execvp's rules, minus relative entries (which would depend on the directory
  // the check runs in): the first entry holding an executable file wins; one
  // found but not executable is reported if nothing better comes.
  std::string denied;
  std::size_t start = 0;
  while (start <= search_path.size()) {
    std::size_t end = search_path.find(':', start);
    if (end == std::string_view::npos) end = search_path.size();
    std::string_view dir = search_path.substr(start, end - start);
    start = end + 1;
    if (dir.empty() || dir.front() != '/') continue;
    std::string path = std::string(dir) + (dir.back() == '/' ? "" : "/") + name;
    if (executable_file(path, &why)) return path;
    if (why != ENOENT && why != ENOTDIR && denied.empty()) denied = path + ": " + std::strerror(why);
  }
  *error = !denied.empty() ? denied : "\"" + name + "\" not found in PATH (" + std::string(search_path) + ")";
  return {};
}

}  // namespace preforkd
