// The pid file: how operators and `preforkd -s` find the master.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace preforkd {

// Writes "PID\n" atomically (temporary file + rename), so a reader never sees half a pid.
bool write_pid_file(const std::string& path, pid_t pid, std::string* error);
// The pid in the file, or nullopt with *error saying why (missing, unreadable, garbage).
std::optional<pid_t> read_pid_file(const std::string& path, std::string* error);
// Removes the file only if it still names `pid`: a newer master may own it now.
void remove_pid_file(const std::string& path, pid_t pid);
// True if pid is a running preforkd (checked by /proc/PID/comm, so a recycled pid
// of an unrelated program does not count).
bool is_running_preforkd(pid_t pid);

}  // namespace preforkd
