// tcp-echo: every byte received is sent back.
#pragma once

#include "worker/handler.hpp"

namespace preforkd {

std::unique_ptr<StreamHandler> make_tcp_echo_handler();

}  // namespace preforkd
