// `preforkd status`: asks the running master for its status document (GET
// /status on the admin endpoint if [admin] is on, else the control socket) and
// prints the master and its workers as a table.
#pragma once

#include "common/config.hpp"

namespace preforkd {

// Exit codes of `preforkd status`, documented in the README.
// kStatusAdminOff: neither the control socket nor [admin] is on.
enum StatusExit { kStatusOk = 0, kStatusUnreachable = 1, kStatusAdminOff = 3 };

int print_status(const Config& config);

}  // namespace preforkd
