// The [exec] section's parser and exec mode's checks on the rest of the file,
// called by the config loader (common/config.cpp) through its ConfigReader so
// that every error reads "FILE:LINE:COL: KEY: message".
#pragma once

#include <toml++/toml.h>

#include "common/config.hpp"
#include "common/config_reader.hpp"
#include "common/exec_config.hpp"

namespace preforkd {

// Parses the [exec] table (node). Throws ConfigError.
ExecConfig parse_exec_section(const toml::node& node, ConfigReader& reader);

// With [exec]: the keys that mean nothing for a program (max_requests: preforkd
// never sees a program's requests; max_connections, log.access_log: settings of
// the built-in workers) and listener names that LISTEN_FDNAMES cannot carry.
// Called once the whole file is parsed; throws ConfigError at the offending key.
void check_exec_mode(const toml::table& root, const Config& config, ConfigReader& reader);

}  // namespace preforkd
