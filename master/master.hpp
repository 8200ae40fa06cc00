// The master process: owns the pid file, the signal handlers and the supervisor;
// never serves traffic.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/config.hpp"

namespace preforkd {

// Runs the master in the foreground until it is stopped. config_text is the exact
// text `config` was parsed from; workers are handed that text, not the file, so
// they serve what was validated even if the file changes meanwhile.
// upgrade_from: the pid of the master this one replaces (USR2), or 0; once this
// master's workers are all ready it tells that one to stop gracefully.
// A root master needs `user` (user = "root" says running workers as root is meant);
// false with *why otherwise. Checked at start and on every reload.
bool may_run_as(const Config& config, std::string* why);

int run_master(const Config& config, const std::string& config_text, pid_t upgrade_from = 0);

}  // namespace preforkd
