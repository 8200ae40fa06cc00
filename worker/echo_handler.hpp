// tcp-echo: every byte received is sent back.
#pragma once

#include "worker/handler.hpp"

namespace preforkd {

#include <cstdint>

// A session with no data in either direction for idle_timeout_ms is closed (0: never).
std::unique_ptr<StreamHandler> make_tcp_echo_handler(std::uint64_t idle_timeout_ms = 0);

}  // namespace preforkd
