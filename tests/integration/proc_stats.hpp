// What /proc says about a process the tests started: CPU time, resident memory,
// ignored signals. Used to check that attacks neither spin a worker nor grow it.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <cstdint>
#include <sstream>
#include <string>

#include "tests/integration/harness.hpp"

namespace itest {

// A field of /proc/PID/status as text ("" if absent).
inline std::string status_field(pid_t pid, const std::string& name) {
  std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, name.size() + 1, name + ":") == 0) return line.substr(name.size() + 1);
  }
  return "";
}

// VmRSS in KiB; -1 if unknown.
inline long rss_kib(pid_t pid) {
  std::string v = status_field(pid, "VmRSS");
  return v.empty() ? -1 : std::stol(v);
}

inline bool signal_ignored(pid_t pid, int signum) {
  std::string mask = status_field(pid, "SigIgn");
  if (mask.empty()) return false;
  return (std::stoull(mask, nullptr, 16) >> (signum - 1)) & 1;
}

// Built with -fsanitize=address (the whole tree is, tests included): ASan keeps
// freed memory in quarantine, so RSS says nothing about our own memory use.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif

}  // namespace itest
