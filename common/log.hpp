// One line per event: time, level, pid, role (master / worker slot+generation), message.
#pragma once

#include <string>
#include <string_view>

#include <preforkd/log.hpp>  // LogLevel and log::write, which protocols use too

namespace preforkd {

// Parses "debug"|"info"|"notice"|"warn"|"error"; false on anything else.
bool parse_log_level(std::string_view text, LogLevel* out);

namespace log {

// Set once per process. Role is "master" or "worker".
void set_identity(std::string role, int slot = -1, unsigned generation = 0);
void set_level(LogLevel level);
// "stderr" or a path opened with open_file(). Returns false and leaves stderr on error.
bool open(const std::string& target, std::string* error);

// Opens a log file for appending, created 0644 if missing. Log files are opened as
// root (master, and workers before they drop privileges) in directories often
// writable by the workers' user, so a symbolic link as the last component is
// refused rather than followed (nginx's CVE-2016-1247). Returns the fd, or -1
// with *error = "PATH: why".
int open_file(const std::string& path, std::string* error);

}  // namespace log

#define PF_LOG_DEBUG(...) ::preforkd::log::write(::preforkd::LogLevel::debug, __VA_ARGS__)
#define PF_LOG_INFO(...) ::preforkd::log::write(::preforkd::LogLevel::info, __VA_ARGS__)
#define PF_LOG_NOTICE(...) ::preforkd::log::write(::preforkd::LogLevel::notice, __VA_ARGS__)
#define PF_LOG_WARN(...) ::preforkd::log::write(::preforkd::LogLevel::warn, __VA_ARGS__)
#define PF_LOG_ERROR(...) ::preforkd::log::write(::preforkd::LogLevel::error, __VA_ARGS__)

}  // namespace preforkd
