// Log files a worker must be able to (re)open after dropping privileges.
#pragma once

#include "common/config.hpp"

namespace preforkd {

// As root with a `user` other than root: creates each log file of `config` (error
// log unless stderr, access log) that is missing and gives it to that user, as
// nginx's master does before telling workers to reopen: after logrotate renames a
// file, the unprivileged worker could not create the new one in a root-owned
// directory. Failures are logged; the worker's own open reports the rest.
void prepare_log_files(const Config& config);

}  // namespace preforkd
