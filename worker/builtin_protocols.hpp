// The protocols every preforkd binary has: http (static files), tcp-echo and
// udp-echo. They are Protocol objects registered exactly as an application's are.
#pragma once

#include "common/protocol_registry.hpp"

namespace preforkd {

// Adds http, tcp-echo and udp-echo (in that order) to `registry`.
void register_builtin_protocols(ProtocolRegistry& registry);

// The same for process_registry(), once per process however often it is called
// (preforkd::main, and the test and fuzz binaries, which have no main of ours).
void ensure_builtin_protocols();

}  // namespace preforkd
