// `preforkd status`: asks the running master for GET /status on its admin
// endpoint and prints the master and its workers as a table.
#pragma once

#include "common/config.hpp"

namespace preforkd {

// Exit codes of `preforkd status`, documented in the README.
enum StatusExit { kStatusOk = 0, kStatusUnreachable = 1, kStatusAdminOff = 3 };

int print_status(const Config& config);

}  // namespace preforkd
