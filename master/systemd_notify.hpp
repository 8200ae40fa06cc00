// systemd's readiness protocol (sd_notify(3)), for Type=notify services.
//
// Implemented here rather than by linking libsystemd: the protocol is one datagram
// of "KEY=VALUE\n" lines sent to the AF_UNIX socket named by $NOTIFY_SOCKET (an
// abstract-namespace name when it starts with '@'), documented as a stable
// interface; that is a dozen lines against a library dependency (and its
// transitive ones) that every non-systemd build would have to carry or #ifdef.
// gunicorn and uvicorn's supervisors do the same.
#pragma once

#include <string>

namespace preforkd {

class SystemdNotifier {
 public:
  // Takes $NOTIFY_SOCKET and removes it from the environment, so that workers (and
  // anything they run) do not inherit it: only the master speaks for the service.
  static SystemdNotifier from_environment();

  bool enabled() const { return !socket_path_.empty(); }
  // The value to pass on to a master that replaces this one (USR2), or "".
  const std::string& socket_path() const { return socket_path_; }

  // Sends `state` ("READY=1\nSTATUS=...") in one datagram; false (logged) on error.
  // A no-op returning true when not run by systemd.
  bool notify(const std::string& state) const;

 private:
  std::string socket_path_;
};

// CLOCK_MONOTONIC in microseconds, for RELOADING=1's MONOTONIC_USEC=.
unsigned long long monotonic_usec();

}  // namespace preforkd
