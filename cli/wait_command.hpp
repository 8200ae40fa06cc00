// `preforkd -s reload --wait` and `-s upgrade --wait`: the request goes over the
// control socket, and the command returns once the master reports the outcome,
// printing the error the log has when it failed.
#pragma once

#include <string>

#include "common/config.hpp"

namespace preforkd {

// Exit codes, documented in the README (1 and 2 mean what they mean for -s).
enum WaitExit { kWaitOk = 0, kWaitFailed = 1, kWaitUsage = 2, kWaitTimedOut = 3, kWaitNoControlSocket = 4 };

// action: "reload" or "upgrade". timeout: a duration ("15s"), or "" for the
// default (15 s for a reload: the 10 s start timeout plus time to read the config
// and bind; 30 s for an upgrade, which starts a whole master).
int wait_for_action(const std::string& action, const Config& config, const std::string& timeout);

}  // namespace preforkd
